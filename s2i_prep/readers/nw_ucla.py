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

import json
import re
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmptySampleError, ParseError, ReadError, SourceLocation
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader
from .rawfile import encoding_problem, read_bytes

__all__ = ["UclaReader"]

KEYS = ("file_name", "skeletons", "label")
#: float64 values at or beyond this round to infinity in float32 (the midpoint between the
#: largest float32 and 2**128 rounds to even, i.e. up).
_FLOAT32_OVERFLOW = 3.4028235677973366e38
#: Longer integer literals are beyond float32 whatever their digits; they are never converted.
_MAX_INT_CHARS = 45
_LABEL_MAX = 2**31 - 1
#: Nesting depth reported when Python's parser gives up (the format itself needs 4).
_DEPTH_SHOWN = 64


class _OutOfRange(str):
    """A number literal beyond float32, kept as its text so the error can show and locate it."""


class _NonFinite(Exception):
    """``NaN``, ``Infinity`` or ``-Infinity`` in the JSON text."""


def _parse_float(text: str) -> float | _OutOfRange:
    value = float(text)
    return value if -_FLOAT32_OVERFLOW < value < _FLOAT32_OVERFLOW else _OutOfRange(text)


def _parse_int(text: str) -> int | _OutOfRange:
    if len(text) > _MAX_INT_CHARS:
        return _OutOfRange(text)
    value = int(text)
    return value if -_FLOAT32_OVERFLOW < float(value) < _FLOAT32_OVERFLOW else _OutOfRange(text)


def _parse_constant(name: str) -> Any:
    raise _NonFinite(name)


def _shown(value: Any, limit: int = 60) -> str:
    """A JSON value as JSON text (``true``, ``null``, ``"7"``), shortened for a message."""
    text = str(value) if isinstance(value, _OutOfRange) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _at(path: Path, text: str, offset: int, frame: int | None = None) -> SourceLocation:
    """The location of character ``offset`` of the text (1-based line and column)."""
    line = text.count("\n", 0, offset) + 1
    return SourceLocation(str(path), line, offset - text.rfind("\n", 0, offset), frame)


_STRING = r'"(?:[^"\\]|\\.)*"'


def _locate(path: Path, text: str, literal: str, frame: int | None = None) -> SourceLocation:
    """Where ``literal`` (a number or NaN/Infinity as the parser saw it) first stands outside
    strings. The parser reads maximal literals, so a number is not followed by another number
    character; a constant may be (``-Infinity0`` fails only after it)."""
    tail = r"(?![0-9.eE+-])" if literal[-1:].isdigit() else ""
    for pattern in (_STRING + r"|(?<![\w.+-])" + re.escape(literal) + tail,
                    _STRING + "|" + re.escape(literal)):
        for m in re.finditer(pattern, text):
            if not m.group().startswith('"'):
                return _at(path, text, m.start(), frame)
    return _at(path, text, len(text) - len(text.lstrip()), frame)


def _value_of(path: Path, text: str, key: str | None) -> SourceLocation:
    """Where the value of top-level ``key`` starts (the last one, as ``json`` keeps the last of
    repeated keys), or the document's first character when ``key`` is None or absent."""
    found = None if key is None else list(re.finditer(rf'"{key}"\s*:\s*', text))
    return _at(path, text, found[-1].end() if found else len(text) - len(text.lstrip()))


def _too_deep(path: Path, text: str) -> ParseError:
    """The error for nesting Python's parser cannot follow, at the bracket that goes too deep."""
    depth = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > _DEPTH_SHOWN:
                line = text.count("\n", 0, m.start()) + 1
                column = m.start() - text.rfind("\n", 0, m.start())
                return ParseError(
                    SourceLocation(str(path), line, column),
                    f"JSON nested more than {_DEPTH_SHOWN} levels deep (the format needs 4)",
                )
        elif c in "]}":
            depth -= 1
    return ParseError(SourceLocation(str(path)), "JSON nested too deeply to parse")


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
        doc, text = _load(path)
        missing = [k for k in KEYS if k not in doc]
        if missing:
            raise ParseError(
                _value_of(path, text, None),
                f"expected the keys {', '.join(KEYS)}; missing {', '.join(missing)}",
            )
        if doc["file_name"] != path.stem:
            raise ReadError(
                _value_of(path, text, "file_name"),
                f"file_name {_shown(doc['file_name'])} does not match the file name "
                f"{_shown(path.stem)}",
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
        meta = spec.parse_name(path.stem)
        if meta is None:
            raise ReadError(
                SourceLocation(str(path)),
                f"file name {path.stem!r} does not match the spec's sample_name "
                f"pattern {spec.name_pattern!r}",
            )
        # A spec whose label comes from the reader trusts the file; otherwise both must agree.
        # A name without a label (an action outside the spec's map) is left to the conversion,
        # which skips it as ``no_label``; a label that contradicts the name is an error here.
        expected = spec.label_of(meta, reader_label=label - 1)
        if expected is not None and label - 1 != expected:
            raise ReadError(
                _value_of(path, text, "label"),
                f"label {label} disagrees with the name: the spec gives {path.stem!r} "
                f"label {expected + 1} (1-based)",
            )
        joints = _skeleton_array(doc["skeletons"], path, text, spec.num_joints, len(spec.dims))
        return [
            RawSkeleton(
                name=path.stem, source=str(path), joints=joints, body_ids=("0",), label=label - 1
            )
        ]


def _load(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed document and its text (kept to locate values in error messages)."""
    data = read_bytes(path)
    problem = encoding_problem(data)
    if problem:
        raise ParseError(SourceLocation(str(path), 1, 1), problem)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ParseError(
            SourceLocation(str(path), line, column),
            f"not UTF-8 text: byte 0x{data[exc.start]:02X} ({exc.reason})",
        ) from None
    try:
        doc = json.loads(
            text, parse_float=_parse_float, parse_int=_parse_int, parse_constant=_parse_constant
        )
    except json.JSONDecodeError as exc:
        raise ParseError(
            SourceLocation(str(path), exc.lineno, exc.colno), f"not valid JSON: {exc.msg}"
        ) from None
    except _NonFinite as exc:
        raise ParseError(
            _locate(path, text, str(exc)),
            f"{exc} is not accepted: numbers must be finite (see docs/READERS.md)",
        ) from None
    except RecursionError:
        raise _too_deep(path, text) from None
    if not isinstance(doc, dict):
        raise ParseError(
            _value_of(path, text, None), f"expected a JSON object, found {_json_type(doc)}"
        )
    return doc, text


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (array, object, string, number, true, null)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str) and not isinstance(value, _OutOfRange):
        return "string"
    return {list: "array", dict: "object"}.get(type(value), "number")


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
