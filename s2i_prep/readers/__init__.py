"""Reader registry: a reader turns one raw file into :class:`~s2i_prep.skeleton.RawSkeleton` s.

A spec names its reader (``reader: ntu_skeleton``), so a new skeleton in an existing file grammar
needs only a YAML file; a new grammar is one module here decorated with :func:`register_reader`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..errors import S2IError, UnknownFormatError
from ..skeleton import RawSkeleton
from ..specs import JointSpec

__all__ = [
    "FIELDS", "Reader", "check_fields", "register_reader", "get_reader", "list_readers",
    "reader_for_input", "reader_for_inputs",
]

#: What a reader is asked to keep: every field of the format, or only joint positions (which is all
#: that conversion needs; a reader may then skip converting the other fields).
FIELDS = ("all", "xyz")


def check_fields(fields: str) -> str:
    """Validate the ``fields`` option every reader accepts."""
    if fields not in FIELDS:
        raise S2IError(f"fields must be one of {FIELDS}, found {fields!r}")
    return fields


class Reader(Protocol):
    """What every reader offers. Readers know nothing about images or storage.

    Constructors take keyword options only; every reader accepts ``fields`` (:data:`FIELDS`).
    Files are read through :func:`~s2i_prep.readers.rawfile.read_bytes` (regular files of bounded
    size only). A reader that cuts one file into labelled clips may also offer
    ``read_recording(path, spec) -> RawSkeleton``, the whole file without labels, which
    ``s2i-prep dump --stage raw`` then shows.
    """

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
    cls = _REGISTRY[name]
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise S2IError(f"reader {name!r} has no option {unknown[0]!r}; its options: "
                       f"{', '.join(accepted) or 'none'}")
    return cls(**options)


def list_readers() -> list[str]:
    return sorted(_REGISTRY)


def reader_for_input(input_path: Path, spec: JointSpec) -> tuple[str, JointSpec]:
    """The reader for ``input_path`` and the spec as that reader applies it: a pyskl/mmaction2
    pickle given as the input is read by ``pyskl_pickle`` whatever the spec's reader (the spec
    then names the skeleton only), otherwise the spec's reader and the spec unchanged."""
    from .pyskl_pickle import input_spec, is_pickle_input

    if not isinstance(input_path, Path):  # an fsspec URL: pickles are read from local files
        return spec.reader, spec
    if is_pickle_input(input_path):
        return "pyskl_pickle", input_spec(spec)
    return spec.reader, spec


def reader_for_inputs(inputs: tuple[Any, ...], spec: JointSpec) -> tuple[str, JointSpec]:
    """:func:`reader_for_input` for the inputs of one conversion: a pickle converts alone (its
    samples, splits and format come from the pickle itself)."""
    from .pyskl_pickle import is_pickle_input

    pickles = [p for p in inputs if isinstance(p, Path) and is_pickle_input(p)]  # not URLs
    if pickles and len(inputs) > 1:
        raise S2IError(
            f"{pickles[0]}: a pyskl/mmaction2 annotation pickle converts alone (its splits name "
            f"its own samples), not with {len(inputs) - 1} other input(s); convert each pickle "
            "into its own dataset"
        )
    return reader_for_input(inputs[0], spec)


# Built-in readers, imported in one visible block so they register themselves.
from . import ntu  # noqa: E402,F401
from . import nw_ucla  # noqa: E402,F401
from . import pku_mmd  # noqa: E402,F401
from . import kinetics  # noqa: E402,F401
from . import pyskl_pickle  # noqa: E402,F401
from . import toyota  # noqa: E402,F401
