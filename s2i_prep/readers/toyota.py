"""Toyota Smarthome reader (``toyota_json``): LCR-Net++ pose files of the trimmed release.

One JSON file per clip, ``Activity_pNN_rNN_vNN_cNN.json`` (v1.1) or ``..._pose3d.json`` (v1.2)::

    {"K": int, "njts": 13, "frames": [[{"pose2d": [26], "pose3d": [39], "cumscore": s}, ...], ...]}

Every frame lists 0..n detections (an empty list: nobody found). The arrays are
**coordinate-major**: ``pose2d = [x0..x12, y0..y12]`` and ``pose3d = [x0..x12, y0..y12,
z0..z12]``, read as ``reshape(2, 13).T`` and ``reshape(3, 13).T`` (``reshape(13, k)`` would also
succeed and be wrong). The spec's ``dims`` choose the pose: 3 reads ``pose3d`` (``toyota13``), 2
reads ``pose2d`` (``toyota13_2d``, pixels of the 640x480 video).

LCR-Net does not track people. ``person_order="score"`` (default) ranks the detections of every
frame by ``cumscore``, highest first (ties keep file order), so slot 0 is each frame's most
confident person; files without ``cumscore`` (v1.2) keep file order, as ``person_order="file"``
always does. The official skeleton baseline instead keeps the detection slot with the largest
motion (std); per-frame ranking is used here because slots are not identities. ``cumscore`` is
kept as the per-body field ``cumscore`` (NaN where a slot is empty).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EmptySampleError, ParseError, ReadError, SourceLocation
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader
from .jsonfile import all_numbers, is_number, load_object

__all__ = ["ToyotaReader", "TOYOTA_ORDERS"]

TOYOTA_ORDERS = ("score", "file")
_JOINTS = 13
#: Largest body-slots x frames grid allocated for one file (64 M joints, about 0.8 GB in 3-D).
MAX_GRID_JOINTS = 1 << 26


@register_reader("toyota_json")
class ToyotaReader:
    """Reads one LCR-Net JSON file; see the module docstring."""

    def __init__(self, fields: str = "all", person_order: str = "score") -> None:
        self.fields = check_fields(fields)
        if person_order not in TOYOTA_ORDERS:
            raise ReadError(
                SourceLocation("<options>"),
                f"person_order must be one of {', '.join(TOYOTA_ORDERS)}, found {person_order!r}",
            )
        self.person_order = person_order

    def discover(self, root: Path) -> list[Path]:
        """Every ``*.json`` under ``root``, recursively."""
        return sorted(p for p in Path(root).rglob("*.json") if p.is_file())

    def read(self, path: Path, spec: JointSpec) -> list[RawSkeleton]:
        path = Path(path)
        where = SourceLocation(str(path))
        dims = len(spec.dims)
        if spec.num_joints != _JOINTS:
            raise ReadError(
                where, f"toyota_json reads 13 LCR-Net joints; spec {spec.format!r} has {spec.num_joints}"
            )
        key, size = ("pose3d", 3 * _JOINTS) if dims == 3 else ("pose2d", 2 * _JOINTS)
        doc = load_object(path)
        njts = doc.get("njts", _JOINTS)
        if njts != _JOINTS:
            raise ParseError(where, f"njts: expected 13 joints, found {njts!r}")
        frames = doc.get("frames")
        if not isinstance(frames, list):
            raise ParseError(where, "frames: expected a list of frames (each a list of detections)")
        if not frames:
            raise EmptySampleError(where, "frames holds no frame")
        values: list[list[float]] = []
        scores: list[float] = []
        slot_of: list[tuple[int, int]] = []
        for t, dets in enumerate(frames):
            if not isinstance(dets, list):
                raise ParseError(
                    SourceLocation(str(path), frame=t), "expected a list of detections"
                )
            for m, det in enumerate(dets):
                here = SourceLocation(str(path), frame=t, body=m)
                pose = det.get(key) if isinstance(det, dict) else None
                if not (isinstance(pose, list) and len(pose) == size and all_numbers(pose)):
                    raise ParseError(
                        here, f"{key}: expected {size} numbers (coordinate-major), found {repr(pose)[:60]}"
                    )
                score = det.get("cumscore", np.nan)
                if not is_number(score):
                    raise ParseError(here, f"cumscore: expected a number, found {score!r}")
                values.append(pose)
                scores.append(float(score))
                slot_of.append((t, m))
        joints, cum = _slots(values, scores, slot_of, len(frames), dims, self.person_order, path)
        return [
            RawSkeleton(
                name=path.stem,
                source=str(path),
                joints=joints,
                body_ids=tuple(str(b) for b in range(joints.shape[0])),
                body_fields={"cumscore": cum} if self.fields == "all" else {},
            )
        ]


def _slots(
    values: list[list[float]],
    scores: list[float],
    slot_of: list[tuple[int, int]],
    frames: int,
    dims: int,
    order: str,
    path: Path,
) -> tuple[np.ndarray, np.ndarray]:
    """``(B, T, 13, dims)`` joints (NaN where a slot is empty) and ``(B, T)`` cumscores."""
    where = np.array(slot_of, dtype=np.int64).reshape(-1, 2)
    pose = np.array(values, dtype=np.float32).reshape(-1, dims, _JOINTS).transpose(0, 2, 1)
    score = np.array(scores, dtype=np.float64)
    slots = int(where[:, 1].max()) + 1 if len(where) else 1
    if slots * frames * _JOINTS > MAX_GRID_JOINTS:
        raise ReadError(
            SourceLocation(str(path)),
            f"{slots} detections in one frame x {frames} frames is beyond what a clip holds",
        )
    if order == "score" and len(where) and not np.isnan(score).any():
        ranked = np.lexsort((where[:, 1], -score, where[:, 0]))
        t = where[ranked, 0]
        rank = np.arange(len(t)) - np.searchsorted(t, t, side="left")
        where = np.stack([t, rank], axis=1)
        pose, score = pose[ranked], score[ranked]
    joints = np.full((slots, frames, _JOINTS, dims), np.nan, np.float32)
    cum = np.full((slots, frames), np.nan, np.float32)
    joints[where[:, 1], where[:, 0]] = pose
    cum[where[:, 1], where[:, 0]] = score
    return joints, cum
