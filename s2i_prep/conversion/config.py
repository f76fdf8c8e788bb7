"""What one conversion is asked to do and what it reports: options, progress, result, stops."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import S2IError
from ..urls import Url, location

if TYPE_CHECKING:
    from ..encoding import EncodeConfig

ON_ERROR = ("skip", "fail")
#: Options that change how a run executes, not what it produces (left out of the fingerprint).
RUN_ONLY = ("workers", "dask", "resume", "overwrite")
#: Also left out of the options recorded in the dataset (the dataset does not name itself).
NOT_RECORDED = (*RUN_ONLY, "output")


def _default_encode() -> EncodeConfig:
    from ..encoding import EncodeConfig

    return EncodeConfig()


def _inputs(value: Any) -> tuple[Path | Url, ...]:
    """The inputs as a sorted tuple of paths (``file://`` URLs included) and fsspec URLs: one
    path-like or URL, or a sequence of them."""
    if isinstance(value, (str, Path, Url)) or hasattr(value, "__fspath__"):
        value = [value]
    paths = [location(p) for p in value]
    if not paths:
        raise ValueError("input: expected at least one input path")
    seen: dict[str, Path | Url] = {}
    for p in paths:
        key = str(p) if isinstance(p, Url) else str(p.absolute())
        if key in seen:
            raise ValueError(f"input {p} is listed twice"
                             + (f" (also as {seen[key]})" if str(seen[key]) != str(p) else ""))
        seen[key] = p
    return tuple(sorted(paths, key=str))


def describe_inputs(inputs: tuple[Path | Url, ...]) -> str:
    """The inputs for a message: ``a.zip``, or ``a.zip + b.zip`` (at most three named)."""
    names = [str(p) for p in inputs]
    if len(names) > 3:
        names = [*names[:2], f"... ({len(inputs)} inputs)"]
    return " + ".join(names)


@dataclass(frozen=True)
class ConvertConfig:
    """Everything one conversion depends on; saved with the dataset (``to_dict``).

    Attributes:
        input: the raw dataset: one input or several, each a folder (layout per format, see
            docs/CONVERT.md), an archive of one (``.zip``, ``.tar``, ``.tar.gz``, ...) or a
            pyskl pickle, or an fsspec URL of objects or of an archive (``s3://bucket/raw``,
            docs/DISTRIBUTED.md). Several inputs convert as one dataset over the union of their
            files (NTU-120 ships as two zips); they are kept sorted, so the order they are listed
            in changes nothing. A single path is accepted and stored as a 1-tuple.
        output: ``*.zarr`` (Zarr v3) or ``*.h5``/``*.hdf5`` (HDF5), or the URL of a ``.zarr``.
        format: a built-in format name (``ntu25``) or a path to a spec ``.yaml``.
        encode: the S2I encoding options.
        workers: worker processes; ``None`` = every usable core, ``0`` = in this process.
        dask: run the tasks on a Dask cluster instead: a scheduler address or ``local:N``
            (``workers`` is then ignored; see docs/DISTRIBUTED.md).
        codec, shard_size: passed to the store (``None`` = the store's default shard size).
        on_error: ``"skip"`` bad files into the report, or ``"fail"`` at the first one.
        resume, overwrite: continue a killed run / replace an existing output.
        keep_missing: keep samples named in the spec's exclude lists.
        limit: convert only the first ``limit`` input files (after exclusion), for trials.
        reader_options: keyword options of the format's reader (e.g. PKU ``clip_bounds``).
    """

    input: tuple[Path | Url, ...]
    output: Path | Url
    format: str = "ntu25"
    encode: EncodeConfig = field(default_factory=_default_encode)
    workers: int | None = None
    dask: str | None = None
    codec: str = "auto"
    shard_size: int | None = None
    on_error: str = "skip"
    resume: bool = False
    overwrite: bool = False
    keep_missing: bool = False
    limit: int | None = None
    reader_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", _inputs(self.input))
        # a local Path (also for file:// URLs), or an fsspec URL (s2i_prep.urls)
        object.__setattr__(self, "output", location(self.output))
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, found {self.on_error!r}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0, found {self.workers}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, found {self.limit}")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings, ``encode`` as its own dict)."""
        return {
            # one input is recorded as a string, as before several were possible
            "input": str(self.input[0]) if len(self.input) == 1 else [str(p) for p in self.input],
            "output": str(self.output),
            "format": self.format,
            "encode": self.encode.to_dict(),
            "workers": self.workers,
            "dask": self.dask,
            "codec": self.codec,
            "shard_size": self.shard_size,
            "on_error": self.on_error,
            "resume": self.resume,
            "overwrite": self.overwrite,
            "keep_missing": self.keep_missing,
            "limit": self.limit,
            "reader_options": dict(self.reader_options),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConvertConfig:
        """Inverse of :meth:`to_dict` (e.g. the ``convert`` attribute of a dataset plus paths)."""
        from ..encoding import EncodeConfig

        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown convert options {sorted(unknown)}; expected {sorted(known)}")
        kwargs = dict(d)
        if "encode" in kwargs:
            kwargs["encode"] = EncodeConfig.from_dict(kwargs["encode"])
        return cls(**kwargs)


@dataclass(frozen=True)
class ProgressUpdate:
    """Sent to the ``progress`` callback after every input file (in input order)."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    samples: int
    skipped: int
    #: Bytes read and seconds spent converting in this run (not counting planning, kernel
    #: compilation and worker start-up), the basis of a throughput figure.
    run_bytes: int = 0
    run_seconds: float = 0.0


@dataclass(frozen=True)
class ConvertResult:
    """What a finished conversion did. ``skipped_list`` rows are ``(path, reason, kind)``.

    ``files``, ``samples`` and the skip counts describe the whole dataset; ``bytes_in`` and
    ``seconds`` only this run (after a resume: the files read since the resume). ``seconds``
    includes ``setup_seconds`` (planning, kernel compilation on a first run, worker start-up).
    ``limited``: input files left out by ``limit`` (not counted as excluded).
    """

    output: Path | Url
    files: int
    samples: int
    skipped: int
    excluded: int
    skipped_list: tuple[tuple[str, str, str], ...]
    seconds: float
    bytes_in: int
    setup_seconds: float = 0.0
    limited: int = 0

    @property
    def mb_per_s(self) -> float:
        """Raw input megabytes (10^6 bytes) per second of converting (setup time left out)."""
        busy = self.seconds - self.setup_seconds
        return self.bytes_in / 1e6 / busy if busy > 0 else 0.0


@dataclass(frozen=True)
class Kept:
    """What the partial output of a stopped or failed run holds for ``--resume``."""

    partial: Path | Url
    samples: int
    files_done: int
    files_total: int


class ConvertStopped(KeyboardInterrupt):
    """``convert`` was stopped by Ctrl-C or a stop signal (``signum``) after committing what it
    had; ``kept`` is what ``resume=True`` continues from (None: nothing was written)."""

    def __init__(self, signum: int, kept: Kept | None) -> None:
        self.signum = signum
        self.kept = kept
        super().__init__(signal.Signals(signum).name)


class ConvertFailed(S2IError):
    """``convert`` failed after it opened its output; ``kept`` as for :class:`ConvertStopped`
    (None when nothing was committed: the partial output was removed)."""

    def __init__(self, message: str, kept: Kept | None) -> None:
        self.kept = kept
        super().__init__(message)
