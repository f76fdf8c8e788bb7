"""``convert()``: a whole raw skeleton dataset -> one S2I dataset (Zarr v3 or HDF5).

Per input file: read -> select bodies -> encode, in worker processes (:mod:`s2i_prep.parallel`).
Every failure of one file or sample becomes a row of the skip report and never a partial sample.
The parent consumes results strictly in input order and cuts them into whole shards, so the
output is byte-identical whatever the worker count; each shard is committed with a resume state
(cursor, statistics, report), so ``resume=True`` continues exactly where a killed run stopped.

A run that is stopped (Ctrl-C, SIGTERM: :class:`ConvertStopped`) or fails (:class:`ConvertFailed`)
keeps every committed shard and says what it kept; one that committed nothing leaves nothing.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._version import __version__
from .errors import ReadError, S2IError
from .parallel import OrderedPool, WorkerDied, default_workers
from .skeleton import RawSkeleton, Skeleton
from .specs import JointSpec, load_spec
from .store import layout
from .store.staging import fault_point

if TYPE_CHECKING:
    from .encoding import EncodeConfig
    from .readers import Reader

__all__ = [
    "ConvertConfig",
    "ConvertFailed",
    "ConvertResult",
    "ConvertStopped",
    "Kept",
    "ProgressUpdate",
    "Stages",
    "convert",
    "exclusion_names",
]

ON_ERROR = ("skip", "fail")
#: Consecutive input files per worker task: large enough to amortise IPC, small enough to balance.
FILES_PER_TASK = 8
#: Skip kinds that are not reader/encoder exceptions.
KIND_NAME, KIND_LABEL, KIND_DUPLICATE = "bad_name", "no_label", "duplicate"
KIND_NOT_FILE, KIND_PATH, KIND_RANGE = "not_a_file", "bad_path", "out_of_range"
#: Seconds of silent kernel compilation after which the user is told what is happening.
COMPILE_NOTICE_S = 2.0
#: Options that change how a run executes, not what it produces (left out of the fingerprint).
_RUN_ONLY = ("workers", "resume", "overwrite")
#: Also left out of the options recorded in the dataset (the dataset does not name itself).
_NOT_RECORDED = (*_RUN_ONLY, "output")


def _default_encode() -> EncodeConfig:
    from .encoding import EncodeConfig

    return EncodeConfig()


@dataclass(frozen=True)
class ConvertConfig:
    """Everything one conversion depends on; saved with the dataset (``to_dict``).

    Attributes:
        input: root of the raw dataset (layout per format, see docs/CONVERT.md).
        output: ``*.zarr`` (Zarr v3) or ``*.h5``/``*.hdf5`` (HDF5).
        format: a built-in format name (``ntu25``) or a path to a spec ``.yaml``.
        encode: the S2I encoding options.
        workers: worker processes; ``None`` = every usable core, ``0`` = in this process.
        codec, shard_size: passed to the store (``None`` = the store's default shard size).
        on_error: ``"skip"`` bad files into the report, or ``"fail"`` at the first one.
        resume, overwrite: continue a killed run / replace an existing output.
        keep_missing: keep samples named in the spec's exclude lists.
        limit: convert only the first ``limit`` input files (after exclusion), for trials.
        reader_options: keyword options of the format's reader (e.g. PKU ``clip_bounds``).
    """

    input: Path
    output: Path
    format: str = "ntu25"
    encode: EncodeConfig = field(default_factory=_default_encode)
    workers: int | None = None
    codec: str = "auto"
    shard_size: int | None = None
    on_error: str = "skip"
    resume: bool = False
    overwrite: bool = False
    keep_missing: bool = False
    limit: int | None = None
    reader_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        object.__setattr__(self, "output", Path(self.output))
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
            "input": str(self.input),
            "output": str(self.output),
            "format": self.format,
            "encode": self.encode.to_dict(),
            "workers": self.workers,
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
        from .encoding import EncodeConfig

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

    output: Path
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

    partial: Path
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


@dataclass(frozen=True)
class Stages:
    """The functions ``convert`` chains. Defaults are the real modules; tests pass fakes.

    Everything here must be picklable by reference (module-level functions and classes),
    because workers receive it.
    """

    get_reader: Callable[..., Reader]
    select: Callable[[RawSkeleton, JointSpec], Skeleton]
    encode: Callable[[Skeleton, JointSpec, EncodeConfig], np.ndarray]
    stored_shape: Callable[[JointSpec, EncodeConfig], tuple[int, int, int, int]]
    column_layout: Callable[[JointSpec], list[dict[str, Any]]]
    pixel_mapping: Callable[[EncodeConfig], dict[str, Any]]
    new_stats: Callable[[int], Any]
    open_writer: Callable[..., Any]
    warm: Callable[[], None]

    @classmethod
    def default(cls) -> Stages:
        from . import encoding, store
        from .bodies import select_bodies
        from .readers import get_reader

        return cls(
            get_reader=get_reader,
            select=select_bodies,
            encode=encoding.encode,
            stored_shape=encoding.stored_shape,
            column_layout=encoding.column_layout,
            pixel_mapping=encoding.pixel_mapping_params,
            new_stats=encoding.StreamStats,
            open_writer=store.open_writer,
            warm=warm_kernels,
        )


def warm_kernels() -> None:
    """Compile (or load from Numba's cache) every kernel module's ``warm()`` in this process.

    Called in the parent before workers fork, so they inherit compiled code instead of each
    compiling or racing on the on-disk cache.
    """
    import importlib
    import pkgutil

    from . import kernels

    for mod in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{mod.name}")
        warm = getattr(module, "warm", None)
        if callable(warm):
            warm()


# --------------------------------------------------------------------------------------------
# Worker side: one task = consecutive input files -> their events, in order.


class InputFile(NamedTuple):
    """One planned input: a regular file to read, or a path that is reported and never opened
    (``problem`` says why, ``kind`` is its report kind)."""

    path: str
    nbytes: int
    mtime_ns: int
    problem: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class _Sample:
    name: str
    path: str
    s2i: np.ndarray
    columns: dict[str, int]
    stats: Any  # this sample's StreamStats, computed in the worker, merged in input order


@dataclass(frozen=True)
class _Skip:
    path: str
    reason: str
    kind: str


@dataclass(frozen=True)
class _Excluded:
    name: str


@dataclass(frozen=True)
class _FileResult:
    index: int
    nbytes: int
    events: list[_Sample | _Skip | _Excluded]


@dataclass(frozen=True)
class _WorkerContext:
    spec: JointSpec
    reader: Reader
    stages: Stages
    encode_cfg: EncodeConfig
    excluded: frozenset[str]


_CTX: _WorkerContext | None = None


def _install(ctx: _WorkerContext) -> None:
    global _CTX
    _CTX = ctx


def _unexpected(exc: BaseException) -> str:
    return f"unexpected {type(exc).__name__}: {exc}"


def _reason(exc: ReadError, path: str) -> str:
    """The error's message and location, without repeating the path the report row names."""
    loc = exc.location
    where = [] if loc.path == path else [loc.path]
    if loc.line is not None:
        where.append(f"line {loc.line}" + ("" if loc.column is None else f", column {loc.column}"))
    text = f"{exc.message}{loc.detail()}"
    return f"{', '.join(where)}: {text}" if where else text


def _sample_events(ctx: _WorkerContext, raw: RawSkeleton, path: str) -> _Sample | _Skip | _Excluded:
    spec = ctx.spec
    if raw.name in ctx.excluded:
        return _Excluded(raw.name)
    meta = spec.parse_name(raw.name)
    if meta is None:
        return _Skip(
            path,
            f"sample name {raw.name!r} does not match the {spec.format} naming "
            f"pattern {spec.name_pattern}",
            KIND_NAME,
        )
    for key in spec.fields:
        meta.setdefault(key, int(raw.meta.get(key, -1)))
    label = spec.label_of(meta, raw.label)
    classes = spec.num_classes or np.iinfo(np.int16).max + 1
    if label is None or not 0 <= label < classes:
        return _Skip(
            path,
            f"sample {raw.name}: no class label in 0..{classes - 1} can be derived "
            f"(metadata {meta}, reader label {raw.label})",
            KIND_LABEL,
        )
    try:
        skel = ctx.stages.select(raw, spec)
        s2i = ctx.stages.encode(skel, spec, ctx.encode_cfg)
        stats = ctx.stages.new_stats(s2i.shape[0])
        stats.update(s2i[None])
    except ReadError as exc:
        return _Skip(path, f"sample {raw.name}: {_reason(exc, path)}", type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - one broken sample must not end the conversion
        return _Skip(path, f"sample {raw.name}: {_unexpected(exc)}", type(exc).__name__)
    columns = {
        "label": int(label),
        "num_frames": skel.num_frames,
        "num_persons": skel.num_persons,
    }
    columns.update((key, int(meta[key])) for key in spec.fields)
    problem = _unstorable(s2i, columns, ctx.encode_cfg.streams)
    if problem:
        return _Skip(path, f"sample {raw.name}: {problem}; not stored", KIND_RANGE)
    return _Sample(raw.name, path, s2i, columns, stats)


def _unstorable(s2i: np.ndarray, columns: Mapping[str, int], streams: Sequence[str]) -> str | None:
    """Why a sample cannot be stored exactly (a value beyond its stored type), or None.

    float16 holds magnitudes up to 65504: a larger coordinate (wrong units, a sensor glitch)
    would become inf, which no statistic or model survives. Columns have fixed integer types.
    """
    if s2i.dtype.kind == "f":
        finite = np.isfinite(s2i.reshape(len(s2i), -1)).all(axis=1)
        if not finite.all():
            stream = streams[int(np.argmin(finite))]
            return (f"the {stream} stream has values beyond the {s2i.dtype} range "
                    f"(magnitude above {float(np.finfo(s2i.dtype).max):.0f}); are the "
                    "coordinates in metres?")
    for key, value in columns.items():
        dtype = layout.REQUIRED_COLUMNS.get(key, layout.FIELD_DTYPE)
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            return f"{key} = {value} does not fit the stored {dtype} column ({info.min}..{info.max})"
    return None


def _file_events(ctx: _WorkerContext, entry: InputFile) -> list[_Sample | _Skip | _Excluded]:
    if entry.problem is not None:
        return [_Skip(entry.path, entry.problem, entry.kind or KIND_NOT_FILE)]
    path = Path(entry.path)
    try:
        raws = ctx.reader.read(path, ctx.spec)
    except ReadError as exc:
        return [_Skip(str(path), _reason(exc, str(path)), type(exc).__name__)]
    except Exception as exc:  # noqa: BLE001 - a reader bug on one file is reported, not fatal
        return [_Skip(str(path), _unexpected(exc), type(exc).__name__)]
    return [_sample_events(ctx, raw, str(path)) for raw in sorted(raws, key=lambda r: r.name)]


def _run_task(task: tuple[int, Sequence[InputFile]]) -> list[_FileResult]:
    if _CTX is None:
        raise RuntimeError("worker context not installed (OrderedPool must run _install first)")
    start, files = task
    return [
        _FileResult(start + k, entry.nbytes, _file_events(_CTX, entry))
        for k, entry in enumerate(files)
    ]


# --------------------------------------------------------------------------------------------
# Parent side.


def exclusion_names(spec: JointSpec) -> frozenset[str]:
    """Sample names listed in the spec's exclude lists (``s2i_prep/data/<name>.txt``)."""
    names: set[str] = set()
    for list_name in spec.exclude_lists:
        path = Path(__file__).resolve().parent / "data" / f"{list_name}.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise S2IError(
                f"{spec.source}: exclude list {list_name!r}: cannot read {path}: {exc.strerror}"
            ) from None
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.add(line)
    return frozenset(names)


def _sample_name_of_file(path: Path) -> str:
    """The sample name a file stands for before it is read (its stem; PKU: the video's name)."""
    return path.stem


def _printable(path: str) -> str:
    """``path`` as valid UTF-8 text: undecodable bytes of a file name shown as ``\\xff``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _inspect_input(path: Path) -> InputFile:
    """Stat one discovered path; anything but a readable regular file with a UTF-8 name becomes a
    planned skip with its reason. Such paths are never opened (a FIFO would block forever,
    ``/dev/zero`` never ends), and none of them can end the run."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return InputFile(_printable(text), 0, 0, "the file name is not valid UTF-8 (shown with "
                         "\\x escapes); rename the file to convert it", KIND_PATH)
    link = ""
    if path.is_symlink():
        try:
            link = f" (symbolic link to {os.readlink(path)!r})"
        except OSError:
            link = " (symbolic link)"
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            reason = f"symbolic link loop{link}"
        elif link and exc.errno == errno.ENOENT:
            reason = f"dangling symbolic link: its target does not exist{link}"
        else:
            reason = f"cannot read the file's status: {exc.strerror}{link}"
        return InputFile(text, 0, 0, reason, KIND_NOT_FILE)
    if not stat.S_ISREG(st.st_mode):
        what = next((name for test, name in _FILE_TYPES if test(st.st_mode)), "not a file")
        return InputFile(text, 0, 0, f"not a regular file but {what}{link}; not opened",
                         KIND_NOT_FILE)
    return InputFile(text, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class _Plan:
    files: list[InputFile]  # in sample-name order (so ``sample_id`` comes out sorted)
    excluded: int  # files dropped by the spec's exclude lists
    limited: int  # files left out by ``limit``


def _plan(cfg: ConvertConfig, spec: JointSpec, reader: Reader, excluded: frozenset[str]) -> _Plan:
    """The input files to convert, in order, each with its size and modification time."""
    if not cfg.input.exists():
        raise S2IError(f"{cfg.input}: input folder does not exist")
    try:
        found = reader.discover(cfg.input)
    except OSError as exc:
        raise S2IError(f"{cfg.input}: cannot list the input files: {exc}") from None
    paths = sorted(found, key=lambda p: (_sample_name_of_file(p), str(p)))
    kept = [p for p in paths if _sample_name_of_file(p) not in excluded]
    limited = 0
    if cfg.limit is not None:
        limited = max(0, len(kept) - cfg.limit)
        kept = kept[: cfg.limit]
    return _Plan([_inspect_input(p) for p in kept], len(paths) - len(kept) - limited, limited)


def _no_input_message(cfg: ConvertConfig, spec: JointSpec, reader: Reader) -> str:
    """Why nothing was found: what the folder holds, and which format would read it."""
    from .readers import get_reader
    from .specs import list_specs

    counts: dict[str, int] = {}
    seen = 0
    for path in cfg.input.rglob("*"):
        seen += 1
        if seen > 100_000:
            break
        if path.suffix and path.is_file():
            counts[path.suffix.lower()] = counts.get(path.suffix.lower(), 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:4]
    found = (", ".join(f"{n} {suffix} file{'s' if n > 1 else ''}" for suffix, n in top)
             if top else "no files")
    hints = []
    for name in list_specs():
        if name == spec.format:
            continue
        try:
            other = load_spec(name)
            if get_reader(other.reader).discover(cfg.input):
                hints.append(name)
        except (S2IError, OSError):
            continue
    text = f"{cfg.input}: no {spec.format} input files found (reader {spec.reader}); found {found}"
    if hints:
        text += f"; try --format {' or --format '.join(hints)}"
    layout_help = getattr(reader, "expected_layout", None) or (type(reader).discover.__doc__ or "")
    return f"{text}. The {spec.format} reader expects: {' '.join(layout_help.split())}"


def _options(cfg: ConvertConfig, spec: JointSpec) -> dict[str, Any]:
    """What determines the output besides the input files (hashed into the fingerprint)."""
    opts = {k: v for k, v in cfg.to_dict().items() if k not in _RUN_ONLY}
    return {"options": opts, "spec": spec.digest(), "s2i_version": __version__}


def _fingerprint(options: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def _entry(cfg: ConvertConfig, f: InputFile) -> list[Any]:
    return [os.path.relpath(f.path, cfg.input), f.nbytes, f.mtime_ns]


class _InputDigest:
    """sha256 of the first n input entries, advanced incrementally as shards are committed."""

    def __init__(self, entries: list[list[Any]]) -> None:
        self.entries = entries
        self._h = hashlib.sha256()
        self._n = 0

    def of_first(self, n: int) -> str:
        if n < self._n:  # never happens in order; recompute rather than guess
            self._h, self._n = hashlib.sha256(), 0
        for rel, nbytes, mtime in self.entries[self._n : n]:
            self._h.update(os.fsencode(rel) + f"\t{nbytes}\t{mtime}\n".encode())
        self._n = max(self._n, n)
        return self._h.hexdigest()


def _flag(key: str) -> str:
    name = key.rsplit(".", 1)[-1]
    return {"input": "INPUT", "format": "--format/--spec"}.get(name, "--" + name.replace("_", "-"))


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _resume_check(partial: Path, options: dict[str, Any], entries: list[list[Any]],
                  digest: _InputDigest) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """The writer's ``check_resume``: refuse a resume that would not equal a fresh run, naming
    exactly what differs. Options must match; of the inputs, only those already converted (before
    the committed cursor) must be unchanged: files not reached yet may be fixed, added or removed.
    """

    def check(before: dict[str, Any], state: dict[str, Any]) -> None:
        if "options" not in before or "inputs_sha256" not in state:
            return  # an output begun by an older version: the writer's fingerprint decides
        why = []
        old, new = _flat(before["options"].get("options", {})), _flat(options["options"])
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                why.append(f"{_flag(key)} was {old.get(key)!r}, now {new.get(key)!r}")
        if before["options"].get("spec") != options["spec"]:
            why.append("the joint spec's content changed")
        if before["options"].get("s2i_version") != options["s2i_version"]:
            why.append(f"s2i was version {before['options'].get('s2i_version')}, "
                       f"now {options['s2i_version']}")
        n = int(state.get("inputs", 0))
        if digest.of_first(n) != state["inputs_sha256"]:
            why.append(_input_changes([list(e) for e in before.get("inputs", [])], entries, n))
        if why:
            raise S2IError(
                f"{partial}: cannot resume: " + "; ".join(why)
                + ". Rerun with the original inputs and options, or pass --overwrite to start over"
            )

    return check


def _input_changes(before: list[list[Any]], now: list[list[Any]], n: int) -> str:
    """'of the 1,200 input files already converted, 2 were changed (e.g. ...), 1 removed'."""
    old = {e[0]: e for e in before[:n]}
    new = {e[0]: e for e in now}
    changed = [k for k in old if k in new and new[k] != old[k]]
    removed = [k for k in old if k not in new]
    first_old = set(old)
    added = [e[0] for e in now[:n] if e[0] not in first_old]
    parts = []
    for what, names in (("changed", changed), ("removed", removed), ("added among them", added)):
        if names:
            parts.append(f"{len(names)} {what} (e.g. {_printable(names[0])})")
    detail = ", ".join(parts) or "their order changed"
    return f"of the {n} input files already converted, {detail}"


def _tasks(files: list[InputFile], start: int) -> Iterator[tuple[int, list[InputFile]]]:
    for i in range(start, len(files), FILES_PER_TASK):
        yield i, files[i : i + FILES_PER_TASK]


#: StreamStats accumulators carried in the resume state (float64 round-trips exactly via JSON).
_STATS_FIELDS = ("count", "sum", "sumsq", "min", "max")


def _ordered_results(
    pool: OrderedPool, files: list[InputFile], start: int
) -> Iterator[list[_FileResult]]:
    """Task results in input order; a dead worker becomes an error naming its files."""
    try:
        yield from pool.map(_run_task, _tasks(files, start))
    except WorkerDied as exc:
        _, batch = exc.task
        raise S2IError(
            f"{exc} while converting {batch[0].path} .. {batch[-1].path} "
            f"(with --workers 0 a crash shows where it happens)"
        ) from None


class _Assembler:
    """Turns the ordered event stream into whole shards plus the resume state of each.

    Shards are written by one background thread while the next shard fills (two preallocated
    shard buffers), so workers keep running during a write instead of stalling once the task
    window is full. The resume state holds only O(skips) data; the per-sample columns of
    committed shards come back from the writer itself (``committed_columns``).
    """

    def __init__(
        self,
        writer: Any,
        spec: JointSpec,
        stats: Any,
        on_error: str,
        sample_shape: tuple[int, ...],
        dtype: str,
        digest: _InputDigest,
    ) -> None:
        self.writer = writer
        self.digest = digest
        # Samples are copied into a preallocated shard buffer as they arrive; the second buffer
        # is allocated when the first goes to the writer thread.
        self.batch = np.empty((writer.shard_size, *sample_shape), dtype=dtype)
        self._spare: np.ndarray | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2i-shard-writer")
        self._writing: Future[None] | None = None
        self.on_error = on_error
        self.stats = stats
        self.keys = ("sample_id", "label", *spec.fields)
        self.pending: list[tuple[str, dict[str, int]]] = []  # name and columns of buffered samples
        self.columns: dict[str, list[Any]] = {k: [] for k in self.keys}
        self.skipped: list[tuple[str, str, str]] = []
        self.excluded = 0
        self.last_id: str | None = None
        state = writer.resume_state
        if state:
            for name in _STATS_FIELDS:
                getattr(stats, name)[...] = np.asarray(state["stats"][name])
            self.skipped = [(p, r, k) for p, r, k in state["skipped"]]
            self.excluded = int(state["excluded"])
            self.last_id = state["last_id"]
            committed = writer.committed_columns()
            self.columns = {k: np.asarray(committed[k]).tolist() for k in self.keys}

    @property
    def num_samples(self) -> int:
        return len(self.columns["label"])

    def add(self, event: _Sample | _Skip | _Excluded, cursor: tuple[int, int]) -> None:
        if isinstance(event, _Excluded):
            self.excluded += 1
            return
        if isinstance(event, _Sample) and self.last_id is not None and event.name <= self.last_id:
            event = _Skip(
                event.path,
                f"sample {event.name} repeats or comes out of order after "
                f"{self.last_id}; sample names must be unique",
                KIND_DUPLICATE,
            )
        if isinstance(event, _Skip):
            if self.on_error == "fail":
                raise S2IError(f"{event.path}: {event.reason} (stopping: --on-error fail)")
            self.skipped.append((event.path, event.reason, event.kind))
            return
        self.batch[len(self.pending)] = event.s2i
        self.stats.merge(event.stats)
        self.pending.append((event.name, event.columns))
        self.last_id = event.name
        if len(self.pending) == self.writer.shard_size:
            self.flush(cursor)

    def flush(self, cursor: tuple[int, int]) -> None:
        """Commit the buffered samples as one shard whose state resumes at ``cursor``."""
        if not self.pending:
            return
        batch = self.batch[: len(self.pending)]
        cols: dict[str, np.ndarray] = {"sample_id": np.array([name for name, _ in self.pending])}
        for key in self.pending[0][1]:
            cols[key] = np.array([c[key] for _, c in self.pending], dtype=np.int64)
        for key in self.keys:
            self.columns[key].extend(cols[key].tolist())
        self.pending = []
        inputs = cursor[0] + (cursor[1] > 0)  # files read in whole or in part
        state = {
            "file": cursor[0],
            "event": cursor[1],
            "inputs": inputs,
            "inputs_sha256": self.digest.of_first(inputs),
            "last_id": self.last_id,
            "stats": {name: getattr(self.stats, name).tolist() for name in _STATS_FIELDS},
            "skipped": [list(s) for s in self.skipped],
            "excluded": self.excluded,
        }
        self.wait()  # the previous write must end before its buffer is refilled
        self._writing = self._io.submit(self.writer.write_shard, batch, cols, state)
        if self._spare is None:
            self._spare = np.empty_like(self.batch)
        self.batch, self._spare = self._spare, self.batch

    def wait(self) -> None:
        """Block until the shard being written is committed; re-raises the writer's error."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def close(self) -> None:
        """Let an in-flight shard commit (so a resume keeps it), then stop the writer thread."""
        try:
            self.wait()
        finally:
            self._io.shutdown(wait=True)


def _splits(
    cfg: ConvertConfig, spec: JointSpec, reader: Any, columns: Mapping[str, list[Any]]
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """The spec's split rules over the metadata, overridden by split files the dataset ships
    (a reader's ``official_splits``); also where each split came from, and any disagreement."""
    meta = {key: np.asarray(columns[key], dtype=np.int64) for key in spec.fields}
    splits = {rule.name: rule.indices(meta) for rule in spec.splits}
    sources = {name: "rule" for name in splits}
    official = getattr(reader, "official_splits", None)
    if official is None:
        return splits, sources
    for name, (train, test, path) in official(cfg.input, columns["sample_id"]).items():
        source = f"file {os.path.relpath(path, cfg.input)}"
        if name in splits:
            rule_train, rule_test = splits[name]
            moved = len(np.setxor1d(rule_train, train)) + len(np.setxor1d(rule_test, test))
            source += (f" (the spec's rule puts {moved} sample(s) differently)" if moved
                       else " (equal to the spec's rule)")
        splits[name] = (train, test)
        sources[name] = source
    return splits, sources


def _attrs(
    cfg: ConvertConfig,
    spec: JointSpec,
    stages: Stages,
    asm: _Assembler,
    plan: _Plan,
) -> dict[str, Any]:
    labels = asm.columns["label"]
    enc = cfg.encode
    return {
        "streams": list(enc.streams),
        "columns": stages.column_layout(spec),
        "encoding": {**enc.to_dict(), "pixel_mapping": stages.pixel_mapping(enc)},
        "spec": spec.to_yaml_text(),
        "spec_sha256": spec.digest(),
        "stats": asm.stats.to_dict(enc.streams),
        "source": {
            "input": str(cfg.input.resolve()),
            "format": spec.format,
            "files": len(plan.files),
            "bytes": sum(f.nbytes for f in plan.files),
        },
        "s2i_version": __version__,
        "convert": {k: v for k, v in cfg.to_dict().items() if k not in _NOT_RECORDED},
        "report": {
            "skipped": [{"path": p, "reason": r, "kind": k} for p, r, k in asm.skipped],
            "counts": {
                "files": len(plan.files),
                "samples": asm.num_samples,
                "skipped": len(asm.skipped),
                "excluded": asm.excluded + plan.excluded,
                "limited": plan.limited,
            },
        },
        # the spec's label space; a spec without one falls back to the labels seen
        "class_count": spec.num_classes or (max(labels) + 1 if labels else 0),
    }


#: Input files the parent converts as a trial to compile the kernels (see :func:`_warm`).
TRIAL_FILES = 4


def _warm_by_trial(ctx: _WorkerContext, files: list[InputFile]) -> bool:
    """Convert the first regular input files in this process until one gives a sample: that
    compiles exactly the kernels and type specialisations this run uses (one reader, one
    encoding mode), not every kernel of every format. False when no trial file converts."""
    trials = [f for f in files[: TRIAL_FILES * 4] if f.problem is None][:TRIAL_FILES]
    return any(isinstance(e, _Sample) for f in trials for e in _file_events(ctx, f))


def _warm(stages: Stages, ctx: _WorkerContext, files: list[InputFile],
          log: Callable[[str], None] | None) -> None:
    """Compile the kernels before workers fork, so they inherit compiled code; say so when it
    takes more than a moment (the first run after installing, before Numba's on-disk cache
    exists). The default warm-up is a trial conversion in this process, falling back to
    :func:`warm_kernels` (every kernel) when no trial file converts; a custom ``stages.warm``
    is called as it is."""
    t0 = time.perf_counter()
    timer = None
    if log is not None:
        timer = threading.Timer(
            COMPILE_NOTICE_S, log, ("compiling kernels (first run only, cached afterwards)...",)
        )
        timer.daemon = True
        timer.start()
    try:
        if stages.warm is not warm_kernels or not _warm_by_trial(ctx, files):
            stages.warm()
    finally:
        if timer is not None:
            timer.cancel()
    if log is not None and time.perf_counter() - t0 > COMPILE_NOTICE_S:
        log(f"kernels compiled in {time.perf_counter() - t0:.1f} s")


def _release(writer: Any, asm: _Assembler | None, files: list[InputFile]) -> Kept | None:
    """After a stop or failure: let the in-flight shard commit, then close the output. A partial
    output that committed nothing is removed; otherwise what it keeps is returned."""
    try:
        if asm is not None:
            asm.close()
    finally:
        if writer is not None:
            if writer.num_samples == 0:
                writer.discard()
            else:
                writer.close()
    if writer is None or writer.num_samples == 0:
        return None
    return Kept(writer.partial, writer.num_samples, int(writer.resume_state.get("file", 0)),
                len(files))


def convert(
    cfg: ConvertConfig,
    progress: Callable[[ProgressUpdate], None] | None = None,
    stages: Stages | None = None,
    log: Callable[[str], None] | None = None,
) -> ConvertResult:
    """Convert the raw dataset ``cfg.input`` into the S2I dataset ``cfg.output``.

    ``progress`` gets an update as soon as the inputs are planned and after every input file;
    ``log`` gets notices (kernel compilation on a first run).

    Raises:
        S2IError: bad options or input, a locked/existing output (StoreError).
        ConvertFailed: an error after the output was opened (a bad file under
            ``on_error="fail"``, no sample converted at all, a dead worker, a write error).
        ConvertStopped: KeyboardInterrupt (Ctrl-C, or a stop signal turned into one).
    """
    t0 = time.perf_counter()
    workers = default_workers() if cfg.workers is None else cfg.workers
    stages = stages or Stages.default()
    spec = load_spec(cfg.format)
    # Conversion needs only joint positions; readers may skip converting the other fields.
    reader = stages.get_reader(spec.reader, **{"fields": "xyz", **cfg.reader_options})
    excluded = frozenset() if cfg.keep_missing else exclusion_names(spec)
    plan = _plan(cfg, spec, reader, excluded)
    fault_point("planned")
    files = plan.files
    if not files:
        raise S2IError(_no_input_message(cfg, spec, reader))
    bytes_total = sum(f.nbytes for f in files)
    if progress is not None:
        progress(ProgressUpdate(0, len(files), 0, bytes_total, 0, 0))
    shape = stages.stored_shape(spec, cfg.encode)
    options = _options(cfg, spec)
    entries = [_entry(cfg, f) for f in files]
    digest = _InputDigest(entries)
    writer: Any = None
    asm: _Assembler | None = None
    try:
        ctx = _WorkerContext(spec, reader, stages, cfg.encode, excluded)
        _warm(stages, ctx, files, log)
        with OrderedPool(min(workers, len(files)), _install, (ctx,)) as pool:
            writer = stages.open_writer(
                cfg.output,
                sample_shape=shape,
                dtype=cfg.encode.dtype,
                codec=cfg.codec,
                shard_size=cfg.shard_size,
                resume=cfg.resume,
                overwrite=cfg.overwrite,
                fingerprint=_fingerprint(options),
                run_info={"options": options, "inputs": entries},
                check_resume=_resume_check(
                    cfg.output.with_name(cfg.output.name + layout.PARTIAL_SUFFIX),
                    options, entries, digest,
                ),
            )
            state = writer.resume_state
            asm = _Assembler(
                writer,
                spec,
                stages.new_stats(len(cfg.encode.streams)),
                cfg.on_error,
                shape,
                cfg.encode.dtype,
                digest,
            )
            start, skip_events = int(state.get("file", 0)), int(state.get("event", 0))
            bytes_done = bytes_before = sum(f.nbytes for f in files[:start])
            t_run = time.perf_counter()
            for results in _ordered_results(pool, files, start):
                for res in results:
                    first = skip_events if res.index == start else 0
                    for e, event in enumerate(res.events[first:], start=first):
                        last = e + 1 == len(res.events)
                        asm.add(event, (res.index + 1, 0) if last else (res.index, e + 1))
                    bytes_done += res.nbytes
                    if progress is not None:
                        progress(
                            ProgressUpdate(
                                res.index + 1,
                                len(files),
                                bytes_done,
                                bytes_total,
                                asm.num_samples + len(asm.pending),
                                len(asm.skipped),
                                bytes_done - bytes_before,
                                time.perf_counter() - t_run,
                            )
                        )
            asm.flush((len(files), 0))
            asm.wait()
            if not asm.num_samples:
                first_skip = (
                    f"; first: {asm.skipped[0][0]}: {asm.skipped[0][1]}" if asm.skipped else ""
                )
                raise S2IError(
                    f"{cfg.input}: no sample could be converted ({len(asm.skipped)} "
                    f"skipped{first_skip})"
                )
            splits, sources = _splits(cfg, spec, reader, asm.columns)
            attrs = _attrs(cfg, spec, stages, asm, plan)
            attrs["split_sources"] = sources
            out = writer.finalize(attrs, splits)
            asm.close()
    except KeyboardInterrupt as exc:
        kept = _release(writer, asm, files)
        raise ConvertStopped(getattr(exc, "signum", signal.SIGINT), kept) from None
    except BaseException as exc:
        if writer is None:
            raise
        kept = _release(writer, asm, files)
        if not isinstance(exc, S2IError):
            raise
        if kept is None:
            after = "; nothing was committed, so no partial output was left"
        else:
            after = (f"; {kept.partial} keeps the {kept.samples} samples converted so far: fix "
                     "the cause and continue with --resume")
        raise ConvertFailed(f"{exc}{after}", kept) from None
    t_end = time.perf_counter()
    return ConvertResult(
        output=Path(out),
        files=len(files),
        samples=asm.num_samples,
        skipped=len(asm.skipped),
        excluded=asm.excluded + plan.excluded,
        skipped_list=tuple(asm.skipped),
        seconds=t_end - t0,
        bytes_in=bytes_done - bytes_before,
        setup_seconds=t_run - t0,
        limited=plan.limited,
    )
