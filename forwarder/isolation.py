"""Isolating the events Facebook rejects: one bad event never costs its neighbours, and the search stays
linear whatever Facebook names or fails to name.

On the Conversions API one invalid event rejects the whole request; on the Offline Conversions API a
rejected request processes nothing. Either way resending a part is safe (nothing of a rejected request was
stored, and Conversions API events carry their event_id), so a rejected request is split and its parts sent
again until every valid event is delivered and each rejected event has been rejected alone: an event is
never taken for bad until Facebook refused it on its own.

A rejected part is halved. When Meta's error names an event (`data[3]`, or `blame_field_specs`), that
event is first sent alone (to confirm it) and the rest halved; once a named event turns out good, its
part's descendants ignore what Meta names. So k bad events among n cost at most 2·k·(⌈log2 n⌉ + 1) + 2
requests in all, the first included, and the requests carry at most n·(⌈log2 n⌉ + 1) events: halving
bounds both, and each named event costs one request, at most 2k + 1 of them wrong. Parts are searched
depth first, a named event before its neighbours, so an invocation that runs out of time has settled what
it could (the rest stays NOT_ATTEMPTED for its source to retry).

An error about the request as a whole (the event set or dataset missing or not ours, a retired version,
the upload tag) fails every part alike: it is not split (docs: "Isolating rejected events").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forwarder.graph_client import ErrorClass
from forwarder.outcome import RequestOutcome

# Meta's errors about the request, not an event in it (graph-api/guides/error-handling; offline-conversions):
# code 100 subcode 33 "object does not exist, cannot be loaded due to missing permissions, or does not support
# this operation"; 2635 "deprecated version"; the Offline Conversions API's own `upload_tag`; and the request's
# credentials, which Meta refuses with code 100 too ("Invalid appsecret_proof provided in the API argument",
# graph-api/securing-requests).
_WHOLE_REQUEST_CODES = frozenset({2635})
_WHOLE_REQUEST_SUBCODES = frozenset({33})
_WHOLE_REQUEST_WORDS = ("upload_tag", "appsecret_proof", "access_token")
# After one of these, every later request of the same token or dataset fails the same way.
STOPPING = frozenset({ErrorClass.TOKEN.value, ErrorClass.PERMISSION.value})

Send = Callable[[list[dict[str, Any]]], RequestOutcome]


@dataclass(slots=True)
class Isolated:
    """The final outcome of every part a rejected request ended in, and the extra requests spent."""

    outcomes: list[RequestOutcome] = field(default_factory=list)
    extra_requests: int = 0
    stopped: RequestOutcome | None = None  # a token or permission error: the caller stops sending


def splittable(outcome: RequestOutcome) -> bool:
    """Facebook rejected events of this request, not the request itself: splitting can save the rest."""
    if outcome.status != ErrorClass.INVALID or outcome.code is None:  # no Graph error: not Meta's verdict
        return False
    if outcome.code in _WHOLE_REQUEST_CODES or outcome.subcode in _WHOLE_REQUEST_SUBCODES:
        return False
    return not any(word in (outcome.error or "") for word in _WHOLE_REQUEST_WORDS)


def isolate(send: Send, events: list[dict[str, Any]], rejection: RequestOutcome) -> Isolated:
    """Settle `events`, which Facebook rejected as `rejection` (splittable); `send` posts one part."""
    result = Isolated()
    pending: list[tuple[list[dict[str, Any]], bool]] = []  # parts to send, the next one last
    _split(send, events, rejection, True, result, pending)
    while pending and result.stopped is None:
        part, trust = pending.pop()
        outcome = send(part)
        if outcome.attempts == 0 and outcome.status not in STOPPING:  # no time left for an attempt
            pending.append((part, trust))
            break
        result.extra_requests += outcome.attempts > 0
        if splittable(outcome):
            _split(send, part, outcome, trust, result, pending)
            continue
        result.outcomes.append(outcome)
        if outcome.status in STOPPING:
            result.stopped = outcome
    for part, _ in pending:  # not sent: no time left, or sending stopped
        result.outcomes.append(RequestOutcome(events=len(part), payload=part))
    return result


def _split(
    send: Send,
    part: list[dict[str, Any]],
    rejection: RequestOutcome,
    trust: bool,
    result: Isolated,
    pending: list[tuple[list[dict[str, Any]], bool]],
) -> None:
    """A rejected part: confirmed when alone; else the event Meta names (when trusted) sent alone first,
    and the rest halved onto `pending`, the first half to be sent first."""
    if len(part) == 1:
        rejection.isolated = True
        result.outcomes.append(rejection)
        return
    named = rejection.index
    if trust and named is not None and 0 <= named < len(part):
        probe = send([part[named]])
        if probe.attempts == 0 and probe.status not in STOPPING:
            pending.append((part, trust))  # no time left: the loop ends and leaves it unsent
            return
        result.extra_requests += probe.attempts > 0
        part = part[:named] + part[named + 1 :]
        if splittable(probe):
            probe.isolated = True  # Meta named it, and refused it alone
        else:
            trust = False  # Meta named a good event: its names are not followed below this part
        result.outcomes.append(probe)
        if probe.status in STOPPING:
            result.stopped = probe
            pending.append((part, trust))
            return
    middle = (len(part) + 1) // 2
    for half in (part[middle:], part[:middle]):
        if half:
            pending.append((half, trust))
