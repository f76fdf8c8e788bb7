"""Kinetics-skeleton reader (``kinetics_json``): the st-gcn release of OpenPose-18 poses.

One JSON file per video::

    {"data": [{"frame_index": k, "skeleton": [{"pose": [x0, y0, ... x17, y17],
                                               "score": [s0 .. s17]}, ...]}, ...],
     "label": "<class name>", "label_index": <int>}

``frame_index`` is 1-based (frame ``k`` becomes index ``k - 1``); a frame nobody was found in is
listed with ``"skeleton": []``, and a frame not listed at all is empty too. ``pose`` holds x, y
interleaved as fractions of the frame width and height; a joint OpenPose missed is ``0, 0`` with
score 0 and becomes NaN here (st-gcn zeroes it as well). The scores are kept as the ``score``
joint field.

**People are not tracked**: the ``m``-th skeleton of one frame and of the next need not be the
same person. ``person_order`` says how the reader fills its body slots:

- ``stgcn`` (default, exactly st-gcn's feeder): in every frame, the first 5 skeletons in file
  order (``num_person_in``) are ranked by their summed joint score, highest first; slot 0 holds
  each frame's best-scored person. Ties keep file order: st-gcn's ``argsort`` uses numpy's
  default sort, which leaves tied people in an implementation-defined order (numpy 2.4's SIMD
  sort reorders about a quarter of tie-heavy rows), so exact ties are the one place where no
  reader can promise st-gcn's order. With the spec's ``max_persons: 2`` the
  actors are the two best people of every frame (``num_person_out``).
- ``clip``: slot ``m`` is the ``m``-th skeleton of every frame; slots are ranked by their score
  summed over the whole clip (the two best-scored slots become the actors).
- ``file``: the skeletons in file order, unranked.

**Layout and labels.** The release is ``kinetics_train/``, ``kinetics_val/`` (folders ``train/``
and ``val/`` are accepted too) and ``kinetics_{train,val}_label.json`` mapping every video id to
``{"has_skeleton", "label", "label_index"}``, next to the folders or one level below the root. The
folder gives the ``part`` metadata field (0 train, 1 val, -1 other), which the ``openpose18``
spec turns into the ``kinetics`` split. When the label file of the part is present, a video must
be listed there, must not be marked ``has_skeleton: false``, and its ``label_index`` must agree;
and across every label file found, a class name must always carry the same index.

**Hostile input** (docs/READERS.md): numbers must be finite and inside float32; errors name the
file and the JSON path (``data[3].skeleton[1].pose[7]``) or line:column, values shown as JSON;
``frame_index`` is at most :data:`MAX_FRAME_INDEX` and the body-slot grid is bounded
(:mod:`.persongrid`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmptySampleError, ParseError, ReadError, S2IError, SourceLocation
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader
from .jsonfile import (
    MAX_BYTES,
    OutOfRange,
    all_numbers,
    float32_array,
    json_type,
    load_document,
    numbers_error,
    out_of_range,
    shown,
    value_of,
)
from .persongrid import fill_slots

__all__ = ["KineticsReader", "PERSON_ORDERS", "STGCN_PEOPLE_IN", "part_of", "label_file_name"]

PERSON_ORDERS = ("stgcn", "clip", "file")
#: st-gcn's ``num_person_in``: skeletons of a frame considered before ranking.
STGCN_PEOPLE_IN = 5
#: Folder name -> ``part`` field.
_PARTS = {"kinetics_train": 0, "train": 0, "kinetics_val": 1, "val": 1}
_PART_NAMES = ("train", "val")
#: Largest frame_index accepted (st-gcn's clips have 300; a hostile index must not allocate).
MAX_FRAME_INDEX = 100_000
_LABEL_MAX = 2**31 - 1


def part_of(path: Path) -> int:
    """0 for a file in a train folder, 1 in a val folder, -1 elsewhere."""
    return _PARTS.get(path.parent.name, -1)


def label_file_name(part: int) -> str:
    return f"kinetics_{_PART_NAMES[part]}_label.json"


@register_reader("kinetics_json")
class KineticsReader:
    """Reads one Kinetics-skeleton video file; see the module docstring for the rules."""

    def __init__(self, fields: str = "all", person_order: str = "stgcn") -> None:
        self.fields = check_fields(fields)
        if person_order not in PERSON_ORDERS:
            raise S2IError(
                f"person_order must be one of {', '.join(PERSON_ORDERS)}, found {person_order!r}"
            )
        self.person_order = person_order
        self._labels: dict[Path, _LabelFiles] = {}

    def discover(self, root: Path) -> list[Path]:
        """Every ``*.json`` under ``root`` except the ``*_label.json`` index files.

        The label files are loaded here, once, so forked workers inherit them.
        """
        paths = sorted(
            p for p in Path(root).rglob("*.json") if p.is_file() and not p.name.endswith("_label.json")
        )
        for base in {p.parent.parent for p in paths}:
            self._label_files(base)
        return paths

    def read(self, path: Path, spec: JointSpec) -> list[RawSkeleton]:
        path = Path(path)
        where = SourceLocation(str(path))
        if spec.num_joints != 18 or len(spec.dims) != 2:
            raise ReadError(
                where,
                f"kinetics_json reads 18 joints x 2 coordinates; spec {spec.format!r} has "
                f"{spec.num_joints} x {len(spec.dims)}",
            )
        doc, text = load_document(path, MAX_BYTES)
        missing = [key for key in ("data", "label_index") if key not in doc]
        if missing:
            raise ParseError(
                value_of(path, text, None),
                f"expected the keys data, label, label_index; missing {', '.join(missing)}",
            )
        label = doc["label_index"]
        if type(label) is not int or not 0 <= label <= _LABEL_MAX:
            raise ParseError(
                value_of(path, text, "label_index"),
                f"label_index: expected an integer in 0..{_LABEL_MAX}, found {shown(label)}",
            )
        name = doc.get("label")
        if name is not None and not isinstance(name, str) or isinstance(name, OutOfRange):
            raise ParseError(
                value_of(path, text, "label"), f"label: expected a class name, found {shown(name)}"
            )
        part = part_of(path)
        self._check_label(path, part, label, name)
        joints, score = _read_frames(doc["data"], path, text, self.person_order)
        np.copyto(joints, np.nan, where=(score == 0)[..., None])  # a boolean index would cost 24 B/joint
        extra = {"score": score} if self.fields == "all" else {}
        return [
            RawSkeleton(
                name=path.stem,
                source=str(path),
                joints=joints,
                body_ids=tuple(str(b) for b in range(joints.shape[0])),
                joint_fields=extra,
                label=label,
                meta={"part": part},
            )
        ]

    def _label_files(self, base: Path) -> _LabelFiles:
        hit = self._labels.get(base)
        if hit is None:
            hit = self._labels[base] = _LabelFiles.find(base)
        return hit

    def _check_label(self, path: Path, part: int, label: int, name: str | None) -> None:
        where = SourceLocation(str(path))
        files = self._label_files(path.parent.parent)
        table = files.by_part.get(part)
        if table is not None:
            source, entries = table
            entry = entries.get(path.stem)
            if entry is None:
                raise ReadError(where, f"video {shown(path.stem)} is not listed in {source}")
            if entry.get("has_skeleton") is False:
                raise EmptySampleError(where, f"{source} marks {shown(path.stem)} has_skeleton: false")
            if entry.get("label_index") != label:
                raise ReadError(
                    where,
                    f"label_index {label} disagrees with {source}, which gives "
                    f"{shown(entry.get('label_index'))}",
                )
        if name is not None and name in files.index_of_name:
            expected, source = files.index_of_name[name]
            if expected != label:
                raise ReadError(
                    where,
                    f"class {shown(name)} has label_index {label} here but {expected} in {source}",
                )


class _LabelFiles:
    """The label index files of one release root: per part, and class name -> index."""

    def __init__(self) -> None:
        self.by_part: dict[int, tuple[str, Mapping[str, Any]]] = {}
        self.index_of_name: dict[str, tuple[int, str]] = {}

    @classmethod
    def find(cls, base: Path) -> _LabelFiles:
        out = cls()
        for part in (0, 1):
            fname = label_file_name(part)
            found = [base / fname] + sorted(base.glob(f"*/{fname}"))
            found = [p for p in found if p.is_file()]
            if not found:
                continue
            doc, text = load_document(found[0], MAX_BYTES)
            source = os.path.relpath(found[0], base)
            out.by_part[part] = (source, doc)
            for vid, entry in doc.items():
                index = entry.get("label_index") if isinstance(entry, dict) else None
                if not (
                    isinstance(entry, dict)
                    and type(entry.get("label")) is str
                    and type(index) is int
                    and 0 <= index <= _LABEL_MAX
                    and entry.get("has_skeleton", True) in (True, False)
                ):
                    raise ParseError(
                        value_of(found[0], text, vid),
                        f"{shown(vid)}: expected {{\"has_skeleton\": true|false, \"label\": "
                        f"<class name>, \"label_index\": 0..{_LABEL_MAX}}}, found {shown(entry)}",
                    )
                out.index_of_name.setdefault(entry["label"], (index, source))
        return out


def _read_frames(data: Any, path: Path, text: str, order: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``data`` and place its skeletons: ``(B, T, 18, 2)`` joints (NaN where a slot is
    empty) and ``(B, T, 18)`` scores (0 there) in the body slots ``order`` asks for. Errors name
    the JSON path (``data[3].skeleton[1].pose[7]``), frames 0-based."""
    if not isinstance(data, list):
        raise ParseError(
            value_of(path, text, "data"), f"data: expected an array of frames, found {json_type(data)}"
        )
    poses: list[list[float]] = []
    scores: list[list[float]] = []
    slot_of: list[tuple[int, int]] = []
    seen: set[int] = set()
    last, crowd = 0, (0, 0)
    for i, frame in enumerate(data):
        if not isinstance(frame, dict) or "frame_index" not in frame or "skeleton" not in frame:
            raise ParseError(
                SourceLocation(str(path)),
                f"data[{i}]: expected {{\"frame_index\", \"skeleton\"}}, found {shown(frame)}",
            )
        k = frame["frame_index"]
        if type(k) is not int or not 1 <= k <= MAX_FRAME_INDEX:
            raise ParseError(
                SourceLocation(str(path)),
                f"data[{i}].frame_index: expected an integer in 1..{MAX_FRAME_INDEX} (1-based), "
                f"found {shown(k)}",
            )
        if k in seen:
            raise ParseError(
                SourceLocation(str(path), frame=k - 1), f"data[{i}].frame_index: {k} repeats"
            )
        seen.add(k)
        last = max(last, k)
        people = frame["skeleton"]
        if not isinstance(people, list):
            raise ParseError(
                SourceLocation(str(path), frame=k - 1),
                f"data[{i}].skeleton: expected an array of people, found {shown(people)}",
            )
        if len(people) > crowd[1]:
            crowd = (i, len(people))
        for m, person in enumerate(people):
            pose = person.get("pose") if isinstance(person, dict) else None
            score = person.get("score") if isinstance(person, dict) else None
            for value, count, key in ((pose, 36, "pose"), (score, 18, "score")):
                if not (isinstance(value, list) and len(value) == count and all_numbers(value)):
                    raise numbers_error(
                        path, text, person, key, count, f"data[{i}].skeleton[{m}]", k - 1, m
                    )
            poses.append(pose)
            scores.append(score)
            slot_of.append((k - 1, m))
    if not seen:
        raise EmptySampleError(value_of(path, text, "data"), "data holds no frame")
    pose_arr, bad = float32_array(poses, 36)
    if pose_arr is not None:
        score_arr, bad_score = float32_array(scores, 18)
    if pose_arr is None or score_arr is None:
        rows, width, key = (poses, 36, "pose") if pose_arr is None else (scores, 18, "score")
        r, j = divmod(bad if pose_arr is None else bad_score, width)
        i, m = _origin(data, r)
        raise ParseError(
            SourceLocation(str(path), frame=slot_of[r][0], body=m),
            out_of_range(f"data[{i}].skeleton[{m}].{key}[{j}]", rows[r][j]),
        )
    where = np.array(slot_of, dtype=np.int64).reshape(-1, 2)
    pose_arr = pose_arr.reshape(-1, 18, 2)
    if order == "stgcn":
        keep = where[:, 1] < STGCN_PEOPLE_IN
        pose_arr, score_arr, where = pose_arr[keep], score_arr[keep], where[keep]
    rank_by = score_arr.sum(axis=1, dtype=np.float64) if order == "stgcn" else None
    joints, sc = fill_slots(
        path, where, last, 18, [(pose_arr, np.nan), (score_arr, 0.0)], rank_by,
        crowd=f"data[{crowd[0]}] lists {crowd[1]}",
    )
    if order == "clip" and len(joints) > 1:
        ranking = np.argsort(-sc.sum(axis=(1, 2), dtype=np.float64), kind="stable")
        joints, sc = joints[ranking], sc[ranking]
    return joints, sc


def _origin(data: list, row: int) -> tuple[int, int]:
    """``(i, m)`` of the ``row``-th skeleton in file order (for an error message only)."""
    for i, frame in enumerate(data):
        n = len(frame["skeleton"])
        if row < n:
            return i, row
        row -= n
    raise AssertionError("row beyond the skeletons read")
