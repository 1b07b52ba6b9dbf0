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


def event_time(data: Mapping[str, Any], batch: Batch, now: float, action_source: str | None) -> int | Skip:
    """Unix seconds, or the reason the event has no usable time or one Meta would refuse for its action
    source (None: the Offline Conversions API, which has none). `now` is Unix seconds.

    Only an absent time falls back to the batch's (when mParticle received it: the caller counts it as
    EVENT_TIME_FROM_BATCH); a time that is there but unusable (zero, negative, not a number, seconds) is
    never replaced, or a delayed upload would show as a conversion happening now.
    """
    given = data.get("timestamp_unixtime_ms")
    if type(given) is int and MIN_EVENT_TIME_MS <= given <= _MAX_PLAIN_TIME_MS:  # the usual case, read directly
        time = given // 1000
    elif given is None:
        if not batch.timestamp_ms:
            return Skip.NO_EVENT_TIME
        time = batch.timestamp_ms // 1000
    elif (millis := number(given)) is None or millis < MIN_EVENT_TIME_MS:
        return Skip.INVALID_EVENT_TIME
    else:
        time = int(millis) // 1000
    max_age = OFFLINE_MAX_AGE_SECONDS if action_source is None else MAX_AGE_SECONDS[action_source]
    if time < now - max_age:
        return Skip.TOO_OLD
    if time > now + MAX_FUTURE_SECONDS:
        return Skip.IN_FUTURE
    return time
