"""fsspec URLs (``s3://bucket/raw``, ``gs://...``, ``memory://...``) where a local path may stand.

A :class:`Url` goes where the converter, the store and the training loader hold a ``Path``: it has
the few path operations they use (``name``, ``suffix``, ``with_name``, ``joinpath``, ``exists``)
and deliberately no ``__fspath__``, so no ``os`` function can mistake it for a local path. Local
paths never come here: :func:`location` turns plain paths and ``file://`` URLs into ``Path`` and
they keep the local fast path (no fsspec on it).

Filesystem instances are created per process (:func:`filesystem` caches them by pid), because a
forked worker must not reuse its parent's connections or event loop. ``memory://`` is per process:
forked workers see a snapshot taken at the fork, and nothing they write reaches the parent.

Credentials and endpoints come from wherever the fsspec implementation looks (for s3fs: the AWS
environment variables and config files, ``FSSPEC_S3_*`` variables, fsspec's config files), or
from explicit ``storage_options`` (``S2IDataset(..., storage_options=...)``,
:func:`set_storage_options`, ``s2i-prep convert --storage-option``). They are never recorded in a
dataset.
"""

from __future__ import annotations

import os
import posixpath
import re
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import S2IError

__all__ = ["Url", "filesystem", "is_url", "location", "set_storage_options", "storage_options"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")

#: Options given with :func:`set_storage_options`, per protocol (inherited by forked workers).
_OPTIONS: dict[str, dict[str, Any]] = {}
_FS: dict[tuple[int, str, str], Any] = {}
_FS_LOCK = threading.Lock()


#: fsspec instances a forked child inherited: kept alive, never used (see _keep_inherited).
_INHERITED: list[Any] = []


def _keep_inherited() -> None:
    """In a forked child: hold on to every filesystem instance inherited from the parent. fsspec
    drops its per-process instance cache in a child; collecting those instances would make their
    HTTP sessions (the parent's) complain "Unclosed client session" in every worker."""
    spec = sys.modules.get("fsspec.spec")
    if spec is None:
        return
    classes = [spec.AbstractFileSystem]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        _INHERITED.extend(cls.__dict__.get("_cache", {}).values())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_keep_inherited)


def is_url(value: object) -> bool:
    """Whether ``value`` is a :class:`Url` or text of the form ``protocol://...``."""
    return isinstance(value, Url) or (isinstance(value, str) and _SCHEME.match(value) is not None)


def set_storage_options(protocol: str, options: Mapping[str, Any]) -> None:
    """Options for every filesystem of ``protocol`` this process (and its forked workers) opens
    without options of its own, e.g. ``{"endpoint_url": ..., "key": ..., "secret": ...}``."""
    _OPTIONS[protocol] = dict(options)


def storage_options(url: Url | None = None) -> dict[str, Any]:
    """The options ``url``'s filesystem is created with (its own, else the process-wide ones);
    without ``url``: every process-wide option, per protocol."""
    if url is None:
        return {protocol: dict(options) for protocol, options in _OPTIONS.items()}
    return dict(_OPTIONS.get(url.protocol, {}) if url.options is None else url.options)


def filesystem(protocol: str, options: Mapping[str, Any] | None = None) -> Any:
    """This process's fsspec filesystem for ``protocol`` (created after a fork, never inherited).

    Raises:
        S2IError: fsspec or the protocol's implementation is not installed.
    """
    merged = dict(_OPTIONS.get(protocol, {}) if options is None else options)
    pid = os.getpid()
    key = (pid, protocol, repr(sorted(merged.items())))
    fs = _FS.get(key)
    if fs is not None:
        return fs
    with _FS_LOCK:
        # Instances inherited through fork (keyed by the parent's pid) hold the parent's sockets
        # and event loop: never used here, and kept referenced so that collecting them does not
        # try to close the parent's sessions from this process.
        try:
            import fsspec

            fs = fsspec.filesystem(protocol, **merged)  # fsspec, too, caches per pid
        except ImportError as exc:
            raise S2IError(f"{protocol}:// URLs need an fsspec implementation that is not "
                           f"installed: {exc} (e.g. pip install s3fs / gcsfs / adlfs)") from None
        except ValueError:
            raise S2IError(f"{protocol}:// is not a protocol fsspec knows") from None
        _FS[key] = fs
    return fs


class Url:
    """An fsspec URL standing where a path stands (see the module doc).

    Attributes:
        protocol: ``s3``, ``gs``, ``memory``, ...
        path: the part after ``protocol://`` without a trailing slash (the filesystem's path).
        options: storage options of this URL's filesystem (``None``: the process-wide ones).
    """

    __slots__ = ("options", "path", "protocol")

    def __init__(self, text: str, options: Mapping[str, Any] | None = None) -> None:
        m = _SCHEME.match(text)
        if m is None:
            raise ValueError(f"not a URL: {text!r}")
        self.protocol = m.group(1).lower()
        rest = text[m.end():].rstrip("/")
        if self.protocol == "memory":
            rest = "/" + rest.lstrip("/")  # the memory filesystem's paths are absolute
        self.path = rest
        self.options = None if options is None else dict(options)

    def _new(self, path: str) -> Url:
        return Url(f"{self.protocol}://{path}", self.options)

    def __str__(self) -> str:
        path = self.path.lstrip("/") if self.protocol == "memory" else self.path
        return f"{self.protocol}://{path}"

    def __repr__(self) -> str:
        return f"Url({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Url) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Url, (str(self), self.options))

    @property
    def fs(self) -> Any:
        return filesystem(self.protocol, self.options)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def suffix(self) -> str:
        name = self.name
        dot = name.rfind(".")
        return name[dot:] if 0 < dot < len(name) - 1 else ""

    @property
    def stem(self) -> str:
        return self.name[: len(self.name) - len(self.suffix)]

    @property
    def parent(self) -> Url:
        return self._new(posixpath.dirname(self.path))

    def with_name(self, name: str) -> Url:
        return self._new(posixpath.join(posixpath.dirname(self.path), name))

    def joinpath(self, *parts: str) -> Url:
        return self._new(posixpath.join(self.path, *parts))

    __truediv__ = joinpath

    def key(self, *parts: str) -> str:
        """The filesystem path of ``parts`` below this URL."""
        return posixpath.join(self.path, *parts)

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))


def location(value: str | os.PathLike[str] | Url, options: Mapping[str, Any] | None = None
             ) -> Path | Url:
    """A local ``Path`` for a path or a ``file://`` URL, else a :class:`Url`."""
    if isinstance(value, Url):
        return value if options is None else Url(str(value), options)
    text = os.fspath(value)
    m = _SCHEME.match(text) if isinstance(text, str) else None
    if m is None:
        return Path(text)
    if m.group(1).lower() in ("file", "local"):
        return Path(text[m.end():] or ".")
    return Url(text, options)
