"""Reader registry: a reader turns one raw file into :class:`~s2i_prep.skeleton.RawSkeleton` s.

A spec names its reader (``reader: ntu_skeleton``), so a new skeleton in an existing file grammar
needs only a YAML file; a new grammar is one module here decorated with :func:`register_reader`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..errors import S2IError, UnknownFormatError
from ..skeleton import RawSkeleton
from ..specs import JointSpec

__all__ = ["Reader", "register_reader", "get_reader", "list_readers"]


class Reader(Protocol):
    """What every reader offers. Readers know nothing about images or storage."""

    #: Registry key, named after the file grammar (``ntu_skeleton``, ``pku_txt``, ``ucla_json``).
    name: str

    def discover(self, root: Path) -> list[Path]:
        """The raw files under ``root`` this reader would read, sorted by name.

        Files that merely look wrong (bad name, unexpected extension) are still returned when
        they plausibly belong to the dataset, so the pipeline can report them as skipped.
        """
        ...

    def read(self, path: Path, spec: JointSpec) -> list[RawSkeleton]:
        """Parse one raw file into one or more samples; raise :class:`~s2i_prep.errors.ReadError`."""
        ...


_REGISTRY: dict[str, Callable[..., Reader]] = {}


def register_reader(name: str) -> Callable[[type], type]:
    """Class decorator adding a reader under ``name``; a repeated name is an error."""

    def deco(cls: type) -> type:
        if name in _REGISTRY:
            raise S2IError(f"reader {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def get_reader(name: str, **options: Any) -> Reader:
    """An instance of the reader registered as ``name``, built with reader-specific options."""
    if name not in _REGISTRY:
        raise UnknownFormatError("reader", name, list(_REGISTRY))
    return _REGISTRY[name](**options)


def list_readers() -> list[str]:
    return sorted(_REGISTRY)


# Built-in readers, imported in one visible block so they register themselves.
from . import ntu  # noqa: E402,F401
from . import nw_ucla  # noqa: E402,F401
from . import pku_mmd  # noqa: E402,F401
