"""Stop signals as exceptions, so a long command stops the way Ctrl-C stops it.

A cluster scheduler ends a job with SIGTERM (then SIGKILL), a closed terminal sends SIGHUP, a user
presses Ctrl-C (SIGINT). Inside :func:`stop_signals` each of them raises :class:`Stopped` (a
``KeyboardInterrupt``) in the main thread, so the command's cleanup runs: commit what is done,
stop the workers, say what was kept. Later signals during that cleanup are ignored (a second
Ctrl-C must not tear the shard being committed; SIGKILL still ends everything at once). A signal
that was ignored when the command started (``nohup`` ignores SIGHUP) stays ignored.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["STOP_SIGNALS", "Stopped", "exit_status", "stop_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """Raised by :func:`stop_signals` when ``signum`` arrives."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def exit_status(signum: int) -> int:
    """The shell's convention for a command ended by a signal: 128 + the signal number."""
    return 128 + int(signum)


@contextmanager
def stop_signals() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`Stopped` while the block runs (main thread
    only; elsewhere a no-op). The previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise Stopped(signum)

    previous = {}
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if current is signal.SIG_IGN:
            continue
        previous[sig] = current
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
