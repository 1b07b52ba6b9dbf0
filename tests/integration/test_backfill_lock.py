"""One backfill run at a time per input: the S3 lock (S3's conditional writes, against the moto server) and the
stack's function answering `locked` while another execution sends the same file.

The lease is read on an injected clock: no test waits for one to lapse.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forwarder.backfill import lock
from forwarder.backfill.files import Location
from localdev.graph_stub import GraphStub
from tests.integration.test_backfill import acknowledged, forwarded_orders, write_csv
from tests.integration.test_backfill_function import BUCKET, KEY, handler, keys, object_created, s3

__all__ = ["handler", "s3"]  # the fixtures this module borrows

LOCK = Location(f"{KEY}.default.lock", BUCKET)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_second_run_is_refused_while_the_first_holds_the_lock_and_its_lease_lasts(s3: Any) -> None:
    clock = Clock()
    first = lock.acquire(LOCK, "sales.csv.gz", clock)
    clock.now += lock.LEASE_SECONDS - 1
    with pytest.raises(lock.Locked, match="another backfill run is sending it now") as refused:
        lock.acquire(LOCK, "sales.csv.gz", clock)
    assert "until" in str(refused.value)
    first.release()
    assert keys(s3) == []
    lock.acquire(LOCK, "sales.csv.gz", clock).release()


def test_a_lock_whose_lease_lapsed_is_taken_over_and_its_old_holder_writes_nothing_more(s3: Any) -> None:
    """A run that died (a crashed invocation) leaves its lock; once its lease lapses the next run takes it, and
    should the old run still be alive it learns so before writing its checkpoint."""
    clock = Clock()
    dead = lock.acquire(LOCK, "sales.csv.gz", clock)
    clock.now += lock.LEASE_SECONDS + 1
    alive = lock.acquire(LOCK, "sales.csv.gz", clock)
    with pytest.raises(lock.LockLost):
        dead.renew()
    dead.release()  # leaves the lock of the run that holds it now
    assert keys(s3) == [LOCK.path]
    with pytest.raises(lock.Locked):
        lock.acquire(LOCK, "sales.csv.gz", clock)
    alive.release()
    assert keys(s3) == []


@pytest.mark.parametrize(("sending_seconds", "lasts_past"), [(0.0, lock.LEASE_SECONDS), (3000.0, 3000.0)])
def test_a_renewed_lease_covers_the_gathering_being_sent(s3: Any, sending_seconds: float, lasts_past: float) -> None:
    clock = Clock()
    held = lock.acquire(LOCK, "sales.csv.gz", clock)
    clock.now += lock.LEASE_SECONDS / 2 + 1  # half the lease gone: renewed
    held.renew(sending_seconds)
    clock.now += lasts_past - 1
    with pytest.raises(lock.Locked):
        lock.acquire(LOCK, "sales.csv.gz", clock)
    held.release()


def test_the_function_answers_locked_while_another_execution_sends_the_file_then_goes_on(
    tmp_path: Path, s3: Any, graph: GraphStub, handler: Callable[..., Any]
) -> None:
    """S3 may deliver one put's event twice, starting two executions: the second sends nothing and waits (the state
    machine's WaitForOtherRun), answering booleans the state machine's Choice compares."""
    local = tmp_path / "sales.csv.gz"
    expected = write_csv(local, 300)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=local.read_bytes())
    other = lock.acquire(LOCK, KEY)

    waiting = handler(object_created(KEY))

    assert (waiting["finished"], waiting["failed"], waiting["locked"]) == (False, False, True)
    assert graph.received == []
    other.release()
    answer = handler(object_created(KEY))
    assert (answer["finished"], answer["failed"], answer["locked"]) == (True, False, False)
    assert acknowledged(graph) == forwarded_orders(expected)
    assert f"{KEY}.default.lock" not in keys(s3)
