"""The worker pool (``s2i_prep/parallel.py``): order, window, shared arena, jobs, dead workers.

Functions run by the workers live at module level (they travel by reference). Every test that
could hang on a bug runs under ``_deadline`` (SIGALRM), so a hang fails instead of stalling CI.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2i_prep.parallel import Arena, OrderedPool, WorkerDied

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork, signals")


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def expired(*_: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _square(x: int) -> int:
    return x * x


def _no_setup() -> None:
    pass


def test_results_come_in_order_and_the_window_bounds_what_is_in_flight() -> None:
    pulled = []

    def tasks():
        for i in range(40):
            pulled.append(i)
            yield i

    with _deadline(30), OrderedPool(2, _no_setup, window=3) as pool:
        out = []
        for result in pool.map(_square, tasks()):
            assert len(pulled) - len(out) <= 3  # never more than the window in flight
            out.append(result)
    assert out == [i * i for i in range(40)]


def _slow_first(x: int) -> int:
    if x == 0:
        time.sleep(0.3)  # later tasks finish first on the other worker
    return x


def test_order_holds_when_later_tasks_finish_first() -> None:
    with _deadline(30), OrderedPool(2, _no_setup, window=6) as pool:
        assert list(pool.map(_slow_first, range(12))) == list(range(12))


def _die_at_five(x: int) -> int:
    if x == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.01)
    return x


def test_a_worker_killed_mid_task_is_reported_naming_its_task() -> None:
    seen = []
    with _deadline(30), OrderedPool(2, _no_setup, window=4) as pool, \
            pytest.raises(WorkerDied) as info:
        seen.extend(pool.map(_die_at_five, range(20)))
    assert info.value.task == 5
    assert seen == list(range(5))  # everything before it came back, in order


class _Boom(Exception):
    pass


def _raise_at_three(x: int) -> int:
    if x == 3:
        raise _Boom(f"task {x}")
    return x


def test_a_task_error_is_raised_in_order_and_the_pool_stays_usable() -> None:
    with _deadline(30), OrderedPool(2, _no_setup, window=4) as pool:
        seen = []
        with pytest.raises(_Boom, match="task 3"):
            seen.extend(pool.map(_raise_at_three, range(10)))
        assert seen == [0, 1, 2]
        assert list(pool.map(_square, range(5))) == [0, 1, 4, 9, 16]


def _sleep_long(x: int) -> int:
    time.sleep(60)
    return x


def test_kill_on_close_leaves_no_worker_behind() -> None:
    with _deadline(20):
        pool = OrderedPool(2, _no_setup, window=4)
        pids = [p.pid for p in pool._procs]
        assert all(_alive(pid) for pid in pids)
        results = pool.map(_sleep_long, range(8))
        job = pool.submit(_sleep_long, 99)
        pool.poll()
        t0 = time.monotonic()
        pool.close(kill=True)  # workers are busy for a minute: killed, not awaited
        assert time.monotonic() - t0 < 5
        assert not any(_alive(pid) for pid in pids)
        assert not job.done
        del results


def _big(n: int) -> bytes:
    return b"x" * n


def test_a_worker_dying_while_it_sends_is_an_error_not_a_hang() -> None:
    """A reply much larger than the pipe's buffer: the worker blocks in the middle of sending,
    is killed there, and the parent reads half a message, then EOF."""
    with _deadline(30), OrderedPool(1, _no_setup) as pool:
        job = pool.submit(_big, 64 * 2**20)
        time.sleep(1.0)  # the worker has pickled its reply and blocks writing it
        os.kill(pool._procs[0].pid, signal.SIGKILL)
        pool.wait(job)  # returns: the job is done, with an error
        with pytest.raises(WorkerDied) as info:
            job.result()
        assert info.value.task == 64 * 2**20


def _job_sleep(x: float) -> float:
    time.sleep(x)
    return x


def test_jobs_finish_in_any_order_beside_ordered_tasks() -> None:
    with _deadline(30), OrderedPool(2, _no_setup, window=4) as pool:
        slow, fast = pool.submit(_job_sleep, 0.5), pool.submit(_job_sleep, 0.0)
        assert list(pool.map(_square, range(10))) == [i * i for i in range(10)]
        pool.wait(fast)
        assert fast.result() == 0.0
        pool.wait(slow)
        assert slow.result() == 0.5


def test_jobs_run_in_process_without_workers() -> None:
    pool = OrderedPool(0, _no_setup)
    job = pool.submit(_square, 7)
    assert job.done and job.result() == 49
    bad = pool.submit(_raise_at_three, 3)
    with pytest.raises(_Boom):
        bad.result()


# --- the shared arena ------------------------------------------------------------------------


class _Blocked:
    """A task result with a bulk ``block`` (what the pool moves through the arena)."""

    def __init__(self, i: int, block: np.ndarray) -> None:
        self.i, self.block = i, block


def _block_of(i: int) -> _Blocked:
    # Sizes around the region size (64 bytes): some go through the arena, some in band.
    n = (i * 7) % 11
    return _Blocked(i, np.arange(n * 4, dtype=np.float32).reshape(n, 4) + i if i % 3
                    else np.full((n, 2), i, np.int16))


def test_blocks_come_back_exact_through_the_arena_or_in_band() -> None:
    with _deadline(30), OrderedPool(2, _no_setup, window=3, block_bytes=64,
                                    arena_bytes=64 * 5) as pool:
        assert pool.arena is not None  # fork on Linux
        seen, through_arena = [], 0
        for result in pool.map(_block_of, range(60)):
            expected = _block_of(result.i).block
            time.sleep(0.001)  # let the workers run ahead while this block is being read
            np.testing.assert_array_equal(result.block, expected)
            assert result.block.dtype == expected.dtype
            through_arena += result.region is not None
            assert (result.region is not None) == (pool.arena.offset_of(result.block) is not None)
            seen.append(result.i)
    assert seen == list(range(60))
    assert 0 < through_arena < 60


def _pattern(i: int) -> _Blocked:
    """A block that says which task wrote it; every 7th is too big for its region."""
    n = 40 if i % 7 == 3 else 1 + i % 4
    return _Blocked(i, np.full((n, 4), i, np.int32))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=30, max_size=30), st.integers(2, 12))
def test_retained_blocks_are_never_overwritten(holds: list[int], regions: int) -> None:
    """The consumer keeps some blocks for a while (like rows of a shard a worker still
    writes) and lets them go out of order; no kept block is ever touched meanwhile, while the
    workers keep writing new results into the same small ring (or in band when it is full)."""
    kept: list[tuple[int, _Blocked, int]] = []  # (release after result #, result, task)
    with _deadline(60), OrderedPool(2, _no_setup, window=3, block_bytes=64,
                                    arena_bytes=64 * regions) as pool:
        for k, result in enumerate(pool.map(_pattern, range(30))):
            assert (result.block == result.i).all()
            if result.region is not None and holds[k]:
                pool.retain(result.region)
                kept.append((k + holds[k], result, result.i))
            for entry in [e for e in kept if e[0] <= k]:  # out of order: by hold time
                _, res, i = entry
                assert (res.block == i).all(), f"block of task {i} was overwritten"
                pool.release(res.region)
                kept.remove(entry)
        for _, res, i in kept:
            assert (res.block == i).all()
            pool.release(res.region)
        assert not pool.arena.live


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 5)), min_size=1, max_size=60))
def test_arena_regions_never_overlap_while_referenced(steps: list[tuple[int, int]]) -> None:
    """Reserve regions of random sizes, release them in random order: live regions never share
    a byte, none wraps past the end, and a reservation fails only when the ring is full."""
    arena = Arena(100)
    live: list = []
    for size, drop in steps:
        region = arena.reserve(size)
        if region is None:
            assert arena.live  # an empty ring has room for anything that fits at all
        else:
            offset = region.start % arena.size
            assert offset + size <= arena.size
            spans = [(r.start % arena.size, r.start % arena.size + r.size) for r in live]
            assert all(end <= offset or offset + size <= start for start, end in spans)
            live.append(region)
        for _ in range(min(drop, len(live))):  # release the middle one: out of order
            arena.release(live.pop(len(live) // 2))
    for region in live:
        arena.release(region)
    assert not arena.live and arena.reserve(100) is not None


def test_spawned_workers_work_without_an_arena(monkeypatch: pytest.MonkeyPatch) -> None:
    """The start method off Linux: no inherited memory, so blocks come through the pipe."""
    import multiprocessing

    from s2i_prep import parallel

    monkeypatch.setattr(parallel, "_context", lambda: multiprocessing.get_context("spawn"))
    with _deadline(60), OrderedPool(2, _no_setup, window=3, block_bytes=64,
                                    arena_bytes=640) as pool:
        assert pool.arena is None
        results = list(pool.map(_block_of, range(12)))
        job = pool.submit(_square, 9)
        pool.wait(job)
    assert [r.i for r in results] == list(range(12))
    for r in results:
        np.testing.assert_array_equal(r.block, _block_of(r.i).block)
        assert r.region is None
    assert job.result() == 81


def _late_pattern(i: int) -> _Blocked:
    if i == 101:
        time.sleep(0.4)  # still running when its caller has gone
    return _Blocked(i, np.full((2, 4), i, np.int32))


def test_an_abandoned_task_never_writes_into_a_reused_region() -> None:
    """A caller stops reading while a task runs; the ring then wraps around to that task's
    region while the new results are kept. The late task must not land in any of them."""
    with _deadline(30), OrderedPool(2, _no_setup, window=2, block_bytes=64,
                                    arena_bytes=64 * 5) as pool:
        first = pool.map(_late_pattern, [100, 101])
        next(first)
        first.close()  # task 101 still running, its region reserved
        kept = []
        for result in pool.map(_late_pattern, range(8)):
            if result.region is not None:
                pool.retain(result.region)
            kept.append(result)
        time.sleep(0.6)
        pool.poll()  # task 101 has finished and written by now
        for result in kept:
            assert (result.block == result.i).all(), f"result {result.i} was overwritten"
