"""Deadlines: every wait of an invocation bounded by the time it has left, in total.

Socket timeouts (requests, botocore) bound each read, not a call: a server that sends a byte every
0.8 s, or answers slowly on every SDK retry, holds a call for as long as it likes. `bounded(seconds)`
bounds a whole call: an interval timer (SIGALRM) raises `OutOfTime` inside whatever the call is
blocked in, so the socket is abandoned and the caller turns it into its own timeout error. Lambda's
Python runtime runs the handler on the main thread, where signals are delivered; elsewhere (another
thread, a platform without SIGALRM, a foreign SIGALRM handler such as a test runner's) the per-read
timeouts stay the only bound, and `bounded` only refuses to start once the time is up.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType


class OutOfTime(BaseException):
    """A bounded call ran out of time. A BaseException, so that the retry loops of urllib3, requests and
    botocore, which catch Exception, let it through instead of retrying."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """An instant on a monotonic clock (`time.monotonic` unless a test gives its own)."""

    at: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.at - self.clock()

    def earlier(self, seconds: float) -> Deadline:
        return Deadline(self.at - seconds, self.clock)

    def later(self, seconds: float) -> Deadline:
        return Deadline(self.at + seconds, self.clock)


_armed = 0  # 1 while a bounded block runs; a stale timer signal outside one is ignored


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _armed:
        raise OutOfTime


def _can_interrupt() -> bool:
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGALRM)
    if current is _on_alarm:
        return True
    if current in (signal.SIG_DFL, signal.SIG_IGN, None):
        signal.signal(signal.SIGALRM, _on_alarm)
        return True
    return False  # someone else's timer: leave it alone


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Run the block for at most `seconds` (wall time); raises OutOfTime when they are up or already gone.

    Inside another bounded block, only the outer bound applies (one timer, one owner: nothing to re-arm).
    """
    global _armed
    if seconds <= 0:
        raise OutOfTime
    if _armed or not _can_interrupt():
        yield
        return
    _armed = 1
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)  # inside the try: a signal right after it is cleaned up too
        yield
    finally:
        _armed = 0
        signal.setitimer(signal.ITIMER_REAL, 0)
