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

Numbers must be finite and inside float32 (docs/READERS.md, "Hostile input"); errors name the
JSON path (``frames[12][0].pose3d[7]``) or line:column; the body-slot grid is bounded
(:mod:`.persongrid`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EmptySampleError, ParseError, ReadError, S2IError, SourceLocation
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader
from .archive import file_stem
from .jsonfile import (
    FLOAT32_OVERFLOW,
    MAX_BYTES,
    all_numbers,
    float32_array,
    is_number,
    json_type,
    load_document,
    numbers_error,
    out_of_range,
    place,
    shown,
    value_of,
)
from .persongrid import fill_slots

__all__ = ["ToyotaReader", "TOYOTA_ORDERS"]

TOYOTA_ORDERS = ("score", "file")
_JOINTS = 13


@register_reader("toyota_json")
class ToyotaReader:
    """Reads one LCR-Net JSON file; see the module docstring."""

    def __init__(self, fields: str = "all", person_order: str = "score") -> None:
        self.fields = check_fields(fields)
        if person_order not in TOYOTA_ORDERS:
            raise S2IError(
                f"person_order must be one of {', '.join(TOYOTA_ORDERS)}, found {person_order!r}"
            )
        self.person_order = person_order

    #: Members of an archive input this reader reads (see :mod:`s2i_prep.readers.archive`).
    archive_suffixes = (".json",)

    def discover(self, root: Path) -> list[Path]:
        """Every ``*.json`` under ``root``, recursively."""
        return sorted(p for p in Path(root).rglob("*.json") if p.is_file())

    def read(self, path: Path, spec: JointSpec) -> list[RawSkeleton]:
        where = SourceLocation(str(path))
        dims = len(spec.dims)
        if spec.num_joints != _JOINTS:
            raise ReadError(
                where, f"toyota_json reads 13 LCR-Net joints; spec {spec.format!r} has {spec.num_joints}"
            )
        key, size = ("pose3d", 3 * _JOINTS) if dims == 3 else ("pose2d", 2 * _JOINTS)
        doc, text = load_document(path, MAX_BYTES)
        njts = doc.get("njts", _JOINTS)
        if type(njts) is not int or njts != _JOINTS:
            raise ParseError(value_of(path, text, "njts"), f"njts: expected 13, found {shown(njts)}")
        frames = doc.get("frames")
        if not isinstance(frames, list):
            raise ParseError(
                value_of(path, text, "frames"),
                "frames: expected an array of frames (each an array of detections), found "
                + ("nothing" if "frames" not in doc else json_type(frames)),
            )
        if not frames:
            raise EmptySampleError(value_of(path, text, "frames"), "frames holds no frame")
        values: list[list[float]] = []
        scores: list[float] = []
        slot_of: list[tuple[int, int]] = []
        crowd = (0, 0)
        for t, dets in enumerate(frames):
            if not isinstance(dets, list):
                raise ParseError(
                    SourceLocation(str(path), frame=t),
                    f"frames[{t}]: expected an array of detections, found {shown(dets)}",
                )
            if len(dets) > crowd[1]:
                crowd = (t, len(dets))
            for m, det in enumerate(dets):
                pose = det.get(key) if isinstance(det, dict) else None
                if not (isinstance(pose, list) and len(pose) == size and all_numbers(pose)):
                    raise numbers_error(path, text, det, key, size, f"frames[{t}][{m}]", t, m)
                score = det.get("cumscore", np.nan)
                if not is_number(score):
                    raise ParseError(
                        place(path, text, score, t, m),
                        f"frames[{t}][{m}].cumscore: expected a number, found {shown(score)}",
                    )
                values.append(pose)
                scores.append(score)
                slot_of.append((t, m))
        pose_arr, bad = float32_array(values, size)
        cum64 = np.array(scores, dtype=np.float64)
        bad_cum = np.flatnonzero(np.abs(cum64) >= FLOAT32_OVERFLOW)  # NaN (no cumscore) passes
        if pose_arr is None or len(bad_cum):
            r, j = divmod(bad, size) if pose_arr is None else (int(bad_cum[0]), None)
            t, m = slot_of[r]
            name = f"frames[{t}][{m}]." + (f"{key}[{j}]" if j is not None else "cumscore")
            raise ParseError(
                SourceLocation(str(path), frame=t, body=m),
                out_of_range(name, values[r][j] if j is not None else scores[r]),
            )
        where = np.array(slot_of, dtype=np.int64).reshape(-1, 2)
        pose_arr = pose_arr.reshape(-1, dims, _JOINTS).transpose(0, 2, 1)
        rank = self.person_order == "score" and not np.isnan(cum64).any()
        joints, cum = fill_slots(
            path, where, len(frames), _JOINTS,
            [(pose_arr, np.nan), (cum64.astype(np.float32), np.nan)],
            cum64 if rank else None,
            crowd=f"frames[{crowd[0]}] lists {crowd[1]}",
        )
        return [
            RawSkeleton(
                name=file_stem(path),
                source=str(path),
                joints=joints,
                body_ids=tuple(str(b) for b in range(joints.shape[0])),
                body_fields={"cumscore": cum} if self.fields == "all" else {},
            )
        ]
