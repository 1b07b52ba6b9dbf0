"""The delivery core: every way events reach Meta (the webhook, the buffered sender, replay, the backfill)
hands its rendered events here, each with its destination and the *unit* its source retries as a whole
(a webhook batch, an SQS message, a parked set, a file's row).

One loop: group by destination; de-duplicate by Meta's key (event_name + event_id, forwarder/settled.py's
`event_key`); give each destination a share of the time; send in requests of the API's size (forwarder/
posting.py); stop a destination after an error about the request as a whole and a connection after a token
error; isolate rejected events (forwarder/isolation.py), continuing work a previous attempt left
(forwarder/settled.py); redact what Facebook says (forwarder/redaction.py); park what must be
(forwarder/parking.py); and settle each unit:

- *settled*: each of its events delivered, parked, or a duplicate of one that was;
- *resend*: an event neither delivered nor parked (a transient error, no time left, a token or permission
  error, parking failed): the source has the unit come again. Rejected events of such a unit are parked now
  only when a table of settled events remembers them (so the retry leaves them out and they are parked
  once); otherwise they are found again on the retry.

A unit part of which Facebook took is resent whole only where that cannot count an event twice (the
API de-duplicates, and the source retries soon: `resend_partial`); otherwise its undelivered rest is parked
and the unit is settled.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forwarder.deadline import Deadline
from forwarder.destination import Destination
from forwarder.graph_client import ErrorClass
from forwarder.isolation import isolate, splittable
from forwarder.outcome import DELIVERED, PARKING_FAILED, Delivery, Outgoing, RequestOutcome
from forwarder.parking import Parked, ParkingFailed, Reason, park
from forwarder.posting import MIN_ATTEMPT_SECONDS, Poster
from forwarder.redaction import Redactor
from forwarder.settled import SettledEvents, Settlement, event_key
from forwarder.telemetry import logger

# A destination's least share of the invocation, when there is that much: one attempt and its answer.
MIN_SHARE_SECONDS = MIN_ATTEMPT_SECONDS + 1.0


@dataclass(slots=True)
class _Group:
    """One destination's events, each sent event with the items it stands for (itself and its duplicates)."""

    destination: Destination
    events: list[dict[str, Any]] = field(default_factory=list)
    items: dict[int, list[Outgoing]] = field(default_factory=dict)  # id(event) -> items
    units: set[str] = field(default_factory=set)  # every unit its events belong to
    requests: list[RequestOutcome] = field(default_factory=list)
    earlier: dict[int, Settlement] = field(default_factory=dict)  # id(event) -> settled by an earlier attempt


@dataclass
class _Run:
    poster: Poster
    personal: tuple[str, ...]  # raw values the source knows, for every request's redactor
    settled: SettledEvents | None
    result: Delivery
    park_by: Deadline
    stopped_connections: dict[str, RequestOutcome] = field(default_factory=dict)  # by a token error
    table_readable: bool = True  # the settled-events table answered this invocation's lookups

    @property
    def remembers(self) -> bool:
        """Events parked now can be left out of a retry: the settled-events table is there and answers."""
        return self.settled is not None and self.table_readable

    def post(self, destination: Destination, events: list[dict[str, Any]], deadline: Deadline) -> RequestOutcome:
        """One request, its redactor knowing its own events' values (bounded by the request's size)."""
        return self.poster.post(destination, events, Redactor.for_events(events, self.personal), deadline)


def deliver(
    items: Sequence[Outgoing],
    poster: Poster,
    send_by: Deadline,
    park_by: Deadline,
    parking_queue: str,
    *,
    personal: Iterable[str] = (),
    resend_partial: bool = True,
    keep_undelivered: bool = False,
    final: Collection[str] = (),
    settled: SettledEvents | None = None,
) -> Delivery:
    """Send `items`, every request by `send_by` and every parking write by `park_by`; `personal` holds raw
    values the source knows for redaction (the webhook: the batch's user). `keep_undelivered`: a unit
    nothing of which was delivered is left to its source as it is (replay keeps such a set parked) instead
    of having its rejected events parked. `final` names units their source will not send again (an SQS
    message on its last receive): what of them is not delivered is parked. Never raises for a failure of
    Facebook or AWS: each is in the returned Delivery."""
    result = Delivery()
    groups = _groups(items, result)
    run = _Run(poster, tuple(personal), settled, result, park_by)
    waiting = sum(len(group.events) for group in groups)
    for group in groups:
        # Each destination gets a share of the time left by its events, so one that keeps failing cannot
        # starve the others; time a group does not use passes to the next.
        left = send_by.left()
        share = Deadline.after(min(left, max(left * len(group.events) / waiting, MIN_SHARE_SECONDS)), send_by.clock)
        waiting -= len(group.events)
        _send_group(run, group, share)
        result.requests += group.requests
    result.retries = poster.retries
    _settle(run, groups, resend_partial, keep_undelivered, frozenset(final), parking_queue)
    return result


def duplicates_among(items: Sequence[Outgoing]) -> int:
    """How many of `items` `deliver` would leave out as copies of another (the same destination, event_name and
    event_id, on an API that de-duplicates): what a dry run reports without sending."""
    result = Delivery()
    _groups(items, result)
    return result.duplicates


def _groups(items: Sequence[Outgoing], result: Delivery) -> list[_Group]:
    groups: dict[Destination, _Group] = {}
    firsts: dict[tuple[Destination, str, str], dict[str, Any]] = {}
    for item in items:
        group = groups.get(item.destination)
        if group is None:
            group = groups[item.destination] = _Group(item.destination)
        event = item.event
        name, event_id = event.get("event_name"), event.get("event_id")
        if item.destination.profile.deduplicates and isinstance(name, str) and isinstance(event_id, str):
            # Meta counts an event_name + event_id once: send it once, and settle its copies with it.
            first = firsts.setdefault((item.destination, name, event_id), event)
            if first is not event:
                group.items[id(first)].append(item)
                result.duplicates += 1
                continue
        group.events.append(event)
        group.items[id(event)] = [item]
        group.units.add(item.unit.id)
    return list(groups.values())


def _units(group: _Group, request: RequestOutcome) -> set[str]:
    """The units a request's events belong to: the group's one unit, the usual case, without a look at each."""
    if len(group.units) == 1:
        return group.units
    return {item.unit.id for event in request.payload for item in group.items[id(event)]}


def _send_group(run: _Run, group: _Group, share: Deadline) -> None:
    destination = group.destination
    size = destination.profile.max_events_per_request
    permission = False  # no permission on this dataset: every later request fails the same way
    for start in range(0, len(group.events), size):
        chunk = group.events[start : start + size]
        if permission or destination.connection in run.stopped_connections:  # the token is refused
            group.requests.append(RequestOutcome(events=len(chunk), payload=chunk))  # NOT_ATTEMPTED: resent
            continue
        outcome = run.post(destination, chunk, share)
        outcomes = _isolate(run, group, chunk, outcome, share) if splittable(outcome) else [outcome]
        group.requests += outcomes
        for outcome in outcomes:
            if outcome.status == ErrorClass.TOKEN:
                run.stopped_connections[destination.connection] = outcome
            permission |= outcome.status == ErrorClass.PERMISSION


def _isolate(
    run: _Run, group: _Group, chunk: list[dict[str, Any]], rejection: RequestOutcome, share: Deadline
) -> list[RequestOutcome]:
    """A rejected chunk's outcomes: what an earlier attempt settled is left out (in `group.earlier`), and the
    rest isolated (forwarder/isolation.py)."""
    destination = group.destination

    def send(part: list[dict[str, Any]]) -> RequestOutcome:
        outcome = run.post(destination, part, share)
        outcome.from_isolation = True
        return outcome

    rest = chunk
    known = run.settled.lookup((event_key(destination, e) for e in chunk), share) if run.settled else {}
    if known is None:
        run.table_readable = False  # no early parking on its strength: a retry would find nothing
    elif known:
        for event in chunk:
            if (settlement := known.get(event_key(destination, event))) is not None:
                group.earlier[id(event)] = settlement
        rest = [event for event in chunk if id(event) not in group.earlier]
        if not rest:
            return []
        # Without the events already settled, what is left may all be good: sent again as it is first.
        rejection = send(rest)
        run.result.isolation_requests += rejection.attempts > 0
        if not splittable(rejection):
            return [rejection]
    isolated = isolate(send, rest, rejection)
    run.result.isolation_requests += isolated.extra_requests
    return isolated.outcomes


def _settle(
    run: _Run,
    groups: list[_Group],
    resend_partial: bool,
    keep_undelivered: bool,
    final: frozenset[str],
    parking_queue: str,
) -> None:
    """Decide each unit, park what must be, and remember what isolation settled."""
    result = run.result
    unsettled: dict[str, str] = {}  # unit id -> status
    delivered_units: set[str] = set()
    counting_twice: set[str] = set()  # units part of which went to an API that does not de-duplicate
    rejected: dict[str, str] = {}  # with keep_undelivered: unit id -> the status of a rejection in it
    for group in groups:
        for event_id, settlement in group.earlier.items():
            result.delivered_earlier += settlement is Settlement.DELIVERED
            result.parked_earlier += settlement is Settlement.PARKED
            for item in group.items[event_id]:
                if settlement is Settlement.DELIVERED:
                    delivered_units.add(item.unit.id)
        for request in group.requests:
            units = _units(group, request)
            if request.status == DELIVERED:
                delivered_units |= units
                if not group.destination.profile.deduplicates:
                    counting_twice |= units
            if request.parking_reason is None and request.status != DELIVERED:
                for unit in units:
                    unsettled.setdefault(unit, request.status)
            elif keep_undelivered and request.status != DELIVERED:
                for unit in units:
                    rejected.setdefault(unit, request.status)
    for unit, status in rejected.items():
        if unit not in delivered_units:
            unsettled.setdefault(unit, status)
    parked_units: set[str] = set()
    for unit, status in unsettled.items():
        if unit in final or (unit in delivered_units and (unit in counting_twice or not resend_partial)):
            parked_units.add(unit)  # its rest is parked: it is not sent again, or would count its part twice
        else:
            result.resend[unit] = status
    _park(run, groups, parked_units, parking_queue)
    for group in groups:
        counts = result.by_destination.setdefault(group.destination, Counter())
        counts["forwarded"] += sum(request.forwarded for request in group.requests)
        counts["forwarded"] += sum(settlement is Settlement.DELIVERED for settlement in group.earlier.values())
        counts["failed"] += sum(
            1
            for request in group.requests
            if request.status != DELIVERED
            and not request.parked
            and not _units(group, request).isdisjoint(result.resend)
            for event in request.payload
            if any(item.unit.id in result.resend for item in group.items[id(event)])
        )


def _park(run: _Run, groups: list[_Group], rest_of: set[str], parking_queue: str) -> None:
    """Park, one set per destination and batch: the rejected events of settled units; the isolated ones of
    units to resend when settled events are remembered; and the undelivered rest of units in `rest_of`."""
    result = run.result
    remembered: dict[str, Settlement] = {}
    for group in groups:
        sets: dict[tuple[str | None, str | None], list[tuple[Parked, RequestOutcome]]] = defaultdict(list)
        for request in group.requests:
            reason = request.parking_reason
            if reason is None and request.status == DELIVERED and not request.from_isolation:
                continue  # delivered, nothing to park or remember: the usual request, not looked at event by event
            if reason is None and request.status != DELIVERED and _units(group, request).isdisjoint(rest_of):
                continue  # comes again with its units
            for event in request.payload:
                items = group.items[id(event)]
                resent = any(item.unit.id in result.resend for item in items)
                if reason is None:
                    if request.status == DELIVERED:
                        if request.from_isolation:
                            remembered[event_key(group.destination, event)] = Settlement.DELIVERED
                        continue
                    if not any(item.unit.id in rest_of for item in items) or resent:
                        continue
                    text = f"not delivered ({request.status}): {request.error or 'no time left'}"
                    parked = Parked(event, Reason(f"{text}; parked: its source will not send it again whole"))
                elif resent and not (request.isolated and run.remembers):
                    continue  # it comes again with its unit, and is parked (if it must be) then
                else:
                    parked = Parked(event, Reason(reason, request.code, request.subcode))
                first = items[0].unit
                sets[(first.batch_id, first.source_request_id)].append((parked, request))
        for (batch_id, source_request_id), entries in sets.items():
            try:
                parked_set = park(
                    parking_queue, group.destination, [p for p, _ in entries], run.park_by, batch_id, source_request_id
                )
            except ParkingFailed as problem:
                logger.warning("events not parked: their units come again", extra={"error": str(problem)})
                result.parking_failure = str(problem)
                for parked, _ in entries:
                    for item in group.items[id(parked.event)]:
                        result.resend.setdefault(item.unit.id, PARKING_FAILED)
                continue
            result.parked += len(entries)
            result.parked_sets.add(parked_set)
            result.by_destination.setdefault(group.destination, Counter())["parked"] += len(entries)
            for parked, request in entries:
                request.parked = True
                result.parked_units.update(item.unit.id for item in group.items[id(parked.event)])
                if request.isolated:
                    remembered[event_key(group.destination, parked.event)] = Settlement.PARKED
    if run.settled is not None and remembered:
        # What was parked first: a retry must leave it out; what was delivered only saves it requests.
        by_kind = {kind: {key: v for key, v in remembered.items() if v is kind} for kind in Settlement}
        if run.settled.record(by_kind[Settlement.PARKED], run.park_by) and by_kind[Settlement.DELIVERED]:
            run.settled.record(by_kind[Settlement.DELIVERED], run.park_by)
