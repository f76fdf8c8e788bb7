"""s2i-prep: raw skeleton recordings -> canonical skeleton arrays -> S2I tensors -> sharded datasets.

The light names (errors, specs, skeleton types) import eagerly; the rest load on first use, so
``import s2i_prep`` (and ``s2i-prep --help``) neither imports Numba nor compiles anything.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .errors import (
    EmptySampleError,
    ParseError,
    ReadError,
    S2IError,
    SourceLocation,
    SpecError,
    StoreError,
    TruncatedError,
    UnknownFormatError,
)
from .skeleton import RawSkeleton, Skeleton
from .specs import JointSpec, list_specs, load_spec, parse_spec_text

#: public name -> module that defines it (imported on first access)
_LAZY = {
    "get_reader": "readers",
    "list_readers": "readers",
    "select_bodies": "bodies",
    "EncodeConfig": "encoding",
    "encode": "encoding",
    "to_image": "encoding",
    "ConvertConfig": "pipeline",
    "ConvertResult": "pipeline",
    "convert": "pipeline",
    "open_dataset": "store",
    "inspect_dataset": "store",
    "verify_dataset": "store",
    "render_preview": "previews",
    "write_synthetic": "synthetic",
}

__all__ = [
    "__version__",
    "EmptySampleError",
    "JointSpec",
    "ParseError",
    "RawSkeleton",
    "ReadError",
    "S2IError",
    "Skeleton",
    "SourceLocation",
    "SpecError",
    "StoreError",
    "TruncatedError",
    "UnknownFormatError",
    "list_specs",
    "load_spec",
    "parse_spec_text",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
