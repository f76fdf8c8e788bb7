"""Tiny builder of NTU ``.skeleton`` text for unit tests: full control over every edge case."""

from __future__ import annotations

import numpy as np

BASE_ID = 72057594037931101


def person(rng: np.random.Generator, centre=(0.0, 0.0, 3.0), wide: bool = False) -> np.ndarray:
    """A plausible standing body (25, 3): tall and narrow, or wide like furniture."""
    j = rng.normal(0, 0.02, (25, 3))
    j[:, 1] += np.linspace(-0.8, 0.7, 25)          # y spread ~1.5 m
    j[:, 0] += rng.normal(0, 0.15, 25)             # x spread ~0.5 m
    if wide:
        j[:, 0] *= 8.0
        j[:, 1] *= 0.2
    return (j + np.asarray(centre)).astype(np.float32)


def skeleton_text(frames: list[list[tuple[int, np.ndarray]]], *, crlf: bool = False,
                  fmt: str = "%.7g", num_joints: int = 25) -> bytes:
    """frames: per frame a list of (body_id, joints (V, 3)). Other fields get fixed plausible values."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.02764709 -0.05745083 2")
            lines.append(str(num_joints))
            for k in range(num_joints):
                x, y, z = (fmt % float(v) for v in joints[k])
                lines.append(f"{x} {y} {z} 277.419 191.8218 1036.233 519.1677 "
                             f"-0.2059419 0.05349901 0.9692109 -0.1239193 2")
    eol = "\r\n" if crlf else "\n"
    return (eol.join(lines) + eol).encode()


def track(rng: np.random.Generator, n: int, *, start: int = 0, body_id: int = BASE_ID,
          move: float = 0.02, wide: bool = False, centre=(0.0, 0.0, 3.0)) -> dict[int, tuple[int, np.ndarray]]:
    """A body present in frames start..start+n-1, random-walking: {frame: (id, joints)}."""
    base = person(rng, centre, wide)
    out = {}
    for k in range(n):
        out[start + k] = (body_id, base + rng.normal(0, move, 3).astype(np.float32) * k)
    return out


def compose(num_frames: int, *tracks: dict) -> list[list[tuple[int, np.ndarray]]]:
    """Frames from several tracks (bodies listed in the order the tracks are given)."""
    return [[t[f] for t in tracks if f in t] for f in range(num_frames)]
