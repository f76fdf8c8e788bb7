"""Body selection: which tracked bodies become the sample's actors.

``ctrgcn`` reproduces, bit for bit, the denoising and two-actor assignment of the SGN/CTR-GCN
family (``get_raw_denoised_data.py``; identical in InfoGCN and MAMP, and equal to pyskl on ordinary
files), documented constant by constant below and in docs/READERS.md. Where that code crashes
(all bodies short) it falls back to the longest body instead. ``first`` keeps the bodies in file
order, for formats whose body slots are fixed (PKU-MMD) or single (NW-UCLA).
"""

from __future__ import annotations

import numpy as np

from .errors import EmptySampleError, S2IError, SourceLocation
from .skeleton import RawSkeleton, Skeleton
from .specs import JointSpec

__all__ = ["select_bodies", "NOISE_LEN_THRES", "NOISE_SPR_THRES1", "NOISE_SPR_THRES2"]

#: A body tracked in at most this many frames is noise (CTR-GCN ``noise_len_thres``).
NOISE_LEN_THRES = 11
#: A frame is noisy when its x-range exceeds this times its y-range (``noise_spr_thres1``).
NOISE_SPR_THRES1 = 0.8
#: A body whose share of noisy frames reaches this is noise (``noise_spr_thres2``).
NOISE_SPR_THRES2 = 0.69754


def select_bodies(raw: RawSkeleton, spec: JointSpec, method: str | None = None) -> Skeleton:
    """Choose at most ``spec.max_persons`` actors and drop frames where none was selected.

    Args:
        raw: the reader's output for one sample.
        spec: its joint spec (``body_selection`` is the default method).
        method: ``"ctrgcn"`` or ``"first"``; None uses the spec's.

    Raises:
        EmptySampleError: no body in any frame ("no skeleton in file").
    """
    method = method or spec.body_selection
    present = raw.present
    if not present.any():
        raise EmptySampleError(
            SourceLocation(raw.source),
            f"no skeleton in file: all {raw.num_frames} frames have no body")
    if method == "ctrgcn":
        rows, owner, frame_index = _ctrgcn(raw, present)
    elif method == "first":
        rows, owner, frame_index = _first(raw, present, spec.max_persons)
    else:
        raise S2IError(f"unknown body selection {method!r}; known: ctrgcn, first")
    return _to_skeleton(raw, rows, owner, frame_index)


def _first(raw: RawSkeleton, present: np.ndarray, max_persons: int):
    """Bodies in file order (absent ones dropped), frames where a kept body is present."""
    kept = [b for b in range(present.shape[0]) if present[b].any()][:max_persons]
    frames = np.flatnonzero(present[kept].any(axis=0))
    joints = raw.joints[kept][:, frames]
    return joints, present[kept][:, frames], frames


def _motion(joints: np.ndarray) -> np.float32:
    # Same numpy calls as the reference so float32 rounding, and hence actor order, match exactly.
    return np.sum(np.var(joints.reshape(-1, 3), axis=0))


def _ctrgcn(raw: RawSkeleton, present: np.ndarray):
    """The CTR-GCN algorithm on the file's non-empty frames.

    Like the reference, a body's frames are laid out contiguously from its first appearance
    (``interval = [first, first+1, ...]`` in non-empty-frame numbering): a body that vanishes while
    others are tracked and then reappears is shifted earlier. This is kept on purpose so outputs
    equal the published pipelines; ``frame_index`` reports the nominal frame of every row.
    """
    valid = np.flatnonzero(present.any(axis=0))        # non-empty frames ("valid frames")
    num_frames = len(valid)
    vindex = np.full(present.shape[1], -1, np.int64)
    vindex[valid] = np.arange(num_frames)
    V = raw.joints.shape[2]
    bodies = []                                         # first-appearance order, as dict order
    for b in range(present.shape[0]):
        frames = np.flatnonzero(present[b])
        if len(frames) == 0:
            continue
        joints = raw.joints[b, frames]                  # (n, V, 3) float32
        start = int(vindex[frames[0]])
        bodies.append({"joints": joints, "start": start, "end": start + len(frames) - 1})

    def place(out: np.ndarray, written: np.ndarray, body: dict, slot: int) -> None:
        s, e = body["start"], body["end"]
        out[s:e + 1, slot * V * 3:(slot + 1) * V * 3] = body["joints"].reshape(-1, V * 3)
        written[slot, s:e + 1] = True

    if len(bodies) == 1:
        out = np.zeros((num_frames, V * 3), np.float32)
        written = np.zeros((1, num_frames), bool)
        place(out, written, bodies[0], 0)
        return _rows_to_actors(out, written, valid, remove_zero_rows=False)

    # Motion (the reference computes it for every body of a multi-body file) only orders the
    # bodies that survive the filters, so it is computed when first needed: same results.
    # 1. length filter
    kept = [body for body in bodies if len(body["joints"]) > NOISE_LEN_THRES]
    if not kept:
        # CTR-GCN raises IndexError here; keep the longest body (first appearance wins ties).
        kept = [max(bodies, key=lambda body: len(body["joints"]))]
    # 2. spread filter, in first-appearance order, stopping when one body is left
    if len(kept) > 1:
        for body in list(kept):
            if len(kept) == 1:
                break
            j = body["joints"]
            xr = j[:, :, 0].max(axis=1) - j[:, :, 0].min(axis=1)
            yr = j[:, :, 1].max(axis=1) - j[:, :, 1].min(axis=1)
            # The reference compares numpy float32 scalars with a Python float under numpy 1.x
            # rules, i.e. in float64.
            ok = xr.astype(np.float64) <= NOISE_SPR_THRES1 * yr.astype(np.float64)
            noisy = len(j) - int(ok.sum())
            if noisy == 0:
                continue
            if noisy / float(len(j)) >= NOISE_SPR_THRES2:
                kept = [other for other in kept if other is not body]
            else:
                body["motion"] = min(_motion(j), _motion(j[ok]))
    if len(kept) == 1:
        out = np.zeros((num_frames, V * 3), np.float32)
        written = np.zeros((1, num_frames), bool)
        place(out, written, kept[0], 0)
        return _rows_to_actors(out, written, valid, remove_zero_rows=True)
    # 3. sort by motion, descending (stable, as Python's sorted(reverse=True))
    for body in kept:
        if "motion" not in body:
            body["motion"] = _motion(body["joints"])
    kept = sorted(kept, key=lambda body: body["motion"], reverse=True)
    # 4. greedy assignment into two actor slots; a 1-frame overlap counts as no overlap
    out = np.zeros((num_frames, 2 * V * 3), np.float32)
    written = np.zeros((2, num_frames), bool)
    actor1 = kept[0]
    place(out, written, actor1, 0)
    s1, e1 = actor1["start"], actor1["end"]
    s2, e2 = 0, 0                                       # the reference's "virtual" actor-2 interval
    for body in kept[1:]:
        s, e = body["start"], body["end"]
        if min(e1, e) - max(s1, s) <= 0:
            place(out, written, body, 0)
            s1, e1 = min(s, s1), max(e, e1)
        elif min(e2, e) - max(s2, s) <= 0:
            place(out, written, body, 1)
            s2, e2 = min(s, s2), max(e, e2)
    return _rows_to_actors(out, written, valid, remove_zero_rows=True)


def _rows_to_actors(out: np.ndarray, written: np.ndarray, valid: np.ndarray, remove_zero_rows: bool):
    """CTR-GCN rows (T, M*V*3) -> (M, T', V, 3); drops rows whose float32 sum is 0 (the reference's
    ``remove_missing_frames``, applied to multi-body files only) and never-written actors."""
    if remove_zero_rows:
        keep = np.flatnonzero(out.sum(axis=1) != 0)
        out, written, valid = out[keep], written[:, keep], valid[keep]
    M = written.shape[0]
    joints = out.reshape(len(out), M, -1, 3).transpose(1, 0, 2, 3)
    actors = [m for m in range(M) if written[m].any()]
    return joints[actors], written[actors], valid


def _to_skeleton(raw: RawSkeleton, joints: np.ndarray, owner: np.ndarray,
                 frame_index: np.ndarray) -> Skeleton:
    joints = np.ascontiguousarray(joints, dtype=np.float32)
    joints[~owner] = np.nan                              # absent actor in a kept frame
    return Skeleton(name=raw.name, source=raw.source, joints=joints,
                    frame_index=frame_index.astype(np.int64), label=raw.label, meta=dict(raw.meta))
