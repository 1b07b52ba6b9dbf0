"""Why an event is not forwarded: one reason per rule, counted per batch (docs/mapping.md, "Skipped events").

The values appear in responses, logs, the EventsSkippedByReason metric and docs/mapping.md's table, so they never
change. Counters and summaries key them by the plain string (`reason.value`): orjson writes only `str` keys.
"""

from __future__ import annotations

from enum import StrEnum


class Skip(StrEnum):
    """The reasons an event is not forwarded."""

    MALFORMED_EVENT = "malformed_event"
    NOT_COMMERCE_EVENT = "not_commerce_event"
    UNSUPPORTED_ACTION = "unsupported_action"
    UNMAPPED_CUSTOM_EVENT = "unmapped_custom_event"
    INVALID_CUSTOM_EVENT_NAME = "invalid_custom_event_name"
    CUSTOM_NAME_UNSUPPORTED = "custom_name_unsupported"
    DEVELOPMENT_BATCH = "development_batch"
    NO_CONSENT = "no_consent"  # the batch lacks a GDPR purpose REQUIRED_GDPR_PURPOSES names
    NO_EVENT_TIME = "no_event_time"
    INVALID_EVENT_TIME = "invalid_event_time"
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    PURCHASE_WITHOUT_VALUE = "purchase_without_value"
    INVALID_CURRENCY = "invalid_currency"
    NO_MATCH_KEY = "no_match_key"
    APP_WITHOUT_APP_DATA = "app_without_app_data"  # action source app, which Meta refuses without app_data
    APPEND_WITHOUT_ORIGINAL = "append_without_original"  # AppendValue without the original event's name and id
    TOO_MANY_PRODUCTS = "too_many_products"
    TOO_MANY_ATTRIBUTES = "too_many_attributes"
    VALUE_TOO_LONG = "value_too_long"
    EVENT_TOO_LARGE = "event_too_large"  # decided by render.py, on the rendered event
