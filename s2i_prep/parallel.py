"""Ordered, bounded fan-out of conversion tasks over worker processes.

Conversion is CPU-bound per file and embarrassingly parallel, but the output must not depend on
the worker count, and memory must not grow with the corpus. So tasks go to a process pool
through a fixed window of outstanding futures and results come back strictly in submission order:
the caller sees exactly the sequence a single process would produce, and at most ``window``
results are ever held at once.

Workers are forked on Linux after the parent warmed the Numba kernels, so they inherit compiled
code instead of compiling (or racing on the on-disk cache) themselves. The pool is started before
the caller opens its output, so no worker inherits an output lock or file handle.

Workers never outlive the parent, whatever ends it (SIGKILL, the OOM killer, a crash): on Linux
the kernel kills them when it dies (``PR_SET_PDEATHSIG``), and on every platform and start method
a watcher thread in each worker exits when the pipe to the parent closes. Workers ignore SIGINT
and SIGTERM: a Ctrl-C or a scheduler's SIGTERM reaches the whole process group, and the parent
alone decides how to stop (commit what it has, then stop the workers), so no worker dies halfway
through a task and no traceback is printed per worker.

Bulk results skip the pipe: a result with a ``block`` attribute (one numpy array, e.g. a task's
stacked samples) has it copied by the worker into a slot of anonymous shared memory mapped
before the fork, and the parent reads it there in place. Unpickling ~0.5 MB per task through the
executor's pipe and threads cost the parent several copies and more CPU than the samples' own
bookkeeping. Slots are reused round-robin: the task window bounds how many are in use, and a
result's slot is only rewritten after the caller asked for the next result. A block that does not
fit its slot, and every block with the spawn start method, travels through the pipe as before.
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Self, TypeVar

import numpy as np

from .errors import S2IError

__all__ = ["OrderedPool", "WorkerDied", "cap_threads", "default_workers"]

T = TypeVar("T")
R = TypeVar("R")

#: Thread-pool sizes of numerical libraries: one worker process = one core.
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)

#: Outstanding tasks per worker: enough to hide scheduling gaps, few enough to bound memory.
TASKS_PER_WORKER = 3
#: Input files per conversion task in local worker processes: amortises IPC, balances load.
FILES_PER_TASK = 8


class WorkerDied(S2IError):
    """A worker process ended abruptly (killed, out of memory, a crash in native code).

    ``task`` is the oldest task still in flight, the one the caller was waiting for.
    """

    def __init__(self, task: Any) -> None:
        self.task = task
        super().__init__("a worker process died (killed, out of memory, or crashed in native code)")


def default_workers() -> int:
    """Cores this process may run on (the affinity mask, not the machine's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def cap_threads() -> None:
    """Make this process single-threaded in every numerical library it loads from now on.

    Also selects Numba's fork-safe ``workqueue`` threading layer (the default OpenMP layer kills
    fork-started children that run a parallel kernel after the parent did). Environment settings
    bind only libraries loaded afterwards: the ``convert`` command calls this before Numba is
    imported, so forked workers inherit its settings; each worker calls it again for whatever it
    loads itself. numpy's BLAS is loaded earlier and keeps its own pool, which is harmless here
    (conversion does no BLAS-sized linear algebra). Library callers of ``convert()`` keep their
    own settings.
    """
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")


#: Seconds between checks of the parent's pid by the watcher thread (a fallback to the pipe).
_PARENT_POLL_S = 1.0


def _set_pdeathsig() -> None:
    """Linux: have the kernel SIGKILL this process when its parent (the forking thread) ends."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no usable libc: the watcher remains
        pass


def _watch_parent(parent_pid: int) -> None:
    """Exit this process when the parent ends: a daemon thread waits on the pipe that only the
    parent holds open (multiprocessing's parent sentinel, on fork and spawn alike) and also
    checks the parent's pid every second (a sentinel may be missing or held by a sibling)."""
    parent = multiprocessing.parent_process()
    sentinel = parent.sentinel if parent is not None else None

    def watch() -> None:
        from multiprocessing.connection import wait

        while True:
            if sentinel is not None:
                if wait([sentinel], timeout=_PARENT_POLL_S):
                    os._exit(1)  # readable = EOF: the parent is gone
            else:
                threading.Event().wait(_PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="s2i-parent-watch", daemon=True).start()


def _die_with_parent(parent_pid: int) -> None:
    """End this worker as soon as the process ``parent_pid`` ends, however it ends."""
    _set_pdeathsig()
    # The parent may have died before the prctl above: then this process was already reparented.
    if os.getppid() != parent_pid:
        os._exit(1)
    _watch_parent(parent_pid)


class _Slots:
    """``count`` fixed-size slots of anonymous shared memory (inherited by forked workers)."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size
        self.memory = mmap.mmap(-1, count * size)  # MAP_SHARED | MAP_ANONYMOUS

    def view(self, slot: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        n = math.prod(shape)
        return np.frombuffer(self.memory, dtype, n, slot * self.size).reshape(shape)


class _InSlot:
    """Where a result's block went: its slot, shape and dtype (what the pipe carries instead)."""

    __slots__ = ("dtype", "shape", "slot")

    def __init__(self, slot: int, shape: tuple[int, ...], dtype: str) -> None:
        self.slot, self.shape, self.dtype = slot, shape, dtype

    def __reduce__(self) -> tuple[Any, ...]:
        return _InSlot, (self.slot, self.shape, self.dtype)


#: This worker's shared result slots (set by :func:`_worker_init` in forked workers).
_SLOTS: _Slots | None = None


def _run_in_slot(fn: Callable[[T], R], slot: int, task: T) -> R:
    """Worker side: ``fn(task)``, its result's ``block`` moved into shared slot ``slot``."""
    result = fn(task)
    block = getattr(result, "block", None)
    if _SLOTS is not None and isinstance(block, np.ndarray) and block.nbytes <= _SLOTS.size:
        _SLOTS.view(slot, block.shape, block.dtype.str)[...] = block
        result.block = _InSlot(slot, block.shape, block.dtype.str)  # type: ignore[attr-defined]
    return result


def _worker_init(install: Callable[..., None], args: tuple[Any, ...], parent_pid: int,
                 slots: _Slots | None = None) -> None:
    global _SLOTS
    # The parent handles stop signals for the whole group and then stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    cap_threads()
    _SLOTS = slots
    install(*args)


def _context() -> multiprocessing.context.BaseContext:
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    """Kill the executor's workers so that its shutdown cannot hang.

    ProcessPoolExecutor has no public way to stop running tasks. Its process table and result
    queue are stable private attributes across CPython 3.9-3.13. A worker killed while sending a
    result leaves half a message in the result pipe, and the executor's manager thread would wait
    for the rest forever (the parent's own write end keeps the pipe open): closing that write end
    once the workers are dead turns the wait into an EOF the executor handles as a broken pool.
    """
    procs = list((getattr(executor, "_processes", None) or {}).values())
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.join()
    queue = getattr(executor, "_result_queue", None)
    writer = getattr(queue, "_writer", None)
    if writer is not None:
        writer.close()


class OrderedPool:
    """Run ``fn(task)`` for a stream of tasks, yielding results in task order.

    ``workers == 0`` runs everything in the calling process (no pickling, easy debugging).
    ``install(*install_args)`` runs once per worker (and once in-process for ``workers == 0``)
    to set up per-process state, so tasks themselves stay small to pickle. With
    ``block_bytes > 0`` (and the fork start method), a result's ``block`` array of up to that
    many bytes comes back through shared memory (see the module docstring); the array the caller
    gets is then valid until it asks for the next result.
    """

    def __init__(
        self,
        workers: int,
        install: Callable[..., None],
        install_args: tuple[Any, ...] = (),
        window: int | None = None,
        block_bytes: int = 0,
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, found {workers}")
        self.workers = workers
        self.window = window or max(1, workers) * TASKS_PER_WORKER
        #: Consecutive input files per task (the conversion's batching of its files).
        self.files_per_task = FILES_PER_TASK
        self._executor: ProcessPoolExecutor | None = None
        self._slots: _Slots | None = None
        if workers == 0:
            install(*install_args)
            return
        context = _context()
        if block_bytes > 0 and context.get_start_method() == "fork":
            # One slot per task in flight, plus the one whose result the caller is reading.
            self._slots = _Slots(self.window + 1, block_bytes)
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_worker_init,
            initargs=(install, install_args, os.getpid(), self._slots),
        )
        # Fork every worker now, before the caller opens output files or starts threads.
        self._executor.submit(os.getpid).result()

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """Results of ``fn`` over ``tasks`` in order, with at most ``window`` tasks in flight."""
        if self._executor is None:
            for task in tasks:
                yield fn(task)
            return
        pending: deque[tuple[T, Future[R]]] = deque()
        count = self._slots.count if self._slots is not None else 1
        try:
            for k, task in enumerate(tasks):
                if self._slots is None:
                    fut = self._executor.submit(fn, task)
                else:
                    fut = self._executor.submit(_run_in_slot, fn, k % count, task)
                pending.append((task, fut))
                if len(pending) >= self.window:
                    yield self._result(*pending.popleft())
            while pending:
                yield self._result(*pending.popleft())
        finally:
            for _, fut in pending:
                fut.cancel()

    def _result(self, task: T, fut: Future[R]) -> R:
        try:
            result = fut.result()
        except BrokenProcessPool:
            raise WorkerDied(task) from None
        where = getattr(result, "block", None)
        if isinstance(where, _InSlot) and self._slots is not None:
            result.block = self._slots.view(where.slot, where.shape, where.dtype)  # type: ignore[attr-defined]
        return result

    def close(self, kill: bool = False) -> None:
        """Stop the workers; outstanding tasks are cancelled.

        ``kill=True`` (the caller is stopping early: an error, Ctrl-C, SIGTERM) kills the workers
        instead of letting their current tasks finish, whose results nobody would read; a worker
        stuck in a task would otherwise keep the caller from exiting.
        """
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        if kill:
            _kill_workers(executor)
        executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(kill=exc_type is not None)
