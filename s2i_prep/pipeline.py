"""``convert()``: a whole raw skeleton dataset -> one S2I dataset (Zarr v3 or HDF5).

Per input file: read -> select bodies -> encode, in worker processes (:mod:`s2i_prep.parallel`).
Every failure of one file or sample becomes a row of the skip report and never a partial sample.
The parent consumes results strictly in input order and cuts them into whole shards, so the
output is byte-identical whatever the worker count; each shard is committed with a resume state
(cursor, statistics, report), so ``resume=True`` continues exactly where a killed run stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .errors import ReadError, S2IError
from .parallel import OrderedPool, WorkerDied, default_workers
from .skeleton import RawSkeleton, Skeleton
from .specs import JointSpec, load_spec

if TYPE_CHECKING:
    from .encoding import EncodeConfig
    from .readers import Reader

__all__ = [
    "ConvertConfig",
    "ConvertResult",
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


@dataclass(frozen=True)
class ConvertResult:
    """What a finished conversion did. ``skipped_list`` rows are ``(path, reason, kind)``.

    ``files``, ``samples`` and the skip counts describe the whole dataset; ``bytes_in`` and
    ``seconds`` only this run (after a resume: the files read since the resume).
    """

    output: Path
    files: int
    samples: int
    skipped: int
    excluded: int
    skipped_list: tuple[tuple[str, str, str], ...]
    seconds: float
    bytes_in: int

    @property
    def mb_per_s(self) -> float:
        """Raw input megabytes (10^6 bytes) per second of this run."""
        return self.bytes_in / 1e6 / self.seconds if self.seconds > 0 else 0.0


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
    return _Sample(raw.name, path, s2i, columns, stats)


def _file_events(ctx: _WorkerContext, path: Path) -> list[_Sample | _Skip | _Excluded]:
    try:
        raws = ctx.reader.read(path, ctx.spec)
    except ReadError as exc:
        return [_Skip(str(path), _reason(exc, str(path)), type(exc).__name__)]
    except Exception as exc:  # noqa: BLE001 - a reader bug on one file is reported, not fatal
        return [_Skip(str(path), _unexpected(exc), type(exc).__name__)]
    return [_sample_events(ctx, raw, str(path)) for raw in sorted(raws, key=lambda r: r.name)]


def _run_task(task: tuple[int, Sequence[tuple[str, int]]]) -> list[_FileResult]:
    if _CTX is None:
        raise RuntimeError("worker context not installed (OrderedPool must run _install first)")
    start, files = task
    return [
        _FileResult(start + k, nbytes, _file_events(_CTX, Path(p)))
        for k, (p, nbytes) in enumerate(files)
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


def _plan(
    cfg: ConvertConfig, spec: JointSpec, reader: Reader, excluded: frozenset[str]
) -> tuple[list[tuple[str, int]], int]:
    """Input files in sample-name order (so ``sample_id`` comes out sorted) and the count of
    files dropped by the exclude lists."""
    if not cfg.input.exists():
        raise S2IError(f"{cfg.input}: input folder does not exist")
    paths = sorted(reader.discover(cfg.input), key=lambda p: (_sample_name_of_file(p), str(p)))
    kept = [p for p in paths if _sample_name_of_file(p) not in excluded]
    if cfg.limit is not None:
        kept = kept[: cfg.limit]
    files = [(str(p), p.stat().st_size) for p in kept]
    return files, len(paths) - len(kept)


def _fingerprint(cfg: ConvertConfig, spec: JointSpec, files: list[tuple[str, int]]) -> str:
    """Hash of what determines the output: options, spec content and the input files."""
    h = hashlib.sha256()
    opts = {k: v for k, v in cfg.to_dict().items() if k not in _RUN_ONLY}
    h.update(
        json.dumps(
            {"options": opts, "spec": spec.digest(), "s2i_version": __version__},
            sort_keys=True,
        ).encode()
    )
    for path, nbytes in files:
        st = os.stat(path)
        h.update(f"\n{os.path.relpath(path, cfg.input)}\t{nbytes}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _tasks(files: list[tuple[str, int]], start: int) -> Iterator[tuple[int, list[tuple[str, int]]]]:
    for i in range(start, len(files), FILES_PER_TASK):
        yield i, files[i : i + FILES_PER_TASK]


#: StreamStats accumulators carried in the resume state (float64 round-trips exactly via JSON).
_STATS_FIELDS = ("count", "sum", "sumsq", "min", "max")


def _ordered_results(
    pool: OrderedPool, files: list[tuple[str, int]], start: int
) -> Iterator[list[_FileResult]]:
    """Task results in input order; a dead worker becomes an error naming its files."""
    try:
        yield from pool.map(_run_task, _tasks(files, start))
    except WorkerDied as exc:
        _, batch = exc.task
        raise S2IError(
            f"{exc} while converting {batch[0][0]} .. {batch[-1][0]}; the committed shards are "
            f"kept: rerun with --resume (with --workers 0 a crash shows where it happens)"
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
    ) -> None:
        self.writer = writer
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
        state = {
            "file": cursor[0],
            "event": cursor[1],
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
    (a reader's ``official_splits``); also where each split came from, and any disagreement.
    A rule that selects no sample at all (PKU-MMD's phase-2 splits over phase-1 data) is left
    out rather than written as two empty lists."""
    meta = {key: np.asarray(columns[key], dtype=np.int64) for key in spec.fields}
    splits = {rule.name: rule.indices(meta) for rule in spec.splits}
    splits = {name: parts for name, parts in splits.items() if len(parts[0]) or len(parts[1])}
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
    files: list[tuple[str, int]],
    excluded_files: int,
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
            "files": len(files),
            "bytes": sum(n for _, n in files),
        },
        "s2i_version": __version__,
        "convert": {k: v for k, v in cfg.to_dict().items() if k not in _NOT_RECORDED},
        "report": {
            "skipped": [{"path": p, "reason": r, "kind": k} for p, r, k in asm.skipped],
            "counts": {
                "files": len(files),
                "samples": asm.num_samples,
                "skipped": len(asm.skipped),
                "excluded": asm.excluded + excluded_files,
            },
        },
        # the spec's label space; a spec without one falls back to the labels seen
        "class_count": spec.num_classes or (max(labels) + 1 if labels else 0),
    }


def convert(
    cfg: ConvertConfig,
    progress: Callable[[ProgressUpdate], None] | None = None,
    stages: Stages | None = None,
) -> ConvertResult:
    """Convert the raw dataset ``cfg.input`` into the S2I dataset ``cfg.output``.

    Raises:
        S2IError: bad options or input, a locked/existing output (StoreError), a bad file under
            ``on_error="fail"``, or no sample converted at all.
    """
    t0 = time.perf_counter()
    workers = default_workers() if cfg.workers is None else cfg.workers
    stages = stages or Stages.default()
    from .readers import reader_for_input

    # A pickle input is read by its own reader, the spec naming the skeleton (readers/__init__).
    reader_name, spec = reader_for_input(cfg.input, load_spec(cfg.format))
    # Conversion needs only joint positions; readers may skip converting the other fields.
    reader = stages.get_reader(reader_name, **{"fields": "xyz", **cfg.reader_options})
    excluded = frozenset() if cfg.keep_missing else exclusion_names(spec)
    files, excluded_files = _plan(cfg, spec, reader, excluded)
    if not files:
        raise S2IError(f"{cfg.input}: no {spec.format} input files found (reader {spec.reader})")
    shape = stages.stored_shape(spec, cfg.encode)
    stages.warm()
    ctx = _WorkerContext(spec, reader, stages, cfg.encode, excluded)
    bytes_total = sum(n for _, n in files)

    with OrderedPool(min(workers, len(files)), _install, (ctx,)) as pool:
        writer = stages.open_writer(
            cfg.output,
            sample_shape=shape,
            dtype=cfg.encode.dtype,
            codec=cfg.codec,
            shard_size=cfg.shard_size,
            resume=cfg.resume,
            overwrite=cfg.overwrite,
            fingerprint=_fingerprint(cfg, spec, files),
        )
        asm: _Assembler | None = None
        try:
            state = writer.resume_state
            asm = _Assembler(
                writer,
                spec,
                stages.new_stats(len(cfg.encode.streams)),
                cfg.on_error,
                shape,
                cfg.encode.dtype,
            )
            start, skip_events = int(state.get("file", 0)), int(state.get("event", 0))
            bytes_done = bytes_before = sum(n for _, n in files[:start])
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
            attrs = _attrs(cfg, spec, stages, asm, files, excluded_files)
            attrs["split_sources"] = sources
            out = writer.finalize(attrs, splits)
        except BaseException:
            try:
                if asm is not None:
                    asm.close()
            finally:
                writer.close()
            raise
        asm.close()
    return ConvertResult(
        output=Path(out),
        files=len(files),
        samples=asm.num_samples,
        skipped=len(asm.skipped),
        excluded=asm.excluded + excluded_files,
        skipped_list=tuple(asm.skipped),
        seconds=time.perf_counter() - t0,
        bytes_in=bytes_done - bytes_before,
    )
