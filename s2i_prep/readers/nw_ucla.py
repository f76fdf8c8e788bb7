"""NW-UCLA reader (``ucla_json``): the CTR-GCN ``all_sqe`` JSON form, one sample per file.

Each file is ``{"file_name": "<stem>", "skeletons": [T][V][3], "label": <1-based int>}`` with one
body (Kinect v1, V = 20). Besides the shape, two cross-checks catch renamed or mislabelled files:
``file_name`` must equal the file stem, and ``label`` must agree with the label the spec derives
from the name (``a08`` -> 7 in the 1-based JSON, 6 in s2i), unless the spec takes the label from
the reader (``label: {source: reader}``).
"""

from __future__ import annotations

import json
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmptySampleError, ParseError, ReadError, SourceLocation
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader

__all__ = ["UclaReader"]

KEYS = ("file_name", "skeletons", "label")


@register_reader("ucla_json")
class UclaReader:
    """Reads ``aXX_sYY_eZZ_vWW.json`` files (positions are all the format holds, so ``fields``
    changes nothing)."""

    def __init__(self, fields: str = "all") -> None:
        self.fields = check_fields(fields)

    def discover(self, root: Path) -> list[Path]:
        """Every ``*.json`` under ``root``, recursively."""
        return sorted(p for p in Path(root).rglob("*.json") if p.is_file())

    def read(self, path: Path, spec: JointSpec) -> list[RawSkeleton]:
        """The one body of the file as ``(1, T, V, C)`` float32, exactly the JSON's values."""
        path = Path(path)
        doc = _load(path)
        where = SourceLocation(str(path))
        missing = [k for k in KEYS if k not in doc]
        if missing:
            raise ParseError(
                where, f"expected the keys {', '.join(KEYS)}; missing {', '.join(missing)}"
            )
        if doc["file_name"] != path.stem:
            raise ReadError(
                where, f"file_name {doc['file_name']!r} does not match the file name {path.stem!r}"
            )
        label = doc["label"]
        if not isinstance(label, int) or isinstance(label, bool):
            raise ParseError(where, f"label: expected an integer, found {label!r}")
        meta = spec.parse_name(path.stem)
        if meta is None:
            raise ReadError(
                where,
                f"file name {path.stem!r} does not match the spec's sample_name "
                f"pattern {spec.name_pattern!r}",
            )
        # A spec whose label comes from the reader trusts the file; otherwise both must agree.
        expected = spec.label_of(meta, reader_label=label - 1)
        if expected is None or label - 1 != expected:
            want = "no label" if expected is None else f"label {expected + 1}"
            raise ReadError(
                where,
                f"label {label} disagrees with the name: the spec gives {path.stem!r} "
                f"{want} (1-based)",
            )
        joints = _skeleton_array(doc["skeletons"], path, spec.num_joints, len(spec.dims))
        return [
            RawSkeleton(
                name=path.stem, source=str(path), joints=joints, body_ids=("0",), label=label - 1
            )
        ]


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ReadError(SourceLocation(str(path)), f"cannot read file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ParseError(SourceLocation(str(path)), f"not UTF-8 text (byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(
            SourceLocation(str(path), exc.lineno, exc.colno), f"not valid JSON: {exc.msg}"
        ) from None
    if not isinstance(doc, dict):
        raise ParseError(
            SourceLocation(str(path)), f"expected a JSON object, found {type(doc).__name__}"
        )
    return doc


def _is_number(x: Any) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def _skeleton_array(frames: Any, path: Path, num_joints: int, dims: int) -> np.ndarray:
    """Validate ``[T][V][C]`` numbers and return them as ``(1, T, V, C)`` float32."""
    if not isinstance(frames, list):
        raise ParseError(
            SourceLocation(str(path)),
            f"skeletons: expected a list of frames, found {type(frames).__name__}",
        )
    if not frames:
        raise EmptySampleError(SourceLocation(str(path)), "skeletons holds no frame")
    for t, frame in enumerate(frames):
        where = SourceLocation(str(path), frame=t)
        if not isinstance(frame, list) or len(frame) != num_joints:
            found = f"{len(frame)} joints" if isinstance(frame, list) else repr(frame)[:40]
            raise ParseError(
                where, f"skeletons: expected {num_joints} joints x {dims} numbers, found {found}"
            )
        for j, joint in enumerate(frame):
            if not (isinstance(joint, list) and len(joint) == dims and all(map(_is_number, joint))):
                raise ParseError(
                    where,
                    f"skeletons: joint {j}: expected {dims} numbers, found {repr(joint)[:60]}",
                )
    # json gives correctly rounded float64s; the cast to float32 is numpy's, as in the peers.
    return np.array(frames, dtype=np.float32)[None]
