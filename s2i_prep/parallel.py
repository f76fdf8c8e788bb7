"""Ordered, bounded fan-out of conversion tasks over worker processes, and side jobs.

Conversion is CPU-bound per file and embarrassingly parallel, but the output must not depend on
the worker count, and memory must not grow with the corpus. So tasks go to worker processes
through a fixed window and results come back strictly in submission order: the caller sees
exactly the sequence a single process would produce, and at most ``window`` results are ever
held at once. Besides ordered tasks, the pool runs *jobs* (:meth:`OrderedPool.submit`) whose
results the caller collects whenever they end, in any order (the conversion's shard writes).

The pool is our own, not ``ProcessPoolExecutor``: each worker has one duplex pipe, and the
caller's own thread sends tasks and reads results (one persistent ``poll`` over the pipes and
the workers' sentinels; ``multiprocessing.connection.wait`` where ``poll`` is missing). No
manager or feeder thread sits between them, which cost the
parent more CPU in wake-ups and GIL hand-offs than the results themselves, and a worker that
dies is seen at once (its sentinel) and reported as :class:`WorkerDied` naming its task; a
message cut short by a death reads as EOF, never as a hang.

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
stacked samples) has it copied by the worker into an :class:`Arena` of anonymous shared memory
mapped before the fork, at a region the parent reserved when it sent the task; the caller reads
it in place and may keep rows of it alive past the next result by retaining the region (the
conversion keeps them until the shard holding them is written, by a worker reading the same
memory). Regions are reserved and reclaimed in order, so the arena is a ring with a fixed size.
A block that does not fit its region, a task sent while the arena is full, and every block with
the spawn start method travel through the pipe instead.
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os
import select
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any, Self, TypeVar

import numpy as np

from .errors import S2IError

__all__ = ["Arena", "Job", "OrderedPool", "WorkerDied", "arena_rows", "cap_threads", "default_workers"]

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

    ``task`` is what that worker was running (a task of :meth:`OrderedPool.map` or the argument
    of a :meth:`OrderedPool.submit` job), or the task the caller was waiting for if it was idle.
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



class Region:
    """A reservation in an :class:`Arena`: ``start`` (a position that only grows; the byte offset
    is ``start % arena.size``), ``size`` bytes, and how many holders still need it."""

    __slots__ = ("refs", "size", "start")

    def __init__(self, start: int, size: int) -> None:
        self.start, self.size, self.refs = start, size, 1


class Arena:
    """A ring of anonymous shared memory (``mmap(-1, size)``: inherited by forked workers, no name
    to clean up, gone with the last process that maps it).

    Regions are reserved in order and reclaimed in order: a region's bytes are reused only after
    it and every region reserved before it were released by all their holders. A region never
    wraps around the end of the ring. ``reserve`` answers None when the ring has no room; memory
    is therefore bounded by ``size`` whatever the callers do.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.memory = mmap.mmap(-1, size)  # MAP_SHARED | MAP_ANONYMOUS
        self.base = np.frombuffer(self.memory, np.uint8).ctypes.data
        self.live: deque[Region] = deque()
        self.head = 0  # where the next reservation starts

    def reserve(self, nbytes: int) -> Region | None:
        start = self.head
        offset = start % self.size
        if offset + nbytes > self.size:  # skip the ring's tail end: a region is contiguous
            start += self.size - offset
        tail = self.live[0].start if self.live else start
        if nbytes > self.size or start + nbytes - tail > self.size:
            return None
        self.head = start + nbytes
        region = Region(start, nbytes)
        self.live.append(region)
        return region

    def retain(self, region: Region) -> None:
        region.refs += 1

    def release(self, region: Region) -> None:
        region.refs -= 1
        while self.live and self.live[0].refs <= 0:
            self.live.popleft()

    def view(self, offset: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        return np.frombuffer(self.memory, dtype, math.prod(shape), offset).reshape(shape)

    def offset_of(self, array: np.ndarray) -> int | None:
        """Byte offset of ``array``'s data in this arena, or None when it lies elsewhere."""
        offset = array.__array_interface__["data"][0] - self.base
        return offset if 0 <= offset and offset + array.nbytes <= self.size else None


#: The arena of the current pool: the parent's, inherited by its forked workers.
_ARENA: Arena | None = None


def arena_rows(offsets: Iterable[int], shape: tuple[int, ...], dtype: str) -> list[np.ndarray]:
    """Views of arrays in the shared arena at ``offsets`` (a job's input: works in the parent
    and in its forked workers alike, the memory being the same)."""
    if _ARENA is None:
        raise RuntimeError("no shared arena in this process (only pools of forked workers have one)")
    return [_ARENA.view(offset, shape, dtype) for offset in offsets]


class _InArena:
    """Where a result's block went: its offset, shape and dtype (what the pipe carries instead)."""

    __slots__ = ("dtype", "offset", "shape")

    def __init__(self, offset: int, shape: tuple[int, ...], dtype: str) -> None:
        self.offset, self.shape, self.dtype = offset, shape, dtype

    def __reduce__(self) -> tuple[Any, ...]:
        return _InArena, (self.offset, self.shape, self.dtype)


def _run(fn: Callable[[Any], Any], arg: Any, offset: int, room: int) -> Any:
    """Worker side: ``fn(arg)``, its result's ``block`` moved into the arena when it fits."""
    result = fn(arg)
    block = getattr(result, "block", None)
    if room and _ARENA is not None and isinstance(block, np.ndarray) and block.nbytes <= room:
        _ARENA.view(offset, block.shape, block.dtype.str)[...] = block
        result.block = _InArena(offset, block.shape, block.dtype.str)
    return result


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError that says what it was."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable exception
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _worker_main(conn: Connection, install: Callable[..., None], args: tuple[Any, ...],
                 parent_pid: int) -> None:
    """A worker's life: set up, then run what the parent sends until it sends None."""
    # The parent handles stop signals for the whole group and then stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    cap_threads()
    install(*args)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            break
        if message is None:
            break
        ident, fn, arg, offset, room = message
        try:
            reply = (ident, True, _run(fn, arg, offset, room))
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, who decides
            reply = (ident, False, _portable(exc))
        conn.send(reply)
    conn.close()


def _context() -> multiprocessing.context.BaseContext:
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


class Job:
    """A job sent with :meth:`OrderedPool.submit`: ``done`` once its result (or error) is in."""

    __slots__ = ("arg", "done", "error", "value")

    def __init__(self, arg: Any) -> None:
        self.arg, self.done = arg, False
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> Any:
        if not self.done:
            raise RuntimeError("job not finished (OrderedPool.wait for it)")
        if self.error is not None:
            raise self.error
        return self.value


class _Item:
    """Something sent to a worker: an ordered task or a job, with its arena region."""

    __slots__ = ("abandoned", "arg", "job", "region", "reply", "worker")

    def __init__(self, arg: Any, worker: int, region: Region | None, job: Job | None) -> None:
        self.arg, self.worker, self.region, self.job = arg, worker, region, job
        self.reply: tuple[bool, Any] | None = None
        self.abandoned = False  # its caller stopped waiting; its region is freed when it ends


class OrderedPool:
    """Run ``fn(task)`` for a stream of tasks, yielding results in task order; run side jobs.

    ``workers == 0`` runs everything in the calling process (no pickling, easy debugging).
    ``install(*install_args)`` runs once per worker (and once in-process for ``workers == 0``)
    to set up per-process state, so tasks themselves stay small to pickle. With
    ``block_bytes > 0`` and ``arena_bytes > 0`` (and the fork start method), a result's ``block``
    array of up to ``block_bytes`` comes back through the shared :class:`Arena`
    (see the module docstring); the caller gets it with ``result.region`` set, valid until it
    asks for the next result unless it :meth:`retain`s that region. Results of other blocks
    have ``region`` None (if the result accepts attributes).
    """

    def __init__(
        self,
        workers: int,
        install: Callable[..., None],
        install_args: tuple[Any, ...] = (),
        window: int | None = None,
        block_bytes: int = 0,
        arena_bytes: int = 0,
    ) -> None:
        global _ARENA
        if workers < 0:
            raise ValueError(f"workers must be >= 0, found {workers}")
        self.workers = workers
        self.window = window or max(1, workers) * TASKS_PER_WORKER
        #: Consecutive input files per task (the conversion's batching of its files).
        self.files_per_task = FILES_PER_TASK
        self.arena: Arena | None = None
        self.block_bytes = block_bytes
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._queued: list[deque[int]] = []  # per worker: idents sent, in the order it runs them
        self._items: dict[int, _Item] = {}
        self._next_ident = 0
        self._poller = select.poll() if hasattr(select, "poll") else None
        self._fds: dict[int, tuple[int, bool]] = {}  # polled fd -> (worker, is its sentinel)
        if workers == 0:
            install(*install_args)
            return
        context = _context()
        if block_bytes > 0 and arena_bytes >= block_bytes and context.get_start_method() == "fork":
            self.arena = _ARENA = Arena(arena_bytes)  # mapped before the fork: shared with workers
        parent_pid = os.getpid()
        try:
            # Fork every worker now, before the caller opens output files or starts threads.
            for _ in range(workers):
                parent_end, child_end = context.Pipe(duplex=True)
                proc = context.Process(
                    target=_worker_main, args=(child_end, install, install_args, parent_pid),
                    daemon=True, name="s2i-worker",
                )
                proc.start()
                child_end.close()  # only the worker holds it: its death reads as EOF here
                self._procs.append(proc)
                self._conns.append(parent_end)
                self._queued.append(deque())
                if self._poller is not None:
                    for fd, is_sentinel in ((parent_end.fileno(), False), (proc.sentinel, True)):
                        self._poller.register(fd, select.POLLIN)
                        self._fds[fd] = (len(self._procs) - 1, is_sentinel)
        except BaseException:
            self.close(kill=True)
            raise

    # -- sending -------------------------------------------------------------------------------
    def _send(self, fn: Callable[[Any], Any], arg: Any, job: Job | None = None) -> int:
        """Send ``fn(arg)`` to the least busy worker; an ordered task reserves an arena region."""
        live = [w for w in range(len(self._procs)) if self._conns[w] is not None]
        if not live:
            raise WorkerDied(arg)
        worker = min(live, key=lambda w: len(self._queued[w]))
        region = None
        if job is None and self.arena is not None:
            region = self.arena.reserve(self.block_bytes)
        ident = self._next_ident
        self._next_ident += 1
        item = _Item(arg, worker, region, job)
        self._items[ident] = item
        self._queued[worker].append(ident)
        offset = region.start % self.arena.size if region is not None else 0  # type: ignore[union-attr]
        try:
            self._conns[worker].send((ident, fn, arg, offset, region.size if region else 0))
        except (BrokenPipeError, ConnectionResetError):
            self._pump(0)  # the worker is gone: its sentinel says so; the wait reports it
        return ident

    def submit(self, fn: Callable[[T], R], arg: T) -> Job:
        """Run ``fn(arg)`` on a worker (in this process with ``workers == 0``); see :meth:`wait`."""
        job = Job(arg)
        if not self._procs:
            try:
                job.value = fn(arg)
            except Exception as exc:  # noqa: BLE001 - delivered by Job.result like a worker's
                job.error = exc
            job.done = True
            return job
        self._send(fn, arg, job)
        return job

    # -- receiving -----------------------------------------------------------------------------
    def _pump(self, timeout: float | None) -> None:
        """Read the replies that are ready (waiting up to ``timeout`` for one); notice deaths.

        A persistent ``poll`` object watches every pipe and sentinel: building a selector per
        wait (``multiprocessing.connection.wait``) cost the parent ~30 us per reply."""
        if self._poller is None:
            live = [w for w in range(len(self._procs)) if self._conns[w] is not None]
            ready = set(wait([self._conns[w] for w in live]
                             + [self._procs[w].sentinel for w in live], timeout))
            events = [(w, self._conns[w] in ready, self._procs[w].sentinel in ready)
                      for w in live]
        else:
            ms = None if timeout is None else int(timeout * 1000)
            polled = self._poller.poll(ms)
            events = [(w, not is_sentinel, is_sentinel)
                      for w, is_sentinel in (self._fds[fd] for fd, _ in polled)]
        for w, readable, exited in events:
            conn = self._conns[w]
            if conn is None:
                continue
            died = False
            # One reply per readable pipe (the next poll returns at once if more are queued);
            # an exited worker's pipe is drained first: it may hold replies sent before it died.
            while readable or (exited and conn.poll()):
                readable = False
                try:
                    ident, ok, payload = conn.recv()
                except (EOFError, OSError):  # died, perhaps in the middle of a reply
                    died = True
                    break
                self._deliver(w, ident, ok, payload)
            if died or exited:
                self._worker_died(w)

    def _deliver(self, worker: int, ident: int, ok: bool, payload: Any) -> None:
        self._queued[worker].popleft()
        item = self._items.pop(ident, None)
        if item is None:
            return
        if item.abandoned:  # nobody reads it; only now may its region be written again
            if item.region is not None and self.arena is not None:
                self.arena.release(item.region)
            return
        where = getattr(payload, "block", None) if ok else None
        if isinstance(where, _InArena) and self.arena is not None:
            payload.block = self.arena.view(where.offset, where.shape, where.dtype)
        elif item.region is not None and self.arena is not None:
            self.arena.release(item.region)  # nothing came through it (in band, or an error)
            item.region = None
        if item.job is not None:
            item.job.done = True
            if ok:
                item.job.value = payload
            else:
                item.job.error = payload
        else:
            item.reply = (ok, payload)
            self._items[ident] = item  # kept until the ordered consumer takes it

    def _worker_died(self, worker: int) -> None:
        """A worker is gone: what it was running and what was queued behind it fail with
        :class:`WorkerDied` naming the task it was running; the other workers go on."""
        if self._poller is not None:
            for fd, (w, _) in list(self._fds.items()):
                if w == worker:
                    self._poller.unregister(fd)
                    del self._fds[fd]
        self._conns[worker].close()
        self._conns[worker] = None  # type: ignore[call-overload]
        queued = self._queued[worker]
        running = self._items[queued[0]].arg if queued and queued[0] in self._items else None
        for ident in queued:
            item = self._items.get(ident)
            if item is None:
                continue
            error = WorkerDied(item.arg if running is None else running)
            if item.region is not None and self.arena is not None:
                self.arena.release(item.region)
                item.region = None
            if item.job is not None or item.abandoned:
                del self._items[ident]
            if item.job is not None:
                item.job.done, item.job.error = True, error
            else:
                item.reply = (False, error)
        queued.clear()

    def _await(self, item: _Item) -> None:
        while item.reply is None if item.job is None else not item.job.done:
            if all(conn is None for conn in self._conns):
                raise WorkerDied(item.arg)
            self._pump(None)

    def wait(self, job: Job) -> None:
        """Block until ``job`` is done (its result or error is then in ``job.result()``)."""
        if not job.done:
            self._await(_Item(job.arg, -1, None, job))

    def poll(self) -> None:
        """Take in whatever replies are ready, without waiting."""
        if self._procs:
            self._pump(0)

    def retain(self, region: Region) -> None:
        """Keep ``region`` (a result's block) from reuse until a matching :meth:`release`."""
        if self.arena is not None:
            self.arena.retain(region)

    def release(self, region: Region) -> None:
        if self.arena is not None:
            self.arena.release(region)

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """Results of ``fn`` over ``tasks`` in order, with at most ``window`` tasks in flight."""
        if not self._procs:
            for task in tasks:
                yield fn(task)
            return
        order: deque[int] = deque()
        source = iter(tasks)
        exhausted = False
        held: Region | None = None
        try:
            while True:
                if held is not None:
                    self.arena.release(held)  # type: ignore[union-attr]
                    held = None
                while not exhausted and len(order) < self.window:
                    task = next(source, _END)
                    if task is _END:
                        exhausted = True
                    else:
                        order.append(self._send(fn, task))
                if not order:
                    return
                ident = order.popleft()
                item = self._items[ident]
                self._await(item)
                del self._items[ident]
                ok, payload = item.reply
                if not ok:
                    raise payload
                held = item.region
                if hasattr(payload, "block"):
                    payload.region = held
                yield payload
        finally:
            if held is not None and self.arena is not None:
                self.arena.release(held)
            for ident in order:  # abandoned: replies are dropped when they come
                item = self._items.get(ident)
                if item is None:
                    continue
                if item.reply is not None:  # already in: free it now
                    del self._items[ident]
                    if item.region is not None and self.arena is not None:
                        self.arena.release(item.region)
                else:
                    item.abandoned = True

    def close(self, kill: bool = False) -> None:
        """Stop the workers; outstanding tasks and jobs are dropped.

        ``kill=True`` (the caller is stopping early: an error, Ctrl-C, SIGTERM) kills the workers
        instead of letting their current tasks finish, whose results nobody would read; a worker
        stuck in a task would otherwise keep the caller from exiting.
        """
        global _ARENA
        procs, self._procs = self._procs, []
        if not kill:
            for conn in self._conns:
                if conn is not None:
                    try:
                        conn.send(None)
                    except OSError:
                        pass
            for proc in procs:
                proc.join(timeout=_CLOSE_WAIT_S)
        for proc in procs:
            if proc.exitcode is None:
                proc.kill()
        for proc in procs:
            proc.join()
        for conn in self._conns:
            if conn is not None:
                conn.close()
        self._conns = []
        if _ARENA is self.arena:
            _ARENA = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(kill=exc_type is not None)


#: Seconds a worker has to finish its current work and exit after a normal close.
_CLOSE_WAIT_S = 5.0
_END = object()
