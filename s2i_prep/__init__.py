"""s2i-prep: raw skeleton recordings -> canonical skeleton arrays -> S2I tensors -> sharded datasets."""

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
from .specs import JointSpec, list_specs, load_spec

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
]
