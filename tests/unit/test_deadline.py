"""`bounded`: a whole blocking call ends by its time, whatever the call is blocked in.

The timer is real (SIGALRM), so these tests take real time, but none depends on the machine's speed: a
timer never fires early, and each blocked call lasts far longer than the bound (`BLOCKED`), so the upper
limits (`CUT`) leave a busy machine tens of seconds while still telling a cut call from one left to run.
"""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from forwarder.deadline import Deadline, OutOfTime, bounded

BLOCKED = 120.0  # how long the blocked calls would last if nothing cut them
CUT = 30.0  # a cut call ends well before this, however busy the machine


def test_a_blocking_read_is_interrupted_when_the_time_is_up():
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(BLOCKED)  # a per-read timeout far beyond the bound
        started = time.monotonic()
        with pytest.raises(OutOfTime), bounded(0.2):
            left.recv(1)
        assert 0.15 < time.monotonic() - started < CUT  # not before its time (a little slack for clock rates)


def test_a_sleep_that_outlives_the_bound_is_cut():
    started = time.monotonic()
    with pytest.raises(OutOfTime), bounded(0.1):
        time.sleep(BLOCKED)
    assert time.monotonic() - started < CUT


def test_nothing_happens_to_a_call_that_ends_in_time():
    with bounded(CUT):
        time.sleep(0.01)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # disarmed: no late OutOfTime can come


@pytest.mark.parametrize("seconds", [0, -1.5])
def test_no_time_left_refuses_to_start(seconds):
    with pytest.raises(OutOfTime), bounded(seconds):
        pytest.fail("the block must not run")


def test_an_inner_bound_runs_under_the_outer_one_which_keeps_counting():
    started = time.monotonic()
    with pytest.raises(OutOfTime), bounded(0.2):
        with bounded(BLOCKED):
            time.sleep(0.01)
        time.sleep(BLOCKED)
    assert time.monotonic() - started < CUT
    started = time.monotonic()
    with pytest.raises(OutOfTime), bounded(0.1), bounded(BLOCKED):
        time.sleep(BLOCKED)
    assert time.monotonic() - started < CUT


def test_out_of_time_is_not_an_exception_libraries_would_swallow():
    assert not issubclass(OutOfTime, Exception)


def test_off_the_main_thread_the_block_runs_unbounded_but_is_refused_without_time():
    results: list[object] = []

    def work() -> None:
        with bounded(0.01):
            time.sleep(0.05)  # no signal can reach this thread: the call's own timeouts must bound it
        results.append("ran")
        try:
            with bounded(0):
                results.append("not refused")
        except OutOfTime:
            results.append("refused")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(CUT)
    assert results == ["ran", "refused"]


def test_a_foreign_alarm_handler_is_left_alone():
    fired: list[int] = []

    def foreign(*_: object) -> None:  # e.g. a test runner's own timeout
        fired.append(1)

    previous = signal.signal(signal.SIGALRM, foreign)
    try:
        with bounded(0.01):
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGALRM) is foreign
        assert fired == []
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_a_deadline_counts_down():
    now = [1000.0]
    deadline = Deadline.after(10, clock=lambda: now[0])
    assert (deadline.left(), deadline.earlier(3).left()) == (10, 7)
    now[0] += 4
    assert (deadline.left(), deadline.earlier(3).left()) == (6, 3)
    now[0] += 7
    assert deadline.left() == -1


def test_a_deadline_runs_on_the_monotonic_clock_by_default():
    assert 0 < Deadline.after(CUT).left() <= CUT
