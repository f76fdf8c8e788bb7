"""Loading JSON inputs safely, for every JSON reader (NW-UCLA, Kinetics-skeleton, Toyota Smarthome).

Hostile input is bounded before and while it is parsed: only regular files up to a size bound
(:func:`~s2i_prep.readers.rawfile.read_bytes`), UTF-8 (a BOM is accepted; UTF-16/32 and binary
files are named), the top level an object. Every failure is a located
:class:`~s2i_prep.errors.ParseError`:

- ``NaN``/``Infinity``/``-Infinity`` (which Python's ``json`` accepts) are errors at their line
  and column: numbers must be finite (docs/READERS.md, "Hostile input");
- integer literals longer than 45 characters or beyond float32 are kept as their text
  (:class:`OutOfRange`) instead of being converted (Python's 4,300-digit limit is never reached),
  so a reader reports them as "value out of range" with their place;
- nesting Python's parser cannot follow is reported at the bracket that goes too deep.

Values in messages are shown as JSON (:func:`shown`, :func:`json_type`): ``true``, ``null``,
``"7"``, "array", never Python's ``True``/``None``/``list``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParseError, SourceLocation
from .rawfile import MAX_FILE_BYTES, encoding_problem, read_bytes

__all__ = [
    "MAX_BYTES", "FLOAT32_OVERFLOW", "OutOfRange", "load_document", "load_object", "is_number",
    "all_numbers", "shown", "json_type", "locate", "value_of", "float32_array", "numbers_problem",
    "numbers_error", "out_of_range", "place",
]

#: Largest Kinetics/Toyota JSON file read (untrimmed Toyota Smarthome files reach a few hundred MB).
MAX_BYTES = 2 << 30
#: float64 values at or beyond this round to infinity in float32 (the midpoint between the
#: largest float32 and 2**128 rounds to even, i.e. up).
FLOAT32_OVERFLOW = 3.4028235677973366e38
#: Longer integer literals are beyond float32 whatever their digits; they are never converted.
_MAX_INT_CHARS = 45
#: Nesting depth reported when Python's parser gives up (the formats need at most 5).
_DEPTH_SHOWN = 64
_STRING = r'"(?:[^"\\]|\\.)*"'


class OutOfRange(str):
    """A number literal beyond float32, kept as its text so the error can show and locate it."""


class _NonFinite(Exception):
    """``NaN``, ``Infinity`` or ``-Infinity`` in the JSON text."""


def parse_float(text: str) -> float | OutOfRange:
    """``json``'s ``parse_float`` for readers that check every float as it is parsed (NW-UCLA)."""
    value = float(text)
    return value if -FLOAT32_OVERFLOW < value < FLOAT32_OVERFLOW else OutOfRange(text)


def _parse_int(text: str) -> int | OutOfRange:
    if len(text) > _MAX_INT_CHARS:
        return OutOfRange(text)
    value = int(text)
    return value if -FLOAT32_OVERFLOW < float(value) < FLOAT32_OVERFLOW else OutOfRange(text)


def _parse_constant(name: str) -> Any:
    raise _NonFinite(name)


def shown(value: Any, limit: int = 60) -> str:
    """A JSON value as JSON text (``true``, ``null``, ``"7"``, ``1e+39``), shortened for a message."""
    if isinstance(value, OutOfRange):
        text = str(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):  # not from JSON (a caller's own value)
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (array, object, string, number, true, null)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str) and not isinstance(value, OutOfRange):
        return "string"
    return {list: "array", dict: "object"}.get(type(value), "number")


def _at(path: Path, text: str, offset: int, frame: int | None = None) -> SourceLocation:
    """The location of character ``offset`` of the text (1-based line and column)."""
    line = text.count("\n", 0, offset) + 1
    return SourceLocation(str(path), line, offset - text.rfind("\n", 0, offset), frame)


def locate(path: Path, text: str, literal: str, frame: int | None = None) -> SourceLocation:
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


def value_of(path: Path, text: str, key: str | None) -> SourceLocation:
    """Where the value of top-level ``key`` starts (the last one, as ``json`` keeps the last of
    repeated keys), or the document's first character when ``key`` is None or absent."""
    found = None if key is None else list(re.finditer(rf'"{re.escape(key)}"\s*:\s*', text))
    return _at(path, text, found[-1].end() if found else len(text) - len(text.lstrip()))


def _too_deep(path: Path, text: str) -> ParseError:
    """The error for nesting Python's parser cannot follow, at the bracket that goes too deep."""
    depth = 0
    for m in re.finditer(_STRING + r"|[\[\]{}]", text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > _DEPTH_SHOWN:
                return ParseError(
                    _at(path, text, m.start()),
                    f"JSON nested more than {_DEPTH_SHOWN} levels deep (the format needs at most 5)",
                )
        elif c in "]}":
            depth -= 1
    return ParseError(SourceLocation(str(path)), "JSON nested too deeply to parse")


def load_document(
    path: Path, max_bytes: int = MAX_FILE_BYTES, *, check_floats: bool = False
) -> tuple[dict[str, Any], str]:
    """The JSON object in ``path`` and its text (kept to locate values in error messages).

    With ``check_floats`` every float beyond float32 is kept as :class:`OutOfRange` text (one
    Python call per float); without it, floats arrive as ``json`` parses them and the reader
    checks their range in bulk (:func:`float32_array`).
    """
    data = read_bytes(path, max_bytes)  # regular files only, bounded; says why a path is refused
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
    del data
    try:
        doc = json.loads(
            text,
            parse_float=parse_float if check_floats else None,
            parse_int=_parse_int,
            parse_constant=_parse_constant,
        )
    except json.JSONDecodeError as exc:
        raise ParseError(
            SourceLocation(str(path), exc.lineno, exc.colno), f"not valid JSON: {exc.msg}"
        ) from None
    except _NonFinite as exc:
        raise ParseError(
            locate(path, text, str(exc)),
            f"{exc} is not accepted: numbers must be finite (see docs/READERS.md)",
        ) from None
    except RecursionError:
        raise _too_deep(path, text) from None
    if not isinstance(doc, dict):
        raise ParseError(value_of(path, text, None), f"expected a JSON object, found {json_type(doc)}")
    return doc, text


def load_object(path: Path, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """The JSON object in ``path`` (for files whose text is not needed afterwards)."""
    return load_document(path, max_bytes)[0]


_NUMBER_TYPES = (int, float)


def is_number(x: Any) -> bool:
    """A JSON number. ``json`` gives exactly ``int`` or ``float`` for numbers (``bool`` is a
    subclass of ``int`` and :class:`OutOfRange` of ``str``: neither is a number here), so an exact
    type test is enough and fast."""
    return type(x) in _NUMBER_TYPES


def all_numbers(values: Iterable[Any]) -> bool:
    """Every item is a JSON number (a type test per value: the readers' hot loop)."""
    types = _NUMBER_TYPES
    return all(type(v) in types for v in values)


def float32_array(rows: list[list[float]], width: int) -> tuple[np.ndarray | None, int | None]:
    """``rows`` (each ``width`` JSON numbers) as ``(N, width)`` float32, or ``None`` and the flat
    position of the first value beyond float32. The cast is numpy's, from the correctly rounded
    float64s ``json`` gives, as in the peers, and cannot overflow after the check."""
    wide = np.array(rows, dtype=np.float64).reshape(-1, width)
    bad = np.abs(wide) >= FLOAT32_OVERFLOW  # json gives inf for literals beyond float64
    if bad.any():
        return None, int(np.argmax(bad))
    return wide.astype(np.float32), None


def numbers_problem(value: Any, count: int, name: str) -> tuple[str, OutOfRange | None]:
    """Why ``value`` (at JSON path ``name``) is not an array of ``count`` numbers, and the
    out-of-range literal to locate, if that is the problem. Called only once a check failed."""
    if not isinstance(value, list):
        return f"{name}: expected an array of {count} numbers, found {shown(value)}", None
    if len(value) != count:
        return f"{name}: expected an array of {count} numbers, found {len(value)} items", None
    for j, v in enumerate(value):
        if isinstance(v, OutOfRange):
            return f"value out of range: {name}[{j}] {v[:40]} is beyond float32", v
        if not is_number(v):
            return f"{name}[{j}]: expected a number, found {shown(v)}", None
    return f"{name}: expected an array of {count} numbers", None  # not reached


def place(path: Path, text: str, value: Any, frame: int | None, body: int | None) -> SourceLocation:
    """Frame and body of a value, with the line and column when it is an out-of-range literal."""
    if isinstance(value, OutOfRange):
        at = locate(path, text, value)
        return SourceLocation(str(path), at.line, at.column, frame, body)
    return SourceLocation(str(path), frame=frame, body=body)


def numbers_error(
    path: Path, text: str, node: Any, key: str, count: int, name: str, frame: int, body: int
) -> ParseError:
    """The error for the object at JSON path ``name`` whose ``key`` is not ``count`` numbers
    (called once a check failed; the estimated-pose readers' person and detection entries)."""
    literal = None
    if not isinstance(node, dict):
        problem = f'{name}: expected an object with "{key}", found {shown(node)}'
    elif key not in node:
        problem = f'{name}: missing "{key}"'
    else:
        problem, literal = numbers_problem(node[key], count, f"{name}.{key}")
    return ParseError(place(path, text, literal, frame, body), problem)


def out_of_range(name: str, value: float) -> str:
    """The message for a float ``json`` parsed that float32 cannot hold."""
    found = shown(value) if np.isfinite(value) else "(a literal beyond float64)"
    return f"value out of range: {name} {found} is beyond float32 (|x| <= 3.4028235e+38)"
