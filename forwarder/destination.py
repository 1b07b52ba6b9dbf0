"""Where events go: a destination is a value, built from the settings once, passed along and written into
queued and parked messages, read back and checked by one function (`read_destination`).

A destination names the mParticle connection whose token sends the events, the Facebook API they were
rendered for, the Graph API version, the dataset (for the Offline Conversions API, the offline event set),
the upload tag and the test event code. It never holds a secret: a connection's token is looked up when
its events are sent (forwarder/posting.py), so a message read back can never carry or steer one.
Sources: marketing-api/offline-conversions (`upload_tag`, the event set id) and conversions-api/parameters
(the dataset id, `test_event_code`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forwarder.facebook_api import PROFILES, FacebookApi, Profile

DEFAULT_CONNECTION = "default"  # the connection POST /events serves, which the variables describe
DEFAULT_UPLOAD_TAG = "mparticle-offline-forwarder"
MAX_UPLOAD_TAG_LENGTH = 256
MAX_TEST_EVENT_CODE_LENGTH = 100

_VERSION = re.compile(r"v[0-9]+\.[0-9]+")  # ASCII digits: \d would take any script's digits into the URL
_DATASET_ID = re.compile(r"[0-9]{1,30}")
CONNECTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the route's path parameter (outside contract)
# Meta's test codes are short words such as TEST12345: printable ASCII without spaces bounds what a
# message read back may put into a request body.
_TEST_EVENT_CODE = re.compile(rf"[!-~]{{1,{MAX_TEST_EVENT_CODE_LENGTH}}}")


class DestinationError(ValueError):
    """A destination field is invalid; the message names the field and what it allows, never the value."""


def _matching(pattern: re.Pattern[str], value: str, field: str, rule: str) -> str:
    """`value` when the whole of it matches `pattern`; else DestinationError saying what `field` must be."""
    if not pattern.fullmatch(value):
        raise DestinationError(f"{field} must be {rule}")
    return value


def api_version(value: str, field: str = "FACEBOOK_API_VERSION") -> str:
    return _matching(_VERSION, value, field, "a Graph API version vNN.N, such as v16.0 or v26.0")


def dataset_id(value: str, field: str = "OFFLINE_EVENT_SET_ID") -> str:
    return _matching(_DATASET_ID, value, field, "the numeric id of the event set or dataset")


def upload_tag(value: str, field: str = "UPLOAD_TAG") -> str:
    if len(value) > MAX_UPLOAD_TAG_LENGTH:
        raise DestinationError(f"{field} must be at most {MAX_UPLOAD_TAG_LENGTH} characters")
    return value or DEFAULT_UPLOAD_TAG


def test_event_code(value: str | None, field: str = "TEST_EVENT_CODE") -> str | None:
    if not value:
        return None
    rule = f"1 to {MAX_TEST_EVENT_CODE_LENGTH} printable ASCII characters without spaces"
    return _matching(_TEST_EVENT_CODE, value, field, rule)


def connection_name(value: str, field: str = "connection") -> str:
    return _matching(CONNECTION_NAME, value, field, "1 to 64 letters, digits, '_' or '-'")


def facebook_api(value: str, field: str = "FACEBOOK_API") -> FacebookApi:
    try:
        return FacebookApi(value.lower())
    except ValueError:
        allowed = ", ".join(api.value for api in FacebookApi)
        raise DestinationError(f"{field} must be one of {allowed}") from None


@dataclass(frozen=True, slots=True)
class Destination:
    """One dataset of one connection, as one API takes it. Hashable: events are grouped by it."""

    api: FacebookApi
    api_version: str
    dataset_id: str
    upload_tag: str = DEFAULT_UPLOAD_TAG
    test_event_code: str | None = None
    connection: str = DEFAULT_CONNECTION

    @property
    def profile(self) -> Profile:
        """What this API does differently (limits, de-duplication, fields): forwarder/facebook_api.py."""
        return PROFILES[self.api]

    @property
    def events_path(self) -> str:
        """The Graph path events are posted to, below the Graph API's base URL."""
        return f"/{self.api_version}/{self.dataset_id}/events"

    def request_fields(self) -> dict[str, Any]:
        """The request-level fields besides `data` and the token: `upload_tag` (Offline Conversions API) and
        `test_event_code` (Conversions API, development batches only)."""
        fields: dict[str, Any] = {}
        if self.profile.upload_tag:
            fields["upload_tag"] = self.upload_tag
        if self.profile.test_event_code and self.test_event_code:
            fields["test_event_code"] = self.test_event_code
        return fields

    def record(self) -> dict[str, str | None]:
        """What a queued or parked message keeps of it (read back by `read_destination`); also safe to log."""
        return {
            "connection": self.connection,
            "api": self.api.value,
            "api_version": self.api_version,
            "dataset_id": self.dataset_id,
            "upload_tag": self.upload_tag,
            "test_event_code": self.test_event_code,
        }

    def log_fields(self) -> dict[str, str]:
        """The connection and dataset, for log lines and summaries."""
        return {"connection": self.connection, "dataset": self.dataset_id}


def read_destination(record: Mapping[str, Any]) -> Destination:
    """A destination from a message's record, checked by the same rules as the variables, so an altered
    message cannot put anything but a known API, a version, a numeric dataset and a connection name into the
    request path. Messages written before connections existed (format 1 and 2: `event_set_id`, no
    `connection`) belong to the default connection. Raises DestinationError naming the field."""
    for key, value in record.items():
        if value is not None and not isinstance(value, str):
            raise DestinationError(f"the destination's {key} is not a string")
    api = facebook_api(record.get("api") or "", "the destination's api")
    return Destination(
        api=api,
        api_version=api_version(record.get("api_version") or "", "the destination's api_version"),
        dataset_id=dataset_id(
            record.get("dataset_id") or record.get("event_set_id") or "", "the destination's dataset_id"
        ),
        upload_tag=upload_tag(record.get("upload_tag") or "", "the destination's upload_tag"),
        test_event_code=test_event_code(record.get("test_event_code"), "the destination's test_event_code"),
        connection=connection_name(record.get("connection") or DEFAULT_CONNECTION, "the destination's connection"),
    )
