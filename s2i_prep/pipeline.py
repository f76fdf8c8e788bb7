"""``convert()``: a whole raw skeleton dataset -> one S2I dataset (Zarr v3 or HDF5).

Per input file: read -> select bodies -> encode, in worker processes (:mod:`s2i_prep.parallel`).
Every failure of one file or sample becomes a row of the skip report and never a partial sample.
The parent consumes results strictly in input order and cuts them into whole shards, so the
output is byte-identical whatever the worker count; workers write the shard files (local ones
from shared memory, Dask ones from the task results the cluster keeps:
:mod:`s2i_prep.conversion.shards`) and the parent commits each, in shard order,
with a resume state (cursor, statistics, report), so ``resume=True`` continues exactly where a
killed run stopped.

A run that is stopped (Ctrl-C, SIGTERM: :class:`ConvertStopped`) or fails (:class:`ConvertFailed`)
keeps every committed shard and says what it kept; one that committed nothing leaves nothing.
This module orchestrates; each stage lives in :mod:`s2i_prep.conversion`.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .conversion.assembly import Assembler
from .conversion.config import (
    ConvertConfig,
    ConvertFailed,
    ConvertResult,
    ConvertStopped,
    Kept,
    ProgressUpdate,
    describe_inputs,
)
from .conversion.dataset_attrs import dataset_attrs, splits_of
from .conversion.fingerprint import InputDigest, fingerprint, input_entry, resume_check, run_options
from .conversion.planning import exclusion_names, no_input_message, plan_inputs
from .conversion.shards import ShardJob
from .conversion.stages import Stages, warm_kernels
from .conversion.tasks import (
    InputFile,
    Sample,
    TaskResult,
    WorkerContext,
    file_events,
    install,
    run_task,
    task_batches,
)
from .errors import S2IError
from .parallel import FILES_PER_TASK, TASKS_PER_WORKER, OrderedPool, WorkerDied, default_workers
from .specs import load_spec
from .store import layout
from .store.staging import fault_point
from .urls import Url, storage_options

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
    "warm_kernels",
]

#: Seconds of silent kernel compilation after which the user is told what is happening.
COMPILE_NOTICE_S = 2.0


#: Samples per input file that a task's arena region has room for (a task with more, e.g. a
#: PKU-MMD recording cut into many clips, returns its block through the pipe instead).
REGION_SAMPLES_PER_FILE = 1.25
#: Shards' worth of task regions in the arena beyond the task window: the shard filling, the one
#: a worker writes, and slack for tasks with fewer samples than files (skips, exclusions).
ARENA_SHARDS = 2.5


def _pool(cfg: ConvertConfig, workers: int, num_files: int, ctx: WorkerContext,
          sample_shape: tuple[int, ...]) -> Any:
    """Local worker processes, or a Dask cluster with ``cfg.dask``; both yield in task order.

    Local workers return each task's stacked samples through a shared arena, where the rows stay
    until a worker has written the shard holding them. Its size: the task window plus one, and
    ``ARENA_SHARDS`` shards' worth of regions (a region per task of ``FILES_PER_TASK`` files, room
    for ``REGION_SAMPLES_PER_FILE`` samples each): about 3.1 shards of samples, ~190 MB of shared
    memory for the default 64 MiB shard, of which ~150 MB is touched with one sample per file
    (the parent's two shard buffers it replaces held 128 MB). When it is full, results come through
    the pipe and their shards are written by the parent: slower, never more memory.
    """
    if cfg.dask is not None:
        from .dask_pool import DaskPool

        for loc in (*cfg.input, cfg.output):
            if isinstance(loc, Url) and loc.protocol == "memory":
                raise S2IError(f"{loc}: memory:// exists only inside this process, where Dask "
                               "workers cannot read or write it; convert without --dask, or "
                               "use a store the workers share")

        return DaskPool(cfg.dask, install, (ctx,))
    workers = min(workers, num_files)
    sample_bytes = math.prod(sample_shape) * np.dtype(cfg.encode.dtype).itemsize
    block_bytes = math.ceil(FILES_PER_TASK * REGION_SAMPLES_PER_FILE) * sample_bytes
    shard_size = cfg.shard_size or layout.default_shard_size(sample_shape, cfg.encode.dtype)
    regions = (max(1, workers) * TASKS_PER_WORKER + 1
               + math.ceil(ARENA_SHARDS * shard_size / FILES_PER_TASK))
    return OrderedPool(workers, install, (ctx,), block_bytes=block_bytes,
                       arena_bytes=regions * block_bytes)


def _ordered_results(
    pool: Any, files: list[InputFile], start: int, keep_blocks: bool = False
) -> Iterator[TaskResult]:
    """Task results in input order; a dead worker becomes an error naming its files. With
    ``keep_blocks`` (Dask, an output its workers write) the sample blocks stay on the workers."""
    batches = task_batches(files, start, pool.files_per_task)
    try:
        yield from (pool.map(run_task, batches, keep="block") if keep_blocks
                    else pool.map(run_task, batches))
    except WorkerDied as exc:
        if isinstance(exc.task, ShardJob):  # it died writing a shard; this task was queued
            raise S2IError(f"{exc} while writing shard {exc.task.index}") from None
        _, batch = exc.task
        raise S2IError(
            f"{exc} while converting {batch[0].path} .. {batch[-1].path} "
            f"(with --workers 0 a crash shows where it happens)"
        ) from None


#: Input files the parent converts as a trial to compile the kernels (see :func:`_warm`).
TRIAL_FILES = 4


def _warm_by_trial(ctx: WorkerContext, files: list[InputFile]) -> bool:
    """Convert the first regular input files in this process until one gives a sample: that
    compiles exactly the kernels and type specialisations this run uses (one reader, one
    encoding mode), not every kernel of every format. False when no trial file converts."""
    trials = [f for f in files[: TRIAL_FILES * 4] if f.problem is None][:TRIAL_FILES]
    return any(isinstance(e, Sample) for f in trials for e in file_events(ctx, f))


def _warm(stages: Stages, ctx: WorkerContext, files: list[InputFile],
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


def _release(writer: Any, asm: Assembler | None, files: list[InputFile]) -> Kept | None:
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
    """Convert the raw dataset ``cfg.input`` (one or several inputs) into the S2I dataset ``cfg.output``.

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
    from .readers import reader_for_inputs

    # A pickle input is read by its own reader, the spec naming the skeleton (readers/__init__).
    reader_name, spec = reader_for_inputs(cfg.input, load_spec(cfg.format))
    # Conversion needs only joint positions; readers may skip converting the other fields.
    reader = stages.get_reader(reader_name, **{"fields": "xyz", **cfg.reader_options})
    excluded = frozenset() if cfg.keep_missing else exclusion_names(spec)
    plan = plan_inputs(cfg, spec, reader, excluded)
    fault_point("planned")
    if plan.note:
        (log or (lambda text: warnings.warn(text, stacklevel=3)))(plan.note)
    files = plan.files
    if not files:
        raise S2IError(no_input_message(cfg, spec, reader))
    bytes_total = sum(f.nbytes for f in files)
    if progress is not None:
        progress(ProgressUpdate(0, len(files), 0, bytes_total, 0, 0))
    shape = stages.stored_shape(spec, cfg.encode)
    options = run_options(cfg, spec)
    entries = [input_entry(cfg, f) for f in files]
    digest = InputDigest(entries)
    writer: Any = None
    asm: Assembler | None = None
    try:
        ctx = WorkerContext(spec, reader, stages, cfg.encode, excluded, storage_options())
        if cfg.dask is None:
            _warm(stages, ctx, files, log)
        with _pool(cfg, workers, len(files), ctx, shape) as pool:
            try:
                writer = stages.open_writer(
                    cfg.output,
                    sample_shape=shape,
                    dtype=cfg.encode.dtype,
                    codec=cfg.codec,
                    shard_size=cfg.shard_size,
                    resume=cfg.resume,
                    overwrite=cfg.overwrite,
                    fingerprint=fingerprint(options),
                    run_info={"options": options, "inputs": entries},
                    check_resume=resume_check(
                        cfg.output.with_name(cfg.output.name + layout.PARTIAL_SUFFIX),
                        options, entries, digest,
                    ),
                )
                state = writer.resume_state
                asm = Assembler(
                    writer,
                    spec,
                    stages.new_stats(len(cfg.encode.streams)),
                    cfg.on_error,
                    digest,
                    pool,
                )
                start, skip_events = int(state.get("file", 0)), int(state.get("event", 0))
                bytes_done = bytes_before = sum(f.nbytes for f in files[:start])
                t_run = time.perf_counter()
                keep_blocks = cfg.dask is not None and writer.shard_target is not None
                if keep_blocks and not isinstance(writer.shard_target.array_dir, Url):
                    pool.check_sees(writer.shard_target.array_dir)
                for task in _ordered_results(pool, files, start, keep_blocks):
                    asm.advance()
                    for res in task.files:
                        first = skip_events if res.index == start else 0
                        for e, event in enumerate(res.events[first:], start=first):
                            last = e + 1 == len(res.events)
                            asm.add(event, (res.index + 1, 0) if last else (res.index, e + 1),
                                    task)
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
                if not asm.num_samples:
                    first_skip = (
                        f"; first: {asm.skipped[0][0]}: {asm.skipped[0][1]}" if asm.skipped else ""
                    )
                    raise S2IError(
                        f"{describe_inputs(cfg.input)}: no sample could be converted "
                        f"({len(asm.skipped)} "
                        f"skipped{first_skip})"
                    )
                splits, sources = splits_of(cfg, spec, reader, asm.columns)
                attrs = dataset_attrs(cfg, spec, stages, asm, plan)
                attrs["split_sources"] = sources
                asm.wait()  # the last shards were written meanwhile
                out = writer.finalize(attrs, splits)
                asm.close()
            except BaseException:
                # Let the shards already cut commit while the workers that write them live.
                if asm is not None:
                    asm.close()
                raise
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
        output=out,  # a Path, or the Url of an object-store output
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
