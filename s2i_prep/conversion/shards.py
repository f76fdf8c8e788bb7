"""Shard jobs: one shard's samples, already on the workers' side, -> its file in the Zarr store.

The parent decides each shard's composition (which sample rows, in order) and sends the job to a
worker, which gathers the rows, checksums, compresses and writes the shard file (or object). Local
workers gather them from the pool's shared arena (the same memory the task results were written
to); Dask workers from the task results the cluster kept (:func:`run_block_shard_job`, whose
futures Dask resolves, moving blocks worker to worker where needed). The parent then commits the shard
(columns, manifest) strictly in shard order, whatever order the files were written in. A shard
that cannot go to a worker (HDF5 or memory:// output, ``--workers 0``, the spawn start method, or
a row that came through the pipe) is written by the parent with the same
:func:`~s2i_prep.store.zarr_store.write_shard_file` (or the HDF5 backend) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..dask_pool import RemoteRow
from ..parallel import Arena, arena_rows
from ..store.zarr_store import ShardTarget, write_shard_file


@dataclass(frozen=True)
class ShardJob:
    """Write shard ``index`` of ``target`` from the samples at ``offsets`` of the shared arena."""

    target: ShardTarget
    index: int
    offsets: tuple[int, ...]


def run_shard_job(job: ShardJob) -> int:
    """Worker side (or parent side, same memory): gather the rows and write the shard file."""
    rows = arena_rows(job.offsets, job.target.sample_shape, job.target.dtype)
    write_shard_file(job.target, job.index, rows)
    return job.index


#: One shard's rows on Dask workers: (task result or its future, its rows in order), in order.
BlockParts = tuple[tuple[Any, tuple[int, ...]], ...]


def run_block_shard_job(job: tuple[ShardTarget, int, BlockParts]) -> int:
    """Dask worker side: gather the rows from the task results (their futures resolved by Dask)
    and write the shard file. A tuple, not a dataclass: Dask finds futures only inside tuples,
    lists and dicts."""
    target, index, parts = job
    write_shard_file(target, index, [result.block[i] for result, rows in parts for i in rows])
    return index


def _block_parts(rows: Sequence[Any]) -> BlockParts | None:
    """Consecutive rows of one task result grouped; None unless every row is a RemoteRow."""
    parts: list[tuple[Any, list[int]]] = []
    for row in rows:
        if not isinstance(row, RemoteRow):
            return None
        if parts and parts[-1][0] is row.future:
            parts[-1][1].append(row.row)
        else:
            parts.append((row.future, [row.row]))
    return tuple((future, tuple(idx)) for future, idx in parts)


def shard_job(target: ShardTarget | None, arena: Arena | None, index: int,
              rows: Sequence[Any]) -> tuple[Callable[[Any], int], Any] | None:
    """``(function, argument)`` of the job writing ``rows`` as shard ``index`` on a worker, or
    None when the parent must write it (no target, or a row that is neither in ``arena`` nor
    kept by a Dask worker)."""
    if target is None:
        return None
    parts = _block_parts(rows)
    if parts is not None:
        return run_block_shard_job, (target, index, parts)
    if arena is None:
        return None
    offsets = []
    for row in rows:
        offset = arena.offset_of(row)
        if offset is None or not row.flags.c_contiguous:
            return None
        offsets.append(offset)
    return run_shard_job, ShardJob(target, index, tuple(offsets))
