"""Isolating the events Facebook rejects: one bad event never costs its neighbours.

On the Conversions API one invalid event rejects the whole request; on the Offline Conversions API a
rejected request processes nothing. Either way resending a part is safe (nothing of a rejected request was
stored, and Conversions API events carry their event_id), so a request Facebook rejects as invalid is
split and its parts sent again until every valid event is delivered and each rejected event stands alone.
When the error names the event (`data[3]`), that event is set aside at once and the rest resent; else the
part is halved. k bad events among n cost at most about 2·k·⌈log2 n⌉ extra requests, each started only
with time left for it (the sender's deadline); what is not settled in time stays NOT_ATTEMPTED.

An error about the request as a whole (the event set or dataset missing or not ours, a retired version,
the upload tag) fails every part alike: it is not split (README, "Isolating rejected events").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from forwarder.graph_client import ErrorClass
from forwarder.outcome import RequestOutcome
from forwarder.redaction import Redactor
from forwarder.sender import Sender

# Meta's errors about the request, not an event in it (graph-api/guides/error-handling; offline-conversions):
# code 100 subcode 33 "object does not exist, cannot be loaded due to missing permissions, or does not support
# this operation"; 2635 "deprecated version"; and the Offline Conversions API's own `upload_tag`.
_WHOLE_REQUEST_CODES = frozenset({2635})
_WHOLE_REQUEST_SUBCODES = frozenset({33})
_WHOLE_REQUEST_WORDS = ("upload_tag",)


@dataclass(slots=True)
class Isolated:
    """The final outcome of every part a request ended in, and the extra requests spent getting there."""

    outcomes: list[RequestOutcome] = field(default_factory=list)
    extra_requests: int = 0


def splittable(outcome: RequestOutcome) -> bool:
    """Facebook rejected events of this request, not the request itself: splitting can save the rest."""
    if outcome.status != ErrorClass.INVALID or outcome.code is None:  # no Graph error: not Meta's verdict
        return False
    if outcome.code in _WHOLE_REQUEST_CODES or outcome.subcode in _WHOLE_REQUEST_SUBCODES:
        return False
    return not any(word in (outcome.error or "") for word in _WHOLE_REQUEST_WORDS)


def send_isolating(sender: Sender, events: list[dict[str, Any]], redactor: Redactor) -> Isolated:
    """Send one request's events; when Facebook rejects them as invalid, isolate the rejected ones."""
    first = sender.send(events, redactor)
    result = Isolated()
    if not splittable(first):
        result.outcomes.append(first)
        return result
    rejected: deque[tuple[list[dict[str, Any]], RequestOutcome]] = deque([(events, first)])
    stopped = False  # a token or permission error: every later part would fail the same way
    while rejected:
        part, rejection = rejected.popleft()
        if len(part) == 1:
            rejection.isolated = True
            result.outcomes.append(rejection)
            continue
        for piece, blamed in _split(part, rejection.index):
            if blamed:  # Meta named it: it stands alone with Meta's own reason, no request needed
                result.outcomes.append(_blamed(piece, rejection))
                continue
            if stopped:
                result.outcomes.append(RequestOutcome(events=len(piece), payload=piece))  # NOT_ATTEMPTED
                continue
            outcome = sender.send(piece, redactor)
            result.extra_requests += outcome.attempts > 0
            stopped = outcome.status in (ErrorClass.TOKEN, ErrorClass.PERMISSION)
            if splittable(outcome):
                rejected.append((piece, outcome))
            else:
                result.outcomes.append(outcome)
    return result


def _split(part: list[dict[str, Any]], index: int | None) -> list[tuple[list[dict[str, Any]], bool]]:
    """The named event alone and the rest, or two halves; each piece with whether Meta blamed it."""
    if index is not None and 0 <= index < len(part):
        return [([part[index]], True), (part[:index] + part[index + 1 :], False)]
    middle = len(part) // 2
    return [(part[:middle], False), (part[middle:], False)]


def _blamed(piece: list[dict[str, Any]], rejection: RequestOutcome) -> RequestOutcome:
    return RequestOutcome(
        events=1,
        status=rejection.status,
        error=rejection.error,
        code=rejection.code,
        subcode=rejection.subcode,
        fbtrace_id=rejection.fbtrace_id,
        isolated=True,
        payload=piece,
    )
