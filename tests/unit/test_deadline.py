"""`bounded`: a whole blocking call ends by its time, whatever the call is blocked in."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from forwarder.deadline import Deadline, OutOfTime, bounded


def test_a_blocking_read_is_interrupted_when_the_time_is_up():
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(30)  # a per-read timeout far beyond the bound
        started = time.monotonic()
        with pytest.raises(OutOfTime), bounded(0.3):
            left.recv(1)
        assert 0.25 < time.monotonic() - started < 2


def test_a_sleep_that_outlives_the_bound_is_cut():
    started = time.monotonic()
    with pytest.raises(OutOfTime), bounded(0.2):
        time.sleep(10)
    assert time.monotonic() - started < 2


def test_nothing_happens_to_a_call_that_ends_in_time():
    with bounded(1.0):
        time.sleep(0.05)
    time.sleep(1.2)  # the timer was disarmed: no late OutOfTime
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.parametrize("seconds", [0, -1.5])
def test_no_time_left_refuses_to_start(seconds):
    with pytest.raises(OutOfTime), bounded(seconds):
        pytest.fail("the block must not run")


def test_an_inner_bound_runs_under_the_outer_one_which_keeps_counting():
    started = time.monotonic()
    with pytest.raises(OutOfTime), bounded(0.4):
        with bounded(5.0):
            time.sleep(0.1)
        time.sleep(10)
    assert time.monotonic() - started < 2
    with pytest.raises(OutOfTime), bounded(0.3), bounded(5.0):
        time.sleep(10)
    assert time.monotonic() - started < 3


def test_out_of_time_is_not_an_exception_libraries_would_swallow():
    assert not issubclass(OutOfTime, Exception)


def test_off_the_main_thread_the_block_runs_unbounded_but_is_refused_without_time():
    results: list[object] = []

    def work() -> None:
        with bounded(0.05):
            time.sleep(0.2)  # no signal can reach this thread: the call's own timeouts must bound it
        results.append("ran")
        try:
            with bounded(0):
                results.append("not refused")
        except OutOfTime:
            results.append("refused")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)
    assert results == ["ran", "refused"]


def test_a_foreign_alarm_handler_is_left_alone():
    fired: list[int] = []

    def foreign(*_: object) -> None:  # e.g. a test runner's own timeout
        fired.append(1)

    previous = signal.signal(signal.SIGALRM, foreign)
    try:
        with bounded(0.05):
            time.sleep(0.2)
        assert signal.getsignal(signal.SIGALRM) is foreign
        assert fired == []
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_a_deadline_counts_down():
    deadline = Deadline.after(10)
    assert 9 < deadline.left() <= 10
    assert 6 < deadline.earlier(3).left() <= 7
