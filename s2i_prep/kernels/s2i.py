"""S2I kernels: centring/alignment, column gather, motion and bone streams, resampling, bilinear
resize, the pixel mapping and float16 packing.

Every kernel works on plain arrays with fixed axis orders and never raises; the Python wrappers in
:mod:`s2i_prep.encoding` check shapes and build errors. Arithmetic is float32 in a fixed order (no
fastmath), so ``tests/reference/encode_ref.py`` reproduces every output bit for bit. Float16 output
is packed here (``_pack_half``) because numba has no float16 type on the CPU and numpy's own
float32 -> float16 cast costs about 5 ns per value, more than the whole encoding.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit

__all__ = [
    "STREAM_JOINT",
    "STREAM_MOTION",
    "STREAM_BONE",
    "NO_JOINT",
    "warm",
]

#: Stream codes passed to :func:`_encode_compact` (same order as ``encoding.STREAMS``).
STREAM_JOINT, STREAM_MOTION, STREAM_BONE = 0, 1, 2
#: Joint index meaning "not given" (e.g. a spec without ``align.shoulders``).
NO_JOINT = -1
#: Vectors shorter than this (metres) are too short to define an axis.
_MIN_AXIS_NORM = 1e-6


# --------------------------------------------------------------------------- float16 packing


@jit
def _pack_half(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst[i] = float16(src[i]).view(uint16)`` for 1-D contiguous float32 ``src``, uint16 ``dst``.

    Branch-free so it vectorises: normal halves by rebiasing the exponent and rounding the 13
    dropped bits to even; zeros and subnormals by ``rint(|v| * 2**24)`` (exact scaling, then the
    hardware's round-to-even); overflow to infinity. NaNs (never produced by the encoder) are redone
    in a second pass keeping the top payload bits, so the bits match numpy's cast for every input.
    """
    bits = src.view(np.uint32)
    sign_mask = np.uint32(0x8000)
    abs_mask = np.uint32(0x7FFFFFFF)
    min_normal = np.uint32(0x38800000)
    overflow = np.uint32(0x477FF000)
    infinity = np.uint32(0x7F800000)
    sub_scale = np.float32(16777216.0)
    nan = False
    for i in range(bits.size):
        b = bits[i]
        a = b & abs_mask
        normal = (
            a + np.uint32(0x0FFF) + ((a >> np.uint32(13)) & np.uint32(1)) - np.uint32(0x38000000)
        ) >> np.uint32(13)
        small = np.uint32(np.rint(abs(src[i]) * sub_scale))
        h = small if a < min_normal else normal
        h = np.uint32(0x7C00) if a >= overflow else h
        dst[i] = np.uint16(((b >> np.uint32(16)) & sign_mask) | h)
        nan |= a > infinity
    if nan:
        for i in range(bits.size):
            a = bits[i] & abs_mask
            if a > infinity:
                h = np.uint32(0x7C00) + ((a & np.uint32(0x7FFFFF)) >> np.uint32(13))
                h = h if h != np.uint32(0x7C00) else np.uint32(0x7C01)  # stay a NaN
                dst[i] = np.uint16(((bits[i] >> np.uint32(16)) & sign_mask) | h)


#: ``2**(e - 25)`` for half exponent field ``e`` (``2**-24`` for subnormals, inf for e = 31): a
#: half is ``(mantissa | implicit bit) * _HALF_SCALE[e]``, exactly, in float32.
_HALF_SCALE = np.array(
    [2.0**-24] + [2.0 ** (e - 25) for e in range(1, 31)] + [np.inf], dtype=np.float32
)


@jit
def _unpack_half(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst[i] = float32(src[i].view(float16))`` for 1-D uint16 ``src``, float32 ``dst`` (exact).

    Branch-free float arithmetic (an integer below 2048 times a power of two is exact, subnormals
    included), so it vectorises; NaNs, which that arithmetic turns into infinities, are redone in a
    second pass that keeps their payload bits, as numpy does.
    """
    nan = False
    for i in range(src.size):
        h = np.uint32(src[i])
        e = (h >> np.uint32(10)) & np.uint32(0x1F)
        m = h & np.uint32(0x3FF)
        mant = m | np.uint32(0x400) if e != np.uint32(0) else m
        v = np.float32(mant) * _HALF_SCALE[e]
        dst[i] = -v if (h & np.uint32(0x8000)) != np.uint32(0) else v
        nan |= (e == np.uint32(0x1F)) & (m != np.uint32(0))
    if nan:
        out = dst.view(np.uint32)
        for i in range(src.size):
            h = np.uint32(src[i])
            if (h & np.uint32(0x7C00)) == np.uint32(0x7C00) and (h & np.uint32(0x3FF)) != 0:
                out[i] = (
                    ((h & np.uint32(0x8000)) << np.uint32(16))
                    | np.uint32(0x7F800000)
                    | ((h & np.uint32(0x3FF)) << np.uint32(13))
                )


# --------------------------------------------------------------------------- centring, alignment


@jit
def _find_origin(joints: np.ndarray, centre: int) -> tuple[int, int]:
    """``(person, frame)`` whose ``centre`` joint defines the origin: the main actor's first frame
    with that joint present, else the first such frame of any other actor; ``(-1, -1)`` if none."""
    for m in range(joints.shape[0]):
        for t in range(joints.shape[1]):
            p = joints[m, t, centre]
            if not (math.isnan(p[0]) or math.isnan(p[1]) or math.isnan(p[2])):
                return m, t
    return -1, -1


@jit
def _unit(v: np.ndarray) -> bool:
    """Normalise the float64 3-vector ``v`` in place; False (and ``v`` unchanged) if too short."""
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if not n >= _MIN_AXIS_NORM:
        return False
    v[0] /= n
    v[1] /= n
    v[2] /= n
    return True


@jit
def _reject(v: np.ndarray, z: np.ndarray) -> None:
    """``v -= (v . z) z`` for float64 3-vectors (``z`` a unit vector)."""
    d = v[0] * z[0] + v[1] * z[1] + v[2] * z[2]
    v[0] -= d * z[0]
    v[1] -= d * z[1]
    v[2] -= d * z[2]


@jit
def _view_basis(
    joints: np.ndarray, m: int, t: int, spine_from: int, spine_to: int, sh_from: int, sh_to: int
) -> np.ndarray:
    """Rotation (3, 3) float32 whose rows are the new x, y, z axes, from actor ``m`` at frame ``t``.

    z = unit spine vector; x = shoulder vector with its z component removed, normalised;
    y = z cross x, so the matrix is orthonormal with det +1. A missing or degenerate spine keeps
    the camera's z; a missing or degenerate shoulder vector falls back to the camera's x (then y)
    made orthogonal to z. With neither, the result is the identity.
    """
    z = np.array([0.0, 0.0, 1.0])
    if spine_from >= 0:
        cand = np.empty(3)
        for c in range(3):
            cand[c] = np.float64(joints[m, t, spine_to, c]) - np.float64(
                joints[m, t, spine_from, c]
            )
        if _unit(cand):
            z = cand
    x = np.empty(3)
    ok = False
    if sh_from >= 0:
        for c in range(3):
            x[c] = np.float64(joints[m, t, sh_to, c]) - np.float64(joints[m, t, sh_from, c])
        _reject(x, z)
        ok = _unit(x)
    for axis in range(2):
        if ok:
            break
        x[:] = 0.0
        x[axis] = 1.0
        _reject(x, z)
        ok = _unit(x)
    rot = np.empty((3, 3), np.float32)
    for c in range(3):
        rot[0, c] = x[c]
        rot[2, c] = z[c]
    rot[1, 0] = z[1] * x[2] - z[2] * x[1]
    rot[1, 1] = z[2] * x[0] - z[0] * x[2]
    rot[1, 2] = z[0] * x[1] - z[1] * x[0]
    return rot


@jit
def _frame_of_reference(
    joints: np.ndarray,
    centre: int,
    spine_from: int,
    spine_to: int,
    sh_from: int,
    sh_to: int,
    align: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Origin (3,) float32 and rotation (3, 3) float32 of one sample (identity if not aligning)."""
    origin = np.zeros(3, np.float32)
    rot = np.eye(3, dtype=np.float32)
    m, t = _find_origin(joints, centre)
    if m < 0:
        return origin, rot
    for c in range(3):
        origin[c] = joints[m, t, centre, c]
    if align:
        rot = _view_basis(joints, m, t, spine_from, spine_to, sh_from, sh_to)
    return origin, rot


# --------------------------------------------------------------------------- streams on the grid


@jit
def _gather(
    joints: np.ndarray,
    col_joint: np.ndarray,
    parent_joint: np.ndarray,
    max_persons: int,
    origin: np.ndarray,
    rot: np.ndarray,
    rotate: bool,
    with_bone: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint and bone streams on the original frames, ``(3, T, max_persons * V)`` float32 each, and
    the presence ``(T, W)`` bool.

    Column ``m * V + k`` holds joint ``v = col_joint[k]`` of actor ``m``, centred on ``origin`` and
    (if ``rotate``) rotated by ``rot``: ``x' = r0 . (p - o)`` summed left to right in float32.
    Absent joints and actors (NaN or ``m >= M``) are 0 with presence False. The bone of column
    ``w`` is ``x[v] - x[parent_joint[v]]`` of the same actor where both are present, else 0 (the
    root is its own parent: 0); it is made here, from the frame's joints still in a small buffer,
    because a second pass over the grid with an indexed parent load costs twice as much. Without
    ``with_bone`` the bone array is empty.
    """
    n_persons, n_frames, n_joints = joints.shape[0], joints.shape[1], joints.shape[2]
    n_cols = col_joint.size
    width = max_persons * n_cols
    grid = np.zeros((3, n_frames, width), np.float32)
    bone = np.zeros((3, n_frames if with_bone else 0, width if with_bone else 0), np.float32)
    present = np.zeros((n_frames, width), np.bool_)
    flags = present.view(np.uint8)
    local = np.empty((n_joints, 3), np.float32)
    ok = np.empty(n_joints, np.uint8)
    zero = np.float32(0.0)
    ox, oy, oz = origin[0], origin[1], origin[2]
    for m in range(min(n_persons, max_persons)):
        base = m * n_cols
        for t in range(n_frames):
            src = joints[m, t]
            for v in range(n_joints):
                dx = src[v, 0] - ox
                dy = src[v, 1] - oy
                dz = src[v, 2] - oz
                here = (dx == dx) & (dy == dy) & (dz == dz)
                if rotate:
                    x = rot[0, 0] * dx + rot[0, 1] * dy + rot[0, 2] * dz
                    y = rot[1, 0] * dx + rot[1, 1] * dy + rot[1, 2] * dz
                    z = rot[2, 0] * dx + rot[2, 1] * dy + rot[2, 2] * dz
                else:
                    x, y, z = dx, dy, dz
                ok[v] = here
                local[v, 0] = x if here else zero
                local[v, 1] = y if here else zero
                local[v, 2] = z if here else zero
            for k in range(n_cols):
                v = col_joint[k]
                w = base + k
                flags[t, w] = ok[v]
                for c in range(3):
                    grid[c, t, w] = local[v, c]
                if with_bone:
                    p = parent_joint[v]
                    both = (ok[v] & ok[p]) != 0
                    for c in range(3):
                        d = local[v, c] - local[p, c]
                        bone[c, t, w] = d if both else zero
    return grid, bone, present


@jit
def _motion(grid: np.ndarray, present: np.ndarray, active: int) -> np.ndarray:
    """``x[t+1] - x[t]`` where both frames hold the joint, else 0; the last frame is 0. Columns
    from ``active`` on belong to absent actors and are 0 without being looked at."""
    n_ch, n_frames, width = grid.shape
    out = np.zeros_like(grid)
    zero = np.float32(0.0)
    flags = present.view(np.uint8)
    for c in range(n_ch):
        for t in range(n_frames - 1):
            g0 = grid[c, t]
            g1 = grid[c, t + 1]
            p0 = flags[t]
            p1 = flags[t + 1]
            o = out[c, t]
            for w in range(active):
                d = g1[w] - g0[w]
                o[w] = d if (p0[w] & p1[w]) != 0 else zero
    return out


@jit
def _row_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear resampling with aligned corners: output row ``f`` reads rows ``i0[f]`` and ``i0[f]+1``
    with weight ``lam[f]`` (float32) on the second; source position ``f * (n_in-1) / (n_out-1)``
    in float64 (position 0 when either length is 1, and then the second row is the first)."""
    i0 = np.zeros(n_out, np.int64)
    lam = np.zeros(n_out, np.float32)
    if n_in == 1 or n_out == 1:
        return i0, lam
    for f in range(n_out):
        pos = f * (n_in - 1) / (n_out - 1)
        i = min(int(math.floor(pos)), n_in - 2)
        i0[f] = i
        lam[f] = pos - i
    return i0, lam


@jit
def _resample_rows(src: np.ndarray, n_out: int) -> np.ndarray:
    """(C, T, W) float32 -> (C, n_out, W) float32: ``(1 - lam) * a + lam * b`` in float32."""
    n_ch, n_in, width = src.shape
    i0, lam = _row_weights(n_in, n_out)
    out = np.empty((n_ch, n_out, width), np.float32)
    one = np.float32(1.0)
    for c in range(n_ch):
        for f in range(n_out):
            a = i0[f]
            b = min(a + 1, n_in - 1)
            wb = lam[f]
            wa = one - wb
            for w in range(width):
                out[c, f, w] = wa * src[c, a, w] + wb * src[c, b, w]
    return out


@jit
def _encode_compact(
    joints: np.ndarray,
    col_joint: np.ndarray,
    parent_joint: np.ndarray,
    max_persons: int,
    centre: int,
    spine_from: int,
    spine_to: int,
    sh_from: int,
    sh_to: int,
    align: bool,
    streams: np.ndarray,
    out: np.ndarray,
) -> None:
    """One sample (M, T, V, 3) float32 -> ``out`` (S, 3, F, W) uint16: float16 bits of the grid."""
    origin, rot = _frame_of_reference(joints, centre, spine_from, spine_to, sh_from, sh_to, align)
    with_bone = False
    for s in range(streams.size):
        with_bone |= streams[s] == STREAM_BONE
    grid, bone, present = _gather(
        joints, col_joint, parent_joint, max_persons, origin, rot, align, with_bone
    )
    active = min(joints.shape[0], max_persons) * col_joint.size
    n_out = out.shape[2]
    for s in range(streams.size):
        code = streams[s]
        if code == STREAM_JOINT:
            values = _resample_rows(grid, n_out)
        elif code == STREAM_MOTION:
            values = _resample_rows(_motion(grid, present, active), n_out)
        else:
            values = _resample_rows(bone, n_out)
        _pack_half(values.reshape(-1), out[s].reshape(-1))


# --------------------------------------------------------------------------- images


@jit
def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear weights with half-pixel centres (``align_corners=False``, no antialiasing): source
    position ``max((i + 0.5) * n_in / n_out - 0.5, 0)`` in float64; returns ``i0``, ``i1`` (int64)
    and the float32 weight of ``i1``."""
    i0 = np.empty(n_out, np.int64)
    i1 = np.empty(n_out, np.int64)
    lam = np.empty(n_out, np.float32)
    scale = n_in / n_out
    for i in range(n_out):
        pos = max((i + 0.5) * scale - 0.5, 0.0)
        a = min(int(math.floor(pos)), n_in - 1)
        i0[i] = a
        i1[i] = min(a + 1, n_in - 1)
        lam[i] = pos - a
    return i0, i1, lam


@jit
def _resize_columns(
    plane: np.ndarray, x0: np.ndarray, x1: np.ndarray, lx: np.ndarray, tmp: np.ndarray
) -> None:
    """First half of the separable bilinear resize of one (h, w) float32 plane:
    ``tmp[r, j] = (1 - lx[j]) * plane[r, x0[j]] + lx[j] * plane[r, x1[j]]`` in float32."""
    one = np.float32(1.0)
    for r in range(plane.shape[0]):
        row = plane[r]
        t = tmp[r]
        for j in range(t.size):
            wx = lx[j]
            t[j] = (one - wx) * row[x0[j]] + wx * row[x1[j]]


@jit
def _blend_rows(ta: np.ndarray, tb: np.ndarray, wy: np.float32, out: np.ndarray) -> None:
    """Second half, one output row: ``out[j] = (1 - wy) * ta[j] + wy * tb[j]`` in float32."""
    wa = np.float32(1.0) - wy
    for j in range(out.size):
        out[j] = wa * ta[j] + wy * tb[j]


@jit
def _resize_bilinear(src: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, h, w) float32 -> (N, height, width) float32: columns first (:func:`_resize_columns`),
    then rows (:func:`_blend_rows`)."""
    n, h, w = src.shape
    y0, y1, ly = _axis_weights(h, height)
    x0, x1, lx = _axis_weights(w, width)
    tmp = np.empty((h, width), np.float32)
    out = np.empty((n, height, width), np.float32)
    for k in range(n):
        _resize_columns(src[k], x0, x1, lx, tmp)
        for i in range(height):
            _blend_rows(tmp[y0[i]], tmp[y1[i]], ly[i], out[k, i])
    return out


@jit
def _normalise_plane(plane: np.ndarray, out: np.ndarray) -> None:
    """``out = (v - lo) * (1 / (hi - lo))`` over one (h, w) float32 plane, in float32; a constant
    plane (``hi == lo``) becomes 0."""
    lo = plane[0, 0]
    hi = plane[0, 0]
    for r in range(plane.shape[0]):
        for j in range(plane.shape[1]):
            v = plane[r, j]
            lo = v if v < lo else lo
            hi = v if v > hi else hi
    rng = hi - lo
    inv = np.float32(1.0) / rng if rng > 0 else np.float32(0.0)
    for r in range(plane.shape[0]):
        for j in range(plane.shape[1]):
            out[r, j] = (plane[r, j] - lo) * inv


@jit
def _quantise(src: np.ndarray, out: np.ndarray) -> None:
    """``out = uint8(floor(clip(v, 0, 1) * 255 + 0.5))`` in float32, for flat contiguous arrays
    (the argument of the conversion is positive, so truncation is the floor)."""
    zero = np.float32(0.0)
    one = np.float32(1.0)
    k255 = np.float32(255.0)
    half = np.float32(0.5)
    for i in range(src.size):
        v = min(max(src[i], zero), one)
        out[i] = np.uint8(v * k255 + half)


@jit
def _to_image(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """The pixel mapping on (N, T, W) float32 planes: min-max per plane, bilinear resize."""
    n, h, w = grid.shape
    y0, y1, ly = _axis_weights(h, height)
    x0, x1, lx = _axis_weights(w, width)
    norm = np.empty((h, w), np.float32)
    tmp = np.empty((h, width), np.float32)
    out = np.empty((n, height, width), np.float32)
    for k in range(n):
        _normalise_plane(grid[k], norm)
        _resize_columns(norm, x0, x1, lx, tmp)
        for i in range(height):
            _blend_rows(tmp[y0[i]], tmp[y1[i]], ly[i], out[k, i])
    return out


@jit
def _to_image_u8(grid: np.ndarray, height: int, width: int, out: np.ndarray) -> None:
    """:func:`_to_image` then :func:`_quantise` into ``out`` (N, height, width) uint8, one output
    row at a time: no float32 image is ever allocated (at 224 x 224 it would be a fresh, page
    faulting 200 KB allocation per plane)."""
    n, h, w = grid.shape
    y0, y1, ly = _axis_weights(h, height)
    x0, x1, lx = _axis_weights(w, width)
    norm = np.empty((h, w), np.float32)
    tmp = np.empty((h, width), np.float32)
    row = np.empty(width, np.float32)
    for k in range(n):
        _normalise_plane(grid[k], norm)
        _resize_columns(norm, x0, x1, lx, tmp)
        for i in range(height):
            _blend_rows(tmp[y0[i]], tmp[y1[i]], ly[i], row)
            _quantise(row, out[k, i])


# --------------------------------------------------------------------------- statistics


@jit
def _plane_moments(src: np.ndarray) -> np.ndarray:
    """Per plane of (P, n) float32: ``[sum, sum of squares, min, max]`` (P, 4) float64.

    Four interleaved lanes (value ``i`` goes to lane ``i % 4``; a tail of ``n % 4`` values to lane
    0) with float64 sums, combined as ``(l0 + l1) + (l2 + l3)``: deterministic, and not bound by
    the latency of one long chain of additions or comparisons.
    """
    n_planes, n = src.shape
    out = np.empty((n_planes, 4), np.float64)
    for p in range(n_planes):
        row = src[p]
        s0 = s1 = s2 = s3 = 0.0
        q0 = q1 = q2 = q3 = 0.0
        lo0 = lo1 = lo2 = lo3 = row[0]
        hi0 = hi1 = hi2 = hi3 = row[0]
        full = n - n % 4
        for i in range(0, full, 4):
            v0, v1, v2, v3 = row[i], row[i + 1], row[i + 2], row[i + 3]
            lo0, lo1, lo2, lo3 = min(lo0, v0), min(lo1, v1), min(lo2, v2), min(lo3, v3)
            hi0, hi1, hi2, hi3 = max(hi0, v0), max(hi1, v1), max(hi2, v2), max(hi3, v3)
            d0, d1, d2, d3 = np.float64(v0), np.float64(v1), np.float64(v2), np.float64(v3)
            s0, s1, s2, s3 = s0 + d0, s1 + d1, s2 + d2, s3 + d3
            q0, q1, q2, q3 = q0 + d0 * d0, q1 + d1 * d1, q2 + d2 * d2, q3 + d3 * d3
        for i in range(full, n):
            v = row[i]
            d = np.float64(v)
            lo0, hi0, s0, q0 = min(lo0, v), max(hi0, v), s0 + d, q0 + d * d
        out[p, 0] = (s0 + s1) + (s2 + s3)
        out[p, 1] = (q0 + q1) + (q2 + q3)
        out[p, 2] = min(min(lo0, lo1), min(lo2, lo3))
        out[p, 3] = max(max(hi0, hi1), max(hi2, hi3))
    return out


@jit
def _half_plane_moments(bits: np.ndarray) -> np.ndarray:
    """:func:`_plane_moments` of (P, n) float16 bits (uint16), each plane unpacked exactly into a
    reused buffer, so no float32 copy of the batch is made."""
    n_planes, n = bits.shape
    out = np.empty((n_planes, 4), np.float64)
    buf = np.empty((1, n), np.float32)
    for p in range(n_planes):
        _unpack_half(bits[p], buf[0])
        out[p] = _plane_moments(buf)[0]
    return out


@jit
def _fold_moments(
    moments: np.ndarray,
    plane_size: int,
    count: np.ndarray,
    total: np.ndarray,
    total_sq: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> None:
    """Add a batch's per-plane moments ``(k, C, 4)`` to running per-channel totals ``(C,)``, in
    place: plane sums are added in sample order first, then the batch sum to the total."""
    k, n_channels = moments.shape[0], moments.shape[1]
    for c in range(n_channels):
        s = 0.0
        q = 0.0
        a = np.inf
        b = -np.inf
        for i in range(k):
            s += moments[i, c, 0]
            q += moments[i, c, 1]
            a = min(a, moments[i, c, 2])
            b = max(b, moments[i, c, 3])
        count[c] += k * plane_size
        total[c] += s
        total_sq[c] += q
        lo[c] = min(lo[c], a)
        hi[c] = max(hi[c], b)


# --------------------------------------------------------------------------- warm-up


def warm() -> None:
    """Compile (or load from the cache) every kernel on tiny inputs.

    The pipeline calls this in the parent process before forking workers, so children inherit
    compiled code instead of compiling concurrently.
    """
    joints = np.zeros((2, 3, 2, 3), np.float32)
    joints[1, 0] = np.nan
    col = np.array([1, 0], np.uint64)
    parent = np.array([0, 0], np.uint64)
    streams = np.array([STREAM_JOINT, STREAM_MOTION, STREAM_BONE], np.int64)
    grid16 = np.empty((3, 3, 4, 4), np.uint16)
    _encode_compact(joints, col, parent, 2, 0, 0, 1, 0, 1, True, streams, grid16)
    planes = np.empty(grid16.size, np.float32)
    _unpack_half(grid16.reshape(-1), planes)
    planes = planes.reshape(9, 4, 4)
    _pack_half(planes.reshape(-1), np.empty(planes.size, np.uint16))
    _resize_bilinear(planes, 5, 5)
    _to_image(planes, 5, 5)
    _to_image_u8(planes, 5, 5, np.empty((9, 5, 5), np.uint8))
    moments = _plane_moments(planes.reshape(9, 16))
    _half_plane_moments(grid16.reshape(9, 16))
    totals = [np.zeros(9, np.float64) for _ in range(4)]
    _fold_moments(moments.reshape(1, 9, 4), 16, np.zeros(9, np.int64), *totals)
