"""Worker side: one task = consecutive input files -> their events (samples, skips), in order.

Runs in worker processes (or in-process with ``workers=0``); everything here is picklable by
reference. Each sample is checked for values its stored types cannot hold, so no inf and no
overflowing column ever reaches the parent. A task's samples travel as ONE stacked array (its
:class:`TaskResult`'s ``block``; each sample event holds its row), so the parent receives one
large buffer per task (through shared memory with local workers, see
:class:`~s2i_prep.parallel.OrderedPool`) instead of one pickled array per sample.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import ReadError
from ..parallel import FILES_PER_TASK
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from ..store import layout
from ..urls import is_url, set_storage_options
from .stages import Stages

if TYPE_CHECKING:
    from ..encoding import EncodeConfig
    from ..readers import Reader

#: Skip kinds that are not reader/encoder exceptions.
KIND_NAME, KIND_LABEL, KIND_DUPLICATE = "bad_name", "no_label", "duplicate"
KIND_NOT_FILE, KIND_PATH, KIND_RANGE = "not_a_file", "bad_path", "out_of_range"
KIND_MEMBER = "bad_member"  # an archive member known to be unreadable when planning


class InputFile(NamedTuple):
    """One planned input: a regular file to read, or a path that is reported and never opened
    (``problem`` says why, ``kind`` is its report kind)."""

    path: str
    nbytes: int
    mtime_ns: int
    problem: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Sample:
    """One converted sample with its columns and its own statistics (merged in input order)."""

    name: str
    path: str
    s2i: np.ndarray | int  # the encoded sample, or its row in its task's block once packed
    columns: dict[str, int]
    stats: Any  # this sample's StreamStats (or its row in its task's packed stats), merged in order


@dataclass(frozen=True)
class Skip:
    """One row of the skip report: the file, why, and the kind (see docs/CONVERT.md)."""

    path: str
    reason: str
    kind: str


@dataclass(frozen=True)
class Excluded:
    """A sample named in the spec's exclude lists (counted, not stored)."""

    name: str


@dataclass(frozen=True)
class FileResult:
    """The events of one input file, with its position in the plan and its size."""

    index: int
    nbytes: int
    events: list[Sample | Skip | Excluded]


@dataclass(frozen=True)
class WorkerContext:
    """What every task of one conversion shares; installed once per worker (:func:`install`)."""

    spec: JointSpec
    reader: Reader
    stages: Stages
    encode_cfg: EncodeConfig
    excluded: frozenset[str]
    #: The run's ``--storage-option``s per protocol, for workers that did not fork from this
    #: process (Dask): they open URL inputs with the same options.
    storage_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


_CTX: WorkerContext | None = None


def install(ctx: WorkerContext) -> None:
    global _CTX
    _CTX = ctx
    for protocol, options in ctx.storage_options.items():
        set_storage_options(protocol, options)


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


def _sample_events(ctx: WorkerContext, raw: RawSkeleton, path: str) -> Sample | Skip | Excluded:
    spec = ctx.spec
    if raw.name in ctx.excluded:
        return Excluded(raw.name)
    meta = spec.parse_name(raw.name)
    if meta is None:
        return Skip(
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
        return Skip(
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
        return Skip(path, f"sample {raw.name}: {_reason(exc, path)}", type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - one broken sample must not end the conversion
        return Skip(path, f"sample {raw.name}: {_unexpected(exc)}", type(exc).__name__)
    columns = {
        "label": int(label),
        "num_frames": skel.num_frames,
        "num_persons": skel.num_persons,
    }
    columns.update((key, int(meta[key])) for key in spec.fields)
    problem = _unstorable(s2i, columns, ctx.encode_cfg.streams)
    if problem:
        return Skip(path, f"sample {raw.name}: {problem}; not stored", KIND_RANGE)
    return Sample(raw.name, path, s2i, columns, stats)


#: float16 exponent bits: all set means inf or NaN.
_HALF_EXPONENT = np.uint16(0x7C00)


def _finite_per_stream(s2i: np.ndarray) -> np.ndarray:
    """Whether each stream of a sample is all finite. float16 is checked on its bits (numpy's
    ``isfinite`` converts every half to float: 43 us against 5 us per compact sample)."""
    if s2i.dtype == np.float16:
        bits = np.ascontiguousarray(s2i).view(np.uint16).reshape(len(s2i), -1)
        return (bits & _HALF_EXPONENT).max(axis=1) < _HALF_EXPONENT
    return np.isfinite(s2i.reshape(len(s2i), -1)).all(axis=1)


def _unstorable(s2i: np.ndarray, columns: Mapping[str, int], streams: Sequence[str]) -> str | None:
    """Why a sample cannot be stored exactly (a value beyond its stored type), or None.

    float16 holds magnitudes up to 65504: a larger coordinate (wrong units, a sensor glitch)
    would become inf, which no statistic or model survives. Columns have fixed integer types.
    """
    if s2i.dtype.kind == "f":
        finite = _finite_per_stream(s2i)
        if not finite.all():
            stream = streams[int(np.argmin(finite))]
            return (f"the {stream} stream has values beyond the {s2i.dtype} range "
                    f"(magnitude above {float(np.finfo(s2i.dtype).max):.0f}); are the "
                    "coordinates in metres?")
    for key, value in columns.items():
        dtype = layout.REQUIRED_COLUMNS.get(key, layout.FIELD_DTYPE)
        low, high = _int_range(dtype)
        if not low <= value <= high:
            return f"{key} = {value} does not fit the stored {dtype} column ({low}..{high})"
    return None


@functools.lru_cache(maxsize=None)
def _int_range(dtype: str) -> tuple[int, int]:
    """``np.iinfo``'s bounds, cached (building an iinfo cost ~3 us, eight times per sample)."""
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def file_events(ctx: WorkerContext, entry: InputFile) -> list[Sample | Skip | Excluded]:
    if entry.problem is not None:
        return [Skip(entry.path, entry.problem, entry.kind or KIND_NOT_FILE)]
    path: Path | str = entry.path if is_url(entry.path) else Path(entry.path)  # URLs stay text
    try:
        raws = ctx.reader.read(path, ctx.spec)
    except ReadError as exc:
        return [Skip(str(path), _reason(exc, str(path)), type(exc).__name__)]
    except Exception as exc:  # noqa: BLE001 - a reader bug on one file is reported, not fatal
        return [Skip(str(path), _unexpected(exc), type(exc).__name__)]
    return [_sample_events(ctx, raw, str(path)) for raw in sorted(raws, key=lambda r: r.name)]


@dataclass
class TaskResult:
    """One task's file results, its samples stacked in ``block`` (row ``Sample.s2i``).

    ``block`` is None when the task has no sample. It is the one attribute the pools may move
    out of band: :class:`~s2i_prep.parallel.OrderedPool` passes it through its shared arena and
    sets ``region`` to the arena region it lies in (None: the block came in band).
    """

    files: list[FileResult]
    block: np.ndarray | None
    region: Any = None
    #: The samples' statistics packed (``StreamStats.packed``) and stacked: row ``Sample.stats``.
    stats: np.ndarray | None = None


def pack(files: list[FileResult]) -> TaskResult:
    """Stack the samples of ``files`` into one block, each sample keeping its row, and their
    statistics likewise when they can be packed (unpickling five small arrays per sample was
    most of the parent's cost of receiving a task)."""
    arrays: list[np.ndarray] = []
    stats: list[np.ndarray] = []
    packed = []
    for res in files:
        events: list[Sample | Skip | Excluded] = []
        for event in res.events:
            if isinstance(event, Sample):
                arrays.append(event.s2i)  # type: ignore[arg-type]
                row: Any = event.stats
                if hasattr(row, "packed"):
                    stats.append(row.packed())
                    row = len(stats) - 1
                event = replace(event, s2i=len(arrays) - 1, stats=row)
            events.append(event)
        packed.append(FileResult(res.index, res.nbytes, events))
    return TaskResult(packed, np.stack(arrays) if arrays else None,
                      stats=np.stack(stats) if stats else None)


def run_task(task: tuple[int, Sequence[InputFile]]) -> TaskResult:
    if _CTX is None:
        raise RuntimeError("worker context not installed (OrderedPool must run install first)")
    start, files = task
    return pack([
        FileResult(start + k, entry.nbytes, file_events(_CTX, entry))
        for k, entry in enumerate(files)
    ])


def task_batches(
    files: list[InputFile], start: int, size: int = FILES_PER_TASK
) -> Iterator[tuple[int, list[InputFile]]]:
    for i in range(start, len(files), size):
        yield i, files[i : i + size]
