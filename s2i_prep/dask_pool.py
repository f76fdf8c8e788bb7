"""Conversion tasks on a Dask cluster, with the interface of :class:`~s2i_prep.parallel.OrderedPool`.

The driver keeps doing what makes a conversion exact and resumable (planning, ordering, cutting
whole shards, committing each with its resume state); Dask replaces the local process pool. Tasks
are pure functions of their input files, so a task lost with a dying worker is simply run again
elsewhere (Dask reschedules it) and the output cannot change. See docs/DISTRIBUTED.md for why the
driver, not the workers, writes the shards.

``address`` is a scheduler address (``tcp://host:8786``) or ``local:N`` for a local cluster of
``N`` single-threaded worker processes, started and stopped with the pool.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self, TypeVar

from .errors import S2IError
from .parallel import TASKS_PER_WORKER, WorkerDied
from .store.staging import fault_point

__all__ = ["FILES_PER_TASK", "DaskPool", "parse_address"]

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


def _call(install: Callable[..., None], args: tuple[Any, ...], fn: Callable[[Any], Any],
          task: Any) -> Any:
    """Run one task on a worker, installing the conversion's context on first use."""
    global _INSTALLED
    if _INSTALLED is not args:
        install(*args)
        _INSTALLED = args
    fault_point("dask-task")
    return fn(task)


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
        # Shipped once per worker, not with every task.
        self._args = self.client.scatter(install_args, broadcast=True, hash=False)

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """Results of ``fn`` over ``tasks`` in order, with at most ``window`` tasks in flight."""
        from distributed import KilledWorker

        pending: deque[tuple[T, Any]] = deque()
        try:
            for task in tasks:
                # pure=False: equal tasks of a rerun are new work, not cached results
                fut = self.client.submit(_call, self._install, self._args, fn, task, pure=False)
                pending.append((task, fut))
                if len(pending) >= self.window:
                    yield self._result(*pending.popleft(), KilledWorker)
            while pending:
                yield self._result(*pending.popleft(), KilledWorker)
        finally:
            for _, fut in pending:
                fut.cancel()

    @staticmethod
    def _result(task: T, fut: Any, killed: type[BaseException]) -> Any:
        try:
            return fut.result()
        except killed:  # the task's workers died more often than Dask's allowed-failures
            raise WorkerDied(task) from None

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
