"""NW-UCLA reader (``ucla_json``): the CTR-GCN ``all_sqe`` JSON form, one sample per file.

Each file is ``{"file_name": "<stem>", "skeletons": [T][V][3], "label": <1-based int>}`` with one
body (Kinect v1, V = 20). Besides the shape, two cross-checks catch renamed or mislabelled files:
``file_name`` must equal the file stem, and ``label`` must agree with the label the spec derives
from the name (``a08`` -> 7 in the 1-based JSON, 6 in s2i), unless the spec takes the label from
the reader (``label: {source: reader}``). A name the spec gives no label (an action outside its
map, such as ``a07``) is read, and a conversion skips it as ``no_label``.

Numbers must be finite and fit float32: ``NaN``/``Infinity`` (which Python's ``json`` accepts),
``1e308`` and integers such as ``10**50`` are located errors, as are over-long integers (which
would otherwise hit Python's 4,300-digit limit) and absurd nesting (``RecursionError``).
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmptySampleError, ParseError, ReadError, SourceLocation
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader
from .archive import file_stem
from .jsonfile import OutOfRange as _OutOfRange
from .jsonfile import json_type as _json_type
from .jsonfile import load_document
from .jsonfile import locate as _locate
from .jsonfile import shown as _shown
from .jsonfile import value_of as _value_of

__all__ = ["UclaReader"]

KEYS = ("file_name", "skeletons", "label")
_LABEL_MAX = 2**31 - 1


@register_reader("ucla_json")
class UclaReader:
    """Reads ``aXX_sYY_eZZ_vWW.json`` files (positions are all the format holds, so ``fields``
    changes nothing)."""

    def __init__(self, fields: str = "all") -> None:
        self.fields = check_fields(fields)

    #: Members of an archive input this reader reads (see :mod:`s2i_prep.readers.archive`).
    archive_suffixes = (".json",)

    def discover(self, root: Path) -> list[Path]:
        """Every ``*.json`` under ``root``, recursively."""
        return sorted(p for p in Path(root).rglob("*.json") if p.is_file())

    def read(self, path: Path, spec: JointSpec) -> list[RawSkeleton]:
        """The one body of the file as ``(1, T, V, C)`` float32, exactly the JSON's values."""
        stem = file_stem(path)
        doc, text = load_document(path, check_floats=True)
        missing = [k for k in KEYS if k not in doc]
        if missing:
            raise ParseError(
                _value_of(path, text, None),
                f"expected the keys {', '.join(KEYS)}; missing {', '.join(missing)}",
            )
        if doc["file_name"] != stem:
            raise ReadError(
                _value_of(path, text, "file_name"),
                f"file_name {_shown(doc['file_name'])} does not match the file name "
                f"{_shown(stem)}",
            )
        label = doc["label"]
        if isinstance(label, _OutOfRange) or (
            isinstance(label, int) and not isinstance(label, bool) and not 1 <= label <= _LABEL_MAX
        ):
            raise ParseError(
                _value_of(path, text, "label"),
                f"value out of range: label {_shown(label)} is not a 1-based class label "
                f"(1..{_LABEL_MAX})",
            )
        if not isinstance(label, int) or isinstance(label, bool):
            raise ParseError(
                _value_of(path, text, "label"), f"label: expected an integer, found {_shown(label)}"
            )
        meta = spec.parse_name(stem)
        if meta is None:
            raise ReadError(
                SourceLocation(str(path)),
                f"file name {stem!r} does not match the spec's sample_name "
                f"pattern {spec.name_pattern!r}",
            )
        # A spec whose label comes from the reader trusts the file; otherwise both must agree.
        # A name without a label (an action outside the spec's map) is left to the conversion,
        # which skips it as ``no_label``; a label that contradicts the name is an error here.
        expected = spec.label_of(meta, reader_label=label - 1)
        if expected is not None and label - 1 != expected:
            raise ReadError(
                _value_of(path, text, "label"),
                f"label {label} disagrees with the name: the spec gives {stem!r} "
                f"label {expected + 1} (1-based)",
            )
        joints = _skeleton_array(doc["skeletons"], path, text, spec.num_joints, len(spec.dims))
        return [
            RawSkeleton(
                name=stem, source=str(path), joints=joints, body_ids=("0",), label=label - 1
            )
        ]


def _is_number(x: Any) -> bool:
    return isinstance(x, (Real, _OutOfRange)) and not isinstance(x, bool)


def _skeleton_array(
    frames: Any, path: Path, text: str, num_joints: int, dims: int
) -> np.ndarray:
    """Validate ``[T][V][C]`` numbers and return them as ``(1, T, V, C)`` float32."""
    if not isinstance(frames, list):
        raise ParseError(
            _value_of(path, text, "skeletons"),
            f"skeletons: expected a list of frames, found {_json_type(frames)}",
        )
    if not frames:
        raise EmptySampleError(_value_of(path, text, "skeletons"), "skeletons holds no frame")
    for t, frame in enumerate(frames):
        where = SourceLocation(str(path), frame=t)
        if not isinstance(frame, list) or len(frame) != num_joints:
            found = f"{len(frame)} joints" if isinstance(frame, list) else _shown(frame, 40)
            raise ParseError(
                where, f"skeletons: expected {num_joints} joints x {dims} numbers, found {found}"
            )
        for j, joint in enumerate(frame):
            if not (isinstance(joint, list) and len(joint) == dims and all(map(_is_number, joint))):
                raise ParseError(
                    where,
                    f"skeletons: joint {j}: expected {dims} numbers, found {_shown(joint)}",
                )
            for value in joint:
                if isinstance(value, _OutOfRange):
                    raise ParseError(
                        _locate(path, text, value, frame=t),
                        f"value out of range: skeletons: joint {j}: {_shown(value)} is beyond "
                        f"float32 (|x| <= {float(np.finfo(np.float32).max):.7g})",
                    )
    # json gives correctly rounded float64s (integers exactly, up to the range checked above);
    # the cast to float32 is numpy's, as in the peers, and cannot overflow after that check.
    return np.array(frames, dtype=np.float64).astype(np.float32)[None]
