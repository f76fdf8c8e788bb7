"""Slow, obvious numpy twins of the S2I kernels in ``s2i_prep/kernels/s2i.py``.

Each twin follows the documented arithmetic (docs/ENCODING.md) step by step with plain Python
loops or whole-array numpy operations, in the same float32 order, so the kernels must match it bit
for bit. Nothing here is fast and nothing here imports numba.
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32
MIN_AXIS_NORM = 1e-6


def origin_person_frame(joints: np.ndarray, centre: int) -> tuple[int, int]:
    """First (person, frame), person-major, whose centre joint has no NaN coordinate."""
    for m in range(joints.shape[0]):
        for t in range(joints.shape[1]):
            if not np.isnan(joints[m, t, centre]).any():
                return m, t
    return -1, -1


def _unit(v: list[float]) -> list[float] | None:
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if not n >= MIN_AXIS_NORM:
        return None
    return [v[0] / n, v[1] / n, v[2] / n]


def _reject(v: list[float], z: list[float]) -> list[float]:
    d = v[0] * z[0] + v[1] * z[1] + v[2] * z[2]
    return [v[0] - d * z[0], v[1] - d * z[1], v[2] - d * z[2]]


def frame_of_reference(
    joints: np.ndarray,
    centre: int,
    spine: tuple[int, int] | None,
    shoulders: tuple[int, int] | None,
    align: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Origin (3,) float32 and rotation (3, 3) float32 (rows = new x, y, z axes)."""
    m, t = origin_person_frame(joints, centre)
    if m < 0:
        return np.zeros(3, F32), np.eye(3, dtype=F32)
    origin = joints[m, t, centre].astype(F32)
    if not align:
        return origin, np.eye(3, dtype=F32)
    p = joints[m, t].astype(np.float64)
    z = [0.0, 0.0, 1.0]
    if spine is not None:
        cand = _unit([float(p[spine[1], c]) - float(p[spine[0], c]) for c in range(3)])
        if cand is not None:
            z = cand
    x = None
    if shoulders is not None:
        x = _unit(
            _reject([float(p[shoulders[1], c]) - float(p[shoulders[0], c]) for c in range(3)], z)
        )
    for axis in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)):
        if x is None:
            x = _unit(_reject(list(axis), z))
    y = [z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0]]
    return origin, np.array([x, y, z]).astype(F32)


def gather(
    joints: np.ndarray,
    column_order: np.ndarray,
    max_persons: int,
    origin: np.ndarray,
    rot: np.ndarray,
    rotate: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Joint stream (3, T, max_persons * V) float32 and presence (T, W) bool."""
    n_persons, n_frames = joints.shape[:2]
    n_cols = len(column_order)
    out = np.zeros((3, n_frames, max_persons * n_cols), F32)
    present = np.zeros((n_frames, max_persons * n_cols), bool)
    for m in range(min(n_persons, max_persons)):
        for k, v in enumerate(column_order):
            w = m * n_cols + k
            d = joints[m, :, v, :].astype(F32) - origin  # (T, 3) float32
            ok = ~np.isnan(d).any(axis=1)
            if rotate:
                d = np.stack(
                    [
                        rot[r, 0] * d[:, 0] + rot[r, 1] * d[:, 1] + rot[r, 2] * d[:, 2]
                        for r in range(3)
                    ],
                    axis=1,
                )
            present[:, w] = ok
            out[:, ok, w] = d[ok].T
    return out, present


def motion(grid: np.ndarray, present: np.ndarray) -> np.ndarray:
    out = np.zeros_like(grid)
    both = present[:-1] & present[1:]
    out[:, :-1] = np.where(both, grid[:, 1:] - grid[:, :-1], F32(0))
    return out


def bone(grid: np.ndarray, present: np.ndarray, parent_col: np.ndarray) -> np.ndarray:
    both = present & present[:, parent_col]
    return np.where(both, grid - grid[:, :, parent_col], F32(0)).astype(F32)


def resample_rows(src: np.ndarray, n_out: int) -> np.ndarray:
    """Linear, aligned corners: row f reads position f * (T - 1) / (n_out - 1)."""
    n_ch, n_in, width = src.shape
    out = np.empty((n_ch, n_out, width), F32)
    for f in range(n_out):
        if n_in == 1 or n_out == 1:
            a, lam = 0, 0.0
        else:
            pos = f * (n_in - 1) / (n_out - 1)
            a = min(math.floor(pos), n_in - 2)
            lam = pos - a
        b = min(a + 1, n_in - 1)
        wb = F32(lam)
        out[:, f] = (F32(1) - wb) * src[:, a] + wb * src[:, b]
    return out


def parent_columns(spec) -> np.ndarray:
    """Column of every column's parent joint within the same person."""
    order = list(spec.column_order)
    parents = spec.parent_array
    per_person = [order.index(int(parents[j])) for j in order]
    return np.array(
        [
            m * len(order) + per_person[k]
            for m in range(spec.max_persons)
            for k in range(len(order))
        ],
        np.int64,
    )


def encode_compact(joints: np.ndarray, spec, streams, frames: int, align: bool) -> np.ndarray:
    """The whole compact encoding: (S, 3, frames, W) float16."""
    origin, rot = frame_of_reference(
        joints, spec.centre, spec.align_spine, spec.align_shoulders, align
    )
    grid, present = gather(joints, spec.column_order, spec.max_persons, origin, rot, align)
    out = []
    for name in streams:
        values = {
            "joint": lambda: grid,
            "motion": lambda: motion(grid, present),
            "bone": lambda: bone(grid, present, parent_columns(spec)),
        }[name]()
        out.append(resample_rows(values, frames))
    return np.stack(out).astype(np.float16)


def axis_weights(n_in: int, n_out: int) -> list[tuple[int, int, np.float32]]:
    """Half-pixel-centre bilinear taps (i0, i1, weight of i1) of every output index."""
    taps = []
    for i in range(n_out):
        pos = max((i + 0.5) * (n_in / n_out) - 0.5, 0.0)
        a = min(math.floor(pos), n_in - 1)
        taps.append((a, min(a + 1, n_in - 1), F32(pos - a)))
    return taps


def resize_bilinear(src: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, h, w) float32 -> (N, height, width): columns first, then rows, float32."""
    src = src.astype(F32)
    tmp = np.empty(src.shape[:2] + (width,), F32)
    for j, (a, b, lam) in enumerate(axis_weights(src.shape[2], width)):
        tmp[:, :, j] = (F32(1) - lam) * src[:, :, a] + lam * src[:, :, b]
    out = np.empty((src.shape[0], height, width), F32)
    for i, (a, b, lam) in enumerate(axis_weights(src.shape[1], height)):
        out[:, i] = (F32(1) - lam) * tmp[:, a] + lam * tmp[:, b]
    return out


def minmax_normalise(planes: np.ndarray) -> np.ndarray:
    out = np.empty_like(planes, dtype=F32)
    for k, plane in enumerate(planes.astype(F32)):
        lo, hi = plane.min(), plane.max()
        rng = hi - lo
        inv = F32(1) / rng if rng > 0 else F32(0)
        out[k] = (plane - lo) * inv
    return out


def to_image(grid: np.ndarray, size: tuple[int, int], as_float: bool = False) -> np.ndarray:
    """The pixel mapping on (..., T, W) float16/float32."""
    lead = grid.shape[:-2]
    planes = grid.astype(F32).reshape((-1,) + grid.shape[-2:])
    img = resize_bilinear(minmax_normalise(planes), *size)
    if not as_float:
        img = np.floor(np.clip(img, F32(0), F32(1)) * F32(255) + F32(0.5)).astype(np.uint8)
    return img.reshape(lead + tuple(size))
