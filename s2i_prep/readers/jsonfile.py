"""Loading one JSON document for the JSON readers (Kinetics-skeleton, Toyota Smarthome).

Hostile input is bounded before it is parsed: only regular files, at most :data:`MAX_BYTES`,
UTF-8 (a BOM is accepted), and the top level must be an object. Every failure is a
:class:`~s2i_prep.errors.ReadError` naming the file (and the line and column for bad JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ParseError, SourceLocation
from .rawfile import read_bytes

__all__ = ["MAX_BYTES", "load_object", "is_number", "all_numbers"]

#: Largest JSON file read (untrimmed Toyota Smarthome files reach a few hundred megabytes).
MAX_BYTES = 2 << 30


def load_object(path: Path, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """The JSON object in ``path``."""
    where = SourceLocation(str(path))
    data = read_bytes(path, max_bytes)  # regular files only, bounded; says why a path is refused
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(where, f"not UTF-8 text (byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(
            SourceLocation(str(path), exc.lineno, exc.colno), f"not valid JSON: {exc.msg}"
        ) from None
    except RecursionError:
        raise ParseError(where, "JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise ParseError(where, f"expected a JSON object, found {type(doc).__name__}")
    return doc


_NUMBER_TYPES = (int, float)


def is_number(x: Any) -> bool:
    """A JSON number. ``json`` gives exactly ``int`` or ``float`` for numbers (``bool`` is a
    subclass of ``int`` but not a number here), so an exact type test is enough and fast."""
    return type(x) in _NUMBER_TYPES


def all_numbers(values: Iterable[Any]) -> bool:
    """Every item is a JSON number (a type test per value: the readers' hot loop)."""
    types = _NUMBER_TYPES
    return all(type(v) in types for v in values)
