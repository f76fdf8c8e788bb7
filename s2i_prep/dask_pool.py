"""Conversion tasks on a Dask cluster, with the interface of :class:`~s2i_prep.parallel.OrderedPool`.

The driver keeps doing what makes a conversion exact and resumable (planning, ordering, cutting
whole shards, committing each with its resume state); Dask replaces the local process pool. Tasks
are pure functions of their input files, so a task lost with a dying worker is simply run again
elsewhere (Dask reschedules it) and the output cannot change.

With ``map(..., keep="block")`` a task's sample block stays on the worker that computed it (a Dask
future): the driver receives the small rest (events, columns, statistics) and a :class:`Remote`
standing for the block, whose rows are :class:`RemoteRow` objects. A shard of such rows is then
written by a Dask task (:meth:`DaskPool.submit` with the futures among its arguments: Dask runs it where
most of their bytes lie and moves the others worker to worker), with the same shard writer as
local workers (:mod:`s2i_prep.conversion.shards`). A block is released when the last row
referring to it is dropped, i.e. once its shards are committed; until then a worker's death only
makes Dask recompute it from its lineage. See docs/DISTRIBUTED.md.

``address`` is a scheduler address (``tcp://host:8786``) or ``local:N`` for a local cluster of
``N`` single-threaded worker processes, started and stopped with the pool.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, NamedTuple, Self, TypeVar

from .errors import S2IError
from .parallel import TASKS_PER_WORKER, WorkerDied
from .store.staging import fault_point

__all__ = ["FILES_PER_TASK", "DaskJob", "DaskPool", "Remote", "RemoteRow", "parse_address"]

#: Input files per Dask task: a task costs the scheduler, the worker and the driver several ms
#: of CPU beyond the local pool's, which 64 files (about 4 MB of samples) amortise.
FILES_PER_TASK = 64

T = TypeVar("T")
R = TypeVar("R")


def parse_address(address: str) -> tuple[str | None, int]:
    """``(scheduler address, 0)`` or ``(None, N)`` for ``local:N``; a clear error otherwise."""
    if address.startswith("local:"):
        count = address.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise S2IError(f"--dask {address}: expected local:N with N >= 1 worker processes")
        return None, int(count)
    if not address or address.startswith("local"):
        raise S2IError(f"--dask {address!r}: expected a scheduler address "
                       "(tcp://host:8786) or local:N")
    return address, 0


def _client(address: str) -> tuple[Any, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise S2IError("--dask needs Dask: pip install 's2i[dask]' "
                       "(or pip install 'dask[distributed]')") from None
    scheduler, local = parse_address(address)
    if scheduler is None:
        cluster = LocalCluster(n_workers=local, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=30), None
    except (OSError, TimeoutError) as exc:
        raise S2IError(f"--dask {scheduler}: cannot reach the scheduler: {exc}") from None


#: The install arguments last installed in this worker process (scattered once per worker).
_INSTALLED: Any = None


def _value(value: Any) -> Any:
    return value


def _call(install: Callable[..., None], args: tuple[Any, ...], fn: Callable[[Any], Any],
          task: Any) -> Any:
    """Run one task on a worker, installing the conversion's context on first use."""
    global _INSTALLED
    if _INSTALLED is not args:
        install(*args)
        _INSTALLED = args
    fault_point("dask-task")
    return fn(task)


def _without(result: Any, attr: str) -> tuple[Any, bool]:
    """Worker side: ``result`` without its attribute ``attr`` (which stays on the worker), and
    whether it had one."""
    value = getattr(result, attr)
    return (result if value is None else replace(result, **{attr: None})), value is not None


class RemoteRow(NamedTuple):
    """Row ``row`` of the kept attribute of the task result behind ``future``."""

    future: Any
    row: int


class Remote:
    """Stands on the driver for a task result's attribute kept on a Dask worker: indexing it
    gives :class:`RemoteRow` objects (which keep the worker's copy alive)."""

    __slots__ = ("future",)

    def __init__(self, future: Any) -> None:
        self.future = future

    def __getitem__(self, row: int) -> RemoteRow:
        return RemoteRow(self.future, row)


class DaskJob:
    """A side job (:meth:`DaskPool.submit`) with the interface of :class:`~s2i_prep.parallel.Job`:
    ``done``, ``error`` (:class:`~s2i_prep.parallel.WorkerDied` when its workers kept dying),
    ``result()``."""

    __slots__ = ("arg", "future")

    def __init__(self, arg: Any, future: Any) -> None:
        self.arg, self.future = arg, future

    @property
    def done(self) -> bool:
        return bool(self.future.done())

    @property
    def error(self) -> BaseException | None:
        from distributed import KilledWorker

        if not self.future.done() or self.future.status == "finished":
            return None
        try:
            exc = self.future.exception()
        except Exception as err:  # noqa: BLE001 - cancelled (the cluster went away)
            exc = err
        return WorkerDied(self.arg) if isinstance(exc, KilledWorker) else exc

    def result(self) -> Any:
        error = self.error
        if error is not None:
            raise error
        return self.future.result()


class DaskPool:
    """Run ``fn(task)`` on Dask workers, yielding results in task order (a bounded window)."""

    def __init__(self, address: str, install: Callable[..., None],
                 install_args: tuple[Any, ...] = (), window: int | None = None) -> None:
        self.client, self._cluster = _client(address)
        try:
            workers = sum(self.client.nthreads().values())
            if workers == 0:
                self.client.wait_for_workers(1, timeout=60)
                workers = sum(self.client.nthreads().values())
        except (OSError, TimeoutError) as exc:
            self.close()
            raise S2IError(f"--dask {address}: no worker joined the cluster: {exc}") from None
        self.workers = workers
        self.window = window or workers * TASKS_PER_WORKER
        self.files_per_task = FILES_PER_TASK
        self._install = install
        # Shipped once per worker, not with every task; a task's result rather than scattered
        # data, so it has a lineage: when every worker holding it dies, Dask recomputes it
        # (scattered data would be lost, and every task needing it cancelled).
        self._args = self.client.submit(_value, install_args, pure=False)

    def map(self, fn: Callable[[T], R], tasks: Iterable[T], keep: str | None = None
            ) -> Iterator[R]:
        """Results of ``fn`` over ``tasks`` in order, with at most ``window`` tasks in flight.
        With ``keep``, that attribute of each result stays on its worker: the result comes with
        a :class:`Remote` there instead (None stays None)."""
        from distributed import KilledWorker

        pending: deque[tuple[T, Any, Any]] = deque()
        try:
            for task in tasks:
                # pure=False: equal tasks of a rerun are new work, not cached results
                fut = self.client.submit(_call, self._install, self._args, fn, task, pure=False)
                small = None if keep is None else self.client.submit(_without, fut, keep,
                                                                     pure=False)
                pending.append((task, fut, small))
                if len(pending) >= self.window:
                    yield self._result(*pending.popleft(), keep, KilledWorker)
            while pending:
                yield self._result(*pending.popleft(), keep, KilledWorker)
        finally:
            for _, fut, small in pending:
                fut.cancel()
                if small is not None:
                    small.cancel()

    @staticmethod
    def _result(task: T, fut: Any, small: Any, keep: str | None,
                killed: type[BaseException]) -> Any:
        try:
            if small is None:
                return fut.result()
            result, kept = small.result()
        except killed:  # the task's workers died more often than Dask's allowed-failures
            raise WorkerDied(task) from None
        if kept:
            setattr(result, keep, Remote(fut))  # type: ignore[arg-type]
        return result

    def submit(self, fn: Callable[[T], R], arg: T) -> DaskJob:
        """Run ``fn(arg)`` on a worker; futures inside ``arg`` (in tuples and lists) arrive as
        their results. The scheduler places it where most of their bytes already are."""
        return DaskJob(arg, self.client.submit(_call, self._install, self._args, fn, arg,
                                               pure=False))

    @staticmethod
    def wait(job: DaskJob) -> None:
        """Block until ``job`` is done (its result or error is then in ``job.result()``)."""
        from distributed import wait

        wait([job.future])

    def check_sees(self, folder: str) -> None:
        """S2IError unless every worker now in the cluster sees the local ``folder`` (the
        output being built): on a cluster without a shared filesystem at the same path, a
        worker's shard would otherwise land on its own disk and the run fail at the first
        commit. Workers joining later are not checked (their missing shard is still caught at
        its commit)."""
        seen = self.client.run(os.path.isdir, folder)
        blind = sorted(worker for worker, ok in seen.items() if not ok)
        if blind:
            raise S2IError(
                f"{folder}: not visible to {len(blind)} of {len(seen)} Dask workers (e.g. "
                f"{blind[0]}); Dask workers write the shards, so they must see the output at "
                "the same path as the driver (a shared filesystem), or convert to an "
                "object-store URL"
            )

    def retain(self, region: Any) -> None:
        """Nothing to do: a kept block lives as long as a row refers to it."""

    release = retain

    def close(self) -> None:
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            client.close()
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            cluster.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
