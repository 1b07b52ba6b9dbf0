"""Event time: when an event happened, in Unix seconds, and Meta's window of the times it takes.

mParticle gives an event's time in milliseconds (`timestamp_unixtime_ms`) and the batch's, when mParticle
received it, beside it. Meta refuses an event too old or too far ahead (on the Conversions API with its
whole request), so such an event is skipped and counted instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forwarder.action_source import ActionSource
from forwarder.batch import Batch, number
from forwarder.skip_reasons import Skip

DAY = 24 * 3600
# Meta's time windows: on the Conversions API "the event_time can be up to 7 days before you send an event"
# (conversions-api/parameters/server-event), except physical_store events, uploaded "within 62 days of
# the conversion" (conversions-api/offline-events); the Offline Conversions API took offline events up to
# 62 days old. An older event is refused (on the Conversions API with its whole request).
OFFLINE_MAX_AGE_SECONDS = 62 * DAY
MAX_AGE_SECONDS: Mapping[str, int] = {
    source.value: (62 if source is ActionSource.PHYSICAL_STORE else 7) * DAY for source in ActionSource
}
MAX_FUTURE_SECONDS = 3600
# A time present in an event is milliseconds: below this (1973-03-03 in milliseconds, the year 5138 in
# seconds) it is seconds, or not a time at all.
MIN_EVENT_TIME_MS = 100_000_000_000
_MAX_PLAIN_TIME_MS = 2**53  # an integer time up to here is exact as a float too: the lenient reader agrees
EVENT_TIME_FROM_BATCH = "event_time_from_batch"  # adjusted: the event had no time of its own


def event_time(data: Mapping[str, Any], batch: Batch) -> int | Skip:
    """Unix seconds, or the reason the event has no usable time.

    Only an absent time falls back to the batch's (when mParticle received it: the caller counts it as
    EVENT_TIME_FROM_BATCH); a time that is there but unusable (zero, negative, not a number, seconds) is
    never replaced, or a delayed upload would show as a conversion happening now.
    """
    given = data.get("timestamp_unixtime_ms")
    if type(given) is int and MIN_EVENT_TIME_MS <= given <= _MAX_PLAIN_TIME_MS:  # the usual case, read directly
        return given // 1000
    if given is None:
        return batch.timestamp_ms // 1000 if batch.timestamp_ms else Skip.NO_EVENT_TIME
    millis = number(given)
    if millis is None or millis < MIN_EVENT_TIME_MS:
        return Skip.INVALID_EVENT_TIME
    return int(millis) // 1000


def outside_window(time: int, now: float, action_source: str | None) -> Skip | None:
    """TOO_OLD or IN_FUTURE when Meta would refuse an event of this time and action source (None: the
    Offline Conversions API, which has no action source), else None. `now` is Unix seconds."""
    max_age = OFFLINE_MAX_AGE_SECONDS if action_source is None else MAX_AGE_SECONDS[action_source]
    if time < now - max_age:
        return Skip.TOO_OLD
    if time > now + MAX_FUTURE_SECONDS:
        return Skip.IN_FUTURE
    return None
