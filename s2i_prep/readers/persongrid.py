"""Placing untracked detections into body slots, for the estimated-pose readers (Kinetics, Toyota).

Pose estimators list 0..n people per frame without identities. A reader flattens every detection
to one row with ``(frame, position in the frame)`` and :func:`fill_slots` scatters the rows into
``(slots, frames, ...)`` grids, optionally ranking each frame's detections by a score first.

The grid is the one allocation whose size a file does not pay for in bytes (a frame index of
100,000 or a crowd of 3,000 people costs a few bytes of JSON each), so it is bounded:
:data:`MAX_GRID_JOINTS` joints per file, far above any real clip (Kinetics: 300 frames x 5 people
x 18 joints = 27,000; a 10-minute Toyota clip: 18,000 x 5 x 13 = 1.2 M): 4 M joints, at most
50 MB of coordinates and scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ReadError, SourceLocation

__all__ = ["MAX_GRID_JOINTS", "fill_slots"]

#: Largest body-slots x frames x joints grid allocated for one file.
MAX_GRID_JOINTS = 1 << 22


def fill_slots(
    path: Path,
    where: np.ndarray,
    frames: int,
    joints: int,
    items: Sequence[tuple[np.ndarray, float]],
    rank_by: np.ndarray | None = None,
    crowd: str = "",
) -> list[np.ndarray]:
    """Scatter per-detection arrays into ``(slots, frames, ...)`` grids.

    ``where`` is ``(N, 2)``: frame and position in the frame of every row of each ``items`` array
    (filled with its ``fill`` where a slot is empty). With ``rank_by`` the detections of every
    frame are ranked by it, highest first, ties in file order; otherwise slot ``m`` is the
    ``m``-th detection. ``crowd`` says where the largest frame is, for the bound's error.
    """
    if rank_by is not None and len(where):
        ranked = np.lexsort((where[:, 1], -rank_by, where[:, 0]))
        t = where[ranked, 0]
        where = np.stack([t, np.arange(len(t)) - np.searchsorted(t, t, side="left")], axis=1)
        items = [(values[ranked], fill) for values, fill in items]
    slots = int(where[:, 1].max()) + 1 if len(where) else 1
    if slots * frames * joints > MAX_GRID_JOINTS:
        raise ReadError(
            SourceLocation(str(path)),
            f"{slots} people in one frame{f' ({crowd})' if crowd else ''} x {frames} frames is "
            f"a grid of {slots * frames * joints:,} joints, beyond the bound of "
            f"{MAX_GRID_JOINTS:,} per file (docs/READERS.md, 'Hostile input')",
        )
    out = []
    for values, fill in items:
        grid = np.full((slots, frames, *values.shape[1:]), fill, values.dtype)
        grid[where[:, 1], where[:, 0]] = values
        out.append(grid)
    return out
