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
  order (``num_person_in``) are ranked by their summed joint score, highest first (ties keep file
  order); slot 0 holds each frame's best-scored person. With the spec's ``max_persons: 2`` the
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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmptySampleError, ParseError, ReadError, SourceLocation
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader
from .jsonfile import all_numbers, load_object

__all__ = ["KineticsReader", "PERSON_ORDERS", "STGCN_PEOPLE_IN", "part_of", "label_file_name"]

PERSON_ORDERS = ("stgcn", "clip", "file")
#: st-gcn's ``num_person_in``: skeletons of a frame considered before ranking.
STGCN_PEOPLE_IN = 5
#: Folder name -> ``part`` field.
_PARTS = {"kinetics_train": 0, "train": 0, "kinetics_val": 1, "val": 1}
_PART_NAMES = ("train", "val")
#: Largest frame_index accepted (st-gcn's clips have 300; a hostile index must not allocate).
MAX_FRAME_INDEX = 100_000
#: Largest body-slots x frames grid allocated for one file (64 M joints, about 0.5 GB).
MAX_GRID_JOINTS = 1 << 26


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
            raise ReadError(
                SourceLocation("<options>"),
                f"person_order must be one of {', '.join(PERSON_ORDERS)}, found {person_order!r}",
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
        doc = load_object(path)
        for key in ("data", "label_index"):
            if key not in doc:
                raise ParseError(where, f"expected the keys data, label, label_index; missing {key}")
        label = doc["label_index"]
        if not isinstance(label, int) or isinstance(label, bool):
            raise ParseError(where, f"label_index: expected an integer, found {label!r}")
        name = doc.get("label")
        if name is not None and not isinstance(name, str):
            raise ParseError(where, f"label: expected a class name, found {name!r}")
        part = part_of(path)
        self._check_label(path, part, label, name)
        poses, scores, slot_of, frames = _parse_frames(doc["data"], path)
        joints, score = _slots(poses, scores, slot_of, frames, self.person_order, path)
        joints[score == 0] = np.nan
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
                raise ReadError(where, f"video {path.stem!r} is not listed in {source}")
            if entry.get("has_skeleton") is False:
                raise EmptySampleError(where, f"{source} marks {path.stem!r} has_skeleton: false")
            if entry.get("label_index") != label:
                raise ReadError(
                    where,
                    f"label_index {label} disagrees with {source}, which gives "
                    f"{entry.get('label_index')!r}",
                )
        if name is not None and name in files.index_of_name:
            expected, source = files.index_of_name[name]
            if expected != label:
                raise ReadError(
                    where,
                    f"class {name!r} has label_index {label} here but {expected} in {source}",
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
            doc = load_object(found[0])
            source = os.path.relpath(found[0], base)
            out.by_part[part] = (source, doc)
            for vid, entry in doc.items():
                if not (isinstance(entry, dict) and isinstance(entry.get("label"), str)):
                    raise ParseError(
                        SourceLocation(str(found[0])),
                        f"entry {vid!r}: expected {{has_skeleton, label, label_index}}, "
                        f"found {entry!r}",
                    )
                out.index_of_name.setdefault(entry["label"], (entry.get("label_index"), source))
        return out


def _parse_frames(
    data: Any, path: Path
) -> tuple[list[list[float]], list[list[float]], list[tuple[int, int]], int]:
    """Validate ``data`` and flatten it: poses, scores, ``(frame, rank in frame)`` per skeleton
    and the frame count (the largest ``frame_index``)."""
    if not isinstance(data, list):
        raise ParseError(SourceLocation(str(path)), "data: expected a list of frames")
    poses: list[list[float]] = []
    scores: list[list[float]] = []
    slot_of: list[tuple[int, int]] = []
    seen: set[int] = set()
    for i, frame in enumerate(data):
        if not isinstance(frame, dict) or "frame_index" not in frame or "skeleton" not in frame:
            raise ParseError(
                SourceLocation(str(path), frame=i),
                f"data[{i}]: expected {{frame_index, skeleton}}, found {repr(frame)[:60]}",
            )
        k = frame["frame_index"]
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_FRAME_INDEX:
            raise ParseError(
                SourceLocation(str(path), frame=i),
                f"data[{i}].frame_index: expected an integer in 1..{MAX_FRAME_INDEX} (1-based), "
                f"found {k!r}",
            )
        if k in seen:
            raise ParseError(SourceLocation(str(path), frame=k), f"frame_index {k} repeats")
        seen.add(k)
        people = frame["skeleton"]
        if not isinstance(people, list):
            raise ParseError(
                SourceLocation(str(path), frame=k), "skeleton: expected a list of people"
            )
        for m, person in enumerate(people):
            where = SourceLocation(str(path), frame=k, body=m)
            pose = person.get("pose") if isinstance(person, dict) else None
            score = person.get("score") if isinstance(person, dict) else None
            if not (isinstance(pose, list) and len(pose) == 36 and all_numbers(pose)):
                raise ParseError(where, f"pose: expected 36 numbers (18 x, y), found {repr(pose)[:60]}")
            if not (isinstance(score, list) and len(score) == 18 and all_numbers(score)):
                raise ParseError(where, f"score: expected 18 numbers, found {repr(score)[:60]}")
            poses.append(pose)
            scores.append(score)
            slot_of.append((k - 1, m))
    if not seen:
        raise EmptySampleError(SourceLocation(str(path)), "data holds no frame")
    return poses, scores, slot_of, max(seen)


def _slots(
    poses: list[list[float]],
    scores: list[list[float]],
    slot_of: list[tuple[int, int]],
    frames: int,
    order: str,
    path: Path,
) -> tuple[np.ndarray, np.ndarray]:
    """``(B, T, 18, 2)`` joints and ``(B, T, 18)`` scores in the body slots ``order`` asks for;
    NaN joints and score 0 where a slot is empty."""
    pose = np.array(poses, dtype=np.float32).reshape(-1, 18, 2)
    score = np.array(scores, dtype=np.float32).reshape(-1, 18)
    where = np.array(slot_of, dtype=np.int64).reshape(-1, 2)
    if order == "stgcn":
        keep = where[:, 1] < STGCN_PEOPLE_IN
        pose, score, where = pose[keep], score[keep], where[keep]
    slots = int(where[:, 1].max()) + 1 if len(where) else 1
    if slots * frames * 18 > MAX_GRID_JOINTS:
        raise ReadError(
            SourceLocation(str(path)),
            f"{slots} people in one frame x {frames} frames is beyond what a video holds",
        )
    joints = np.full((slots, frames, 18, 2), np.nan, np.float32)
    sc = np.zeros((slots, frames, 18), np.float32)
    if order == "stgcn" and len(where):
        # rank inside each frame: sort by (frame, -summed score, file position), stable
        total = score.sum(axis=1, dtype=np.float64)
        ranked = np.lexsort((where[:, 1], -total, where[:, 0]))
        t = where[ranked, 0]
        first = np.searchsorted(t, t, side="left")
        rank = np.arange(len(t)) - first
        where = np.stack([t, rank], axis=1)
        pose, score = pose[ranked], score[ranked]
    joints[where[:, 1], where[:, 0]] = pose
    sc[where[:, 1], where[:, 0]] = score
    if order == "clip" and slots > 1:
        ranking = np.argsort(-sc.sum(axis=(1, 2), dtype=np.float64), kind="stable")
        joints, sc = joints[ranking], sc[ranking]
    return joints, sc
