"""A gathering: rows mapped until they hold about one Graph request of events, handed to the delivery core
(forwarder/delivery.py) in one call, and each row's status read from what became of its unit.

Each row is one unit of the core (`Unit(id=row number)`): the core de-duplicates, sends in requests of the
API's size, isolates and parks what Facebook rejects, and settles units, exactly as for a webhook batch.
A row is then `forwarded`, `parked` (some of its events were rejected and parked for replay), `failed` (an
event neither delivered nor parked: Facebook or AWS failed, or time ran out) or `skipped` before sending
(mapping's reason, or why it could not be read).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from forwarder.backfill.readers import Row
from forwarder.backfill.report import FAILED, FORWARDED, PARKED, SKIPPED, Tally, line
from forwarder.batch import BatchTooLarge
from forwarder.delivery import duplicates_among
from forwarder.outcome import DELIVERED, Delivery, Outgoing, Unit
from forwarder.settings import Settings
from forwarder.webhook import prepare

NO_EVENTS = "no_events"  # a batch without events
INTERRUPTED = "interrupted_while_sending"  # cut off mid-send on an API that would count a resend twice
NOT_SENT = "not sent: no time left"


@dataclass(slots=True)
class Pending:
    """One row of a gathering: its unit and counts, or its report line when that is known before sending."""

    number: int
    unit: Unit | None = None  # None: nothing of it is sent
    events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    decided: dict[str, Any] | None = None  # its report line, decided before sending
    held: bool = False  # `decided` is the line an earlier run wrote: counted then, not now


@dataclass
class Gathering:
    rows: list[Pending] = field(default_factory=list)
    items: list[Outgoing] = field(default_factory=list)

    def add(self, row: Row, settings: Settings, now: float, tally: Tally, withheld: str | None = None) -> None:
        """Map `row` (with `row.settings` when it has its own) and add it; its events go where `settings` says.
        `withheld`: the row is not to be sent; had it events to send, it is reported failed with this reason."""
        pending = Pending(row.number)
        self.rows.append(pending)
        if row.batch is None:
            pending.decided = line(row.number, SKIPPED, row.skip, problem=row.problem)
            return
        try:
            events, outcome = prepare(row.batch, row.settings or settings, now)
        except BatchTooLarge as error:
            pending.decided = line(row.number, SKIPPED, "batch_too_large", problem=str(error))
            return
        tally.events["received"] += outcome.received
        # Reasons as plain strings, whatever type mapping counts them by: they are JSON keys.
        pending.skipped = Counter({str(reason): count for reason, count in outcome.skipped.items()})
        tally.skipped_events.update(pending.skipped)
        if not events:
            reason = pending.skipped.most_common(1)[0][0] if pending.skipped else NO_EVENTS
            pending.decided = line(row.number, SKIPPED, reason)
            return
        if withheld is not None:
            pending.decided = line(row.number, FAILED, withheld)
            return
        pending.unit = Unit(str(row.number), row.batch.batch_id, row.batch.source_request_id)
        pending.events = len(events)
        self.items += [
            Outgoing(destination, event, pending.unit)
            for event in events
            for destination in settings.destinations(event["event_name"], row.batch.development)
        ]

    def add_decided(self, number: int, entry: dict[str, Any], held: bool = False) -> None:
        self.rows.append(Pending(number, decided=entry, held=held))

    @property
    def events(self) -> int:
        return len(self.items)


def _reasons(delivery: Delivery, items: list[Outgoing]) -> tuple[dict[str, str], dict[str, str]]:
    """Per unit, the first reason one of its events was parked, and the first one was not delivered."""
    unit_of = {id(item.event): item.unit.id for item in items}
    parked: dict[str, str] = {}
    failed: dict[str, str] = {}
    for request in delivery.requests:
        if request.status == DELIVERED and request.parking_reason is None:
            continue
        if request.parked:
            reason, into = request.parking_reason or f"not delivered ({request.status})", parked
        else:
            reason, into = f"{request.status}: {request.error or NOT_SENT}", failed
        for event in request.payload:
            if (unit := unit_of.get(id(event))) is not None:
                into.setdefault(unit, reason)
    return parked, failed


def row_lines(gathering: Gathering, delivery: Delivery | None, tally: Tally) -> list[dict[str, Any]]:
    """Each row's report line, in order (`delivery` None: a dry run, where every row with events would be
    forwarded), counted in `tally` (but lines an earlier run wrote)."""
    parked, failed = _reasons(delivery, gathering.items) if delivery is not None else ({}, {})
    lines = []
    for pending in gathering.rows:
        entry = pending.decided
        if entry is None:
            assert pending.unit is not None
            unit = pending.unit.id
            skipped = dict(pending.skipped) or None
            if delivery is not None and unit in delivery.resend:
                entry = line(pending.number, FAILED, failed.get(unit, delivery.resend[unit]), skipped=skipped)
            elif delivery is not None and unit in delivery.parked_units:
                entry = line(pending.number, PARKED, parked.get(unit), skipped=skipped)
            else:
                entry = line(pending.number, FORWARDED, None, skipped=skipped)
        if not pending.held:
            tally.count(entry)
        lines.append(entry)
    if delivery is None:
        duplicates = duplicates_among(gathering.items)
        tally.events["forwarded"] += gathering.events - duplicates
        tally.events["duplicates"] += duplicates
    else:
        tally.events["forwarded"] += delivery.forwarded
        tally.events["parked"] += delivery.parked
        tally.events["duplicates"] += delivery.duplicates
        tally.requests += len(delivery.requests)
        tally.isolation_requests += delivery.isolation_requests
    return lines
