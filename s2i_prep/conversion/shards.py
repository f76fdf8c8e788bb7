"""Shard jobs: one shard's samples, already in shared memory, -> its file in the Zarr store.

The parent decides each shard's composition (which sample rows, in order) and sends the job to a
worker process, which gathers the rows from the pool's shared arena (the same memory the task
results were written to), checksums, compresses and writes the shard file. The parent then
commits the shard (columns, manifest) strictly in shard order, whatever order the files were
written in. A shard that cannot go to a worker (HDF5 output, ``--workers 0``, the spawn start
method, Dask, or a row that came through the pipe) is written by the parent with the same
:func:`~s2i_prep.store.zarr_store.write_shard_file` (or the HDF5 backend) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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


def shard_job(target: ShardTarget | None, arena: Arena | None, index: int,
              rows: Sequence[np.ndarray]) -> ShardJob | None:
    """The job writing ``rows`` as shard ``index``, or None when a row is not in ``arena``
    (then the parent writes the shard)."""
    if target is None or arena is None:
        return None
    offsets = []
    for row in rows:
        offset = arena.offset_of(row)
        if offset is None or not row.flags.c_contiguous:
            return None
        offsets.append(offset)
    return ShardJob(target, index, tuple(offsets))
