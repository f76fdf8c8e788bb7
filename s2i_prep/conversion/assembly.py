"""Parent side: the ordered event stream -> whole shards, each committed in order with its resume
state. Shard files are written by worker processes when they can be (:mod:`.shards`), else by
one background thread of the parent; either way commits happen strictly in shard order."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import S2IError, StoreError
from ..parallel import Job, Region, WorkerDied
from ..specs import JointSpec
from .fingerprint import InputDigest
from .shards import shard_job
from .tasks import KIND_DUPLICATE, Excluded, Sample, Skip, TaskResult

#: StreamStats accumulators carried in the resume state (float64 round-trips exactly via JSON).
_STATS_FIELDS = ("count", "sum", "sumsq", "min", "max")

#: Shards cut but not yet committed before the assembler waits for the oldest: enough for a
#: worker to write one while the next fills, few enough to bound the memory they reference.
MAX_SHARDS_IN_FLIGHT = 2


class _Shard:
    """A cut shard on its way to the store: written by a worker (``job``) or by the parent's
    thread, then committed by that thread (``commit``) in shard order."""

    __slots__ = ("columns", "commit", "index", "job", "regions", "rows", "state")

    def __init__(self, index: int, rows: list[np.ndarray], columns: dict[str, np.ndarray],
                 state: dict[str, Any], regions: list[Region]) -> None:
        self.index, self.rows, self.columns, self.state = index, rows, columns, state
        self.regions = regions
        self.job: Job | None = None
        self.commit: Future[None] | None = None


class Assembler:
    """Turns the ordered event stream into whole shards plus the resume state of each.

    A sample's data are never copied here: the assembler keeps its row (a view into its task's
    block, in the pool's shared arena when local workers run the tasks, retaining that region;
    a :class:`~s2i_prep.dask_pool.RemoteRow` when the block stays on a Dask worker) until its
    shard is written. A cut shard whose rows all lie in the arena, or all on Dask workers, goes
    to a worker as a job (:func:`~.shards.shard_job`); any other (HDF5 or memory:// output, no
    arena, a row that came in band) is written by one background thread of the parent. Workers
    keep running meanwhile. The resume state holds only O(skips) data; the per-sample columns of
    committed shards come back from the writer itself (``committed_columns``).
    """

    def __init__(
        self,
        writer: Any,
        spec: JointSpec,
        stats: Any,
        on_error: str,
        digest: InputDigest,
        pool: Any = None,
    ) -> None:
        self.writer = writer
        self.digest = digest
        self.pool = pool
        self._arena = getattr(pool, "arena", None)
        self._target = writer.shard_target if pool is not None else None
        self.rows: list[np.ndarray] = []  # the samples of the shard being filled
        self._regions: list[Region] = []  # arena regions those rows lie in (retained)
        self._stat_rows: list[np.ndarray] = []  # packed statistics not merged yet (in order)
        self.inflight: deque[_Shard] = deque()
        self._next_index = -(-writer.num_samples // writer.shard_size)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2i-shard-writer")
        self._closed = False
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

    def add(self, event: Sample | Skip | Excluded, cursor: tuple[int, int],
            task: TaskResult | None = None) -> None:
        """Take one event; a packed sample's data is row ``event.s2i`` of its ``task``'s
        ``block`` (which lies in the arena region ``task.region``, or None: in band) and its
        statistics row ``event.stats`` of ``task.stats``."""
        if isinstance(event, Excluded):
            self.excluded += 1
            return
        if isinstance(event, Sample) and self.last_id is not None and event.name <= self.last_id:
            event = Skip(
                event.path,
                f"sample {event.name} repeats or comes out of order after "
                f"{self.last_id}; sample names must be unique",
                KIND_DUPLICATE,
            )
        if isinstance(event, Skip):
            if self.on_error == "fail":
                raise S2IError(f"{event.path}: {event.reason} (stopping: --on-error fail)")
            self.skipped.append((event.path, event.reason, event.kind))
            return
        if task is None:
            self.rows.append(event.s2i)  # type: ignore[arg-type]
        else:
            self.rows.append(task.block[event.s2i])  # type: ignore[index]
            region = task.region
            if region is not None and (not self._regions or self._regions[-1] is not region):
                self.pool.retain(region)
                self._regions.append(region)
        if task is not None and isinstance(event.stats, int):  # merged in order, in batches
            self._stat_rows.append(task.stats[event.stats])  # type: ignore[index]
        else:
            self._merge_stat_rows()
            self.stats.merge(event.stats)
        self.pending.append((event.name, event.columns))
        self.last_id = event.name
        if len(self.pending) == self.writer.shard_size:
            self.flush(cursor)

    def _merge_stat_rows(self) -> None:
        if self._stat_rows:
            self.stats.merge_packed(np.stack(self._stat_rows))
            self._stat_rows = []

    def flush(self, cursor: tuple[int, int]) -> None:
        """Cut the buffered samples as one shard whose state resumes at ``cursor``."""
        self._merge_stat_rows()  # the state and the statistics read after the last cut need them
        if not self.pending:
            return
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
        shard = _Shard(self._next_index, self.rows, cols, state, self._regions)
        self._next_index += 1
        self.rows, self._regions = [], []
        job = shard_job(self._target, self._arena, shard.index, shard.rows)
        if job is not None:
            shard.job = self.pool.submit(*job)
        self.inflight.append(shard)
        self._advance()
        while len(self.inflight) > MAX_SHARDS_IN_FLIGHT:
            self._advance(wait=True)

    def advance(self) -> None:
        """Commit what is ready and give back the memory of committed shards, without waiting
        (the caller calls this once per task result)."""
        if self.inflight:
            self._advance()

    def _advance(self, wait: bool = False) -> None:
        """Hand shards whose data are ready to the commit thread, in shard order, and retire
        the committed ones; ``wait=True`` blocks until the oldest is committed."""
        for shard in self.inflight:
            if shard.commit is not None:
                continue
            if shard.job is None:  # the parent writes it: its data are ready by definition
                shard.commit = self._io.submit(self.writer.write_shard, shard.rows,
                                               shard.columns, shard.state)
                continue
            if not shard.job.done:
                if not (wait and shard is self.inflight[0]):
                    break
                self._wait_job(shard)
            self._job_result(shard)
            shard.commit = self._io.submit(self.writer.commit_shard, len(shard.rows),
                                           shard.columns, shard.state)
        while self.inflight and self.inflight[0].commit is not None:
            shard = self.inflight[0]
            if not (wait or shard.commit.done()):  # type: ignore[union-attr]
                break
            shard.commit.result()  # type: ignore[union-attr]  # re-raises the writer's error
            self.inflight.popleft()
            for region in shard.regions:
                self.pool.release(region)
            wait = False

    def _wait_job(self, shard: _Shard) -> None:
        try:
            self.pool.wait(shard.job)
        except WorkerDied:
            self._job_result(shard)

    def _job_result(self, shard: _Shard) -> None:
        """The worker's answer for ``shard``; its death or an I/O error becomes an error naming
        the shard's samples (the other errors are bugs and keep their traceback)."""
        job = shard.job
        first = shard.index * self.writer.shard_size
        samples = f"samples {first}..{first + len(shard.rows) - 1}"
        if not job.done or isinstance(job.error, WorkerDied):  # type: ignore[union-attr]
            raise S2IError(
                f"a worker process died (killed, out of memory, or crashed in native code) "
                f"while writing shard {shard.index} ({samples})"
            )
        if isinstance(job.error, OSError):  # type: ignore[union-attr]
            raise StoreError(f"{self.writer.partial}: writing {samples} failed: {job.error}; "
                             "fix the cause and rerun with --resume")
        job.result()  # type: ignore[union-attr]

    def wait(self) -> None:
        """Block until every cut shard is committed; re-raises a writer's or worker's error."""
        while self.inflight:
            self._advance(wait=True)

    def close(self) -> None:
        """Commit what can still be committed in order (a resume keeps it), then stop the writer
        thread. Called while stopping: a shard that cannot be written now is left to the resume
        (its error was, or will be, reported by the caller)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.wait()
        except Exception:  # noqa: BLE001, S110 - stopping anyway; what was committed is kept
            pass
        finally:
            self._io.shutdown(wait=True)
            for regions in [s.regions for s in self.inflight] + [self._regions]:
                for region in regions:
                    self.pool.release(region)
            self.inflight.clear()
            self._regions = []
