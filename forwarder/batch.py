"""Reading an mParticle batch: one typed view over both shapes mParticle sends.

The webhook output (outbound) sends `user_identities` as an array of `{identity_type, identity}`;
the Events API (inbound) shape, and the official Python SDK, send an object map. Every field is
optional and unknown fields are ignored (mParticle JSON reference), so nothing here raises on a
missing or oddly typed field: only a body that is not a batch at all is an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from forwarder.telemetry import logger


class BatchError(ValueError):
    """The body is not an mParticle batch; the message says why (and never echoes its content)."""


class BatchTooLarge(BatchError):
    """More than one invocation should parse, map and send (answered 413); the message names the limit."""


# Batch-wide limits (a batch over them is refused, 413). They bound the time and memory of one
# invocation for any body up to the handler's 6 MiB: peak memory per worst body is measured by
# `make bench` (bench/memory.py) against the function's 256 MB.
# mParticle batches hold one user's events (typically tens); this bounds the work of one invocation
# well inside the timeout, and what 6 MB of small events could hold.
MAX_EVENTS_PER_BATCH = 10_000
# Products kept as contents, over all the batch's events: each costs about 450 bytes between its
# parsed dict and its content dict. Never reached by realistic batches (10,000 events of 10 products).
MAX_PRODUCTS_PER_BATCH = 100_000
# Parsing is what costs most: about 90 bytes per JSON object or array, 30 to 45 times the 2 or 3
# bytes each takes in the body, so 6 MiB of `[]` would need 300 MB. A body up to 2 MiB parses within
# the budget whatever it holds; a larger one may hold at most this many objects and arrays, counted
# before parsing as its '{' and '[' bytes (those inside strings too: an upper bound). Realistic batches
# hold one per 100 bytes or so (about 60,000 in 6 MiB).
MAX_CONTAINERS = 200_000
CONTAINERS_COUNTED_ABOVE_BYTES = 2 * 1024 * 1024
# Ids that travel with every parked message and log line (batch_id, source_request_id) or, unhashed on
# the Conversions API, in every event (the advertising id): mParticle's are UUIDs or 64-bit numbers.
# A longer one is dropped (with a warning naming the field), so it can never make a batch unparkable.
MAX_ID_LENGTH = 128
# Entries read from the user's identities and attributes: mParticle knows about twenty identity types and
# limits user attributes far below this, but a body may hold hundreds of thousands; reading them all (and
# lower-casing every name) would cost memory and time for nothing.
MAX_USER_ENTRIES = 1000


# The Python SDK serialises the customer id identity as `customerid` (mparticle-python-sdk).
_IDENTITY_ALIASES = {"customerid": "customer_id"}
# mParticle's user identity types as the webhook (outbound) names them (JSON reference, `identity_type`).
IDENTITY_TYPES = frozenset(
    {
        "other", "customer_id", "facebook", "twitter", "google", "microsoft", "yahoo", "email", "alias",
        "facebook_custom_audience_id", *(f"other_id_{n}" for n in range(2, 11)), "mobile_number",
        "phone_number_2", "phone_number_3",
    }
)  # fmt: skip
# mParticle's user id (MPID) is a signed 64-bit integer, sometimes sent as a string of one; 0 is no user.
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True, slots=True)
class User:
    """Who the batch is about; identity types and attribute names are lower-cased."""

    identities: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    ios_advertising_id: str | None = None
    android_advertising_id: str | None = None
    ccpa_opted_out: bool = False
    # The GDPR purposes the user consented to (`consent_state.gdpr.<purpose>.consented: true`), lower-cased.
    gdpr_consented_purposes: frozenset[str] = frozenset()
    mpid: str | None = None  # mParticle's user id, in decimal

    def attribute(self, name: str) -> str | None:
        """A reserved user attribute such as `$firstname`, matched case-insensitively."""
        return text(self.attributes.get(name))


@dataclass(frozen=True, slots=True)
class Batch:
    user: User
    events: list[Any]
    timestamp_ms: int | None = None
    batch_id: str | None = None
    source_request_id: str | None = None
    development: bool = False  # mParticle's `environment: development` (test traffic); anything else is production


def text(value: Any) -> str | None:
    """A non-empty string from a string or number; None for anything else."""
    kind = type(value)  # exact types first: this runs for nearly every field of every event
    if kind is str:
        return value.strip() or None
    if kind is int:  # always finite (math.isfinite would overflow on one beyond a float's range)
        return str(value)
    if kind is float:
        return str(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value.strip() or None
    return None


def number(value: Any) -> float | None:
    """A finite number from a JSON number or numeric string (mParticle's SDKs send both)."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str:
        try:
            value = float(value.strip())
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    if kind is int:
        try:
            return float(value)
        except OverflowError:  # an integer beyond a float's range (json.loads makes them)
            return None
    return None


def timestamp_ms(value: Any) -> int | None:
    parsed = number(value)
    return int(parsed) if parsed is not None and parsed > 0 else None


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _first(entries: Iterable[Any], name: str) -> Iterator[Any]:
    """At most MAX_USER_ENTRIES of a user map or list (a warning naming it, never its content, past that)."""
    for count, entry in enumerate(entries):
        if count == MAX_USER_ENTRIES:
            logger.warning("user entries past the limit ignored", extra={"field": name, "max_entries": count})
            return
        yield entry


def _identities(raw: Any) -> dict[str, str]:
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(raw, dict):
        pairs = raw.items()
    elif isinstance(raw, list):
        pairs = ((item.get("identity_type"), item.get("identity")) for item in raw if isinstance(item, dict))
    else:
        pairs = ()
    identities: dict[str, str] = {}
    for kind, value in _first(pairs, "user_identities"):
        name = text(kind)
        identity = text(value)
        if name and identity:
            name = name.lower()
            identities.setdefault(_IDENTITY_ALIASES.get(name, name), identity)
    return identities


def _mpid(value: Any) -> str | None:
    """The batch's `mpid` in decimal: an integer within int64, or a string of one (a float may have lost digits,
    anything longer or out of range is not an MPID); None for 0 and anything else."""
    if type(value) is int:
        number = value
    elif type(value) is str and len(digits := value.strip()) <= 20 and (unsigned := digits.removeprefix("-")):
        if not (unsigned.isascii() and unsigned.isdigit()):
            return None
        number = int(digits)
    else:
        return None
    return str(number) if number and number in _INT64 else None


def _ccpa_opted_out(consent_state: Mapping[str, Any]) -> bool:
    # mParticle: consented == true on `data_sale_opt_out` means the user opted OUT of the sale.
    opt_out = mapping(mapping(consent_state.get("ccpa")).get("data_sale_opt_out"))
    return opt_out.get("consented") is True


def _gdpr_consented_purposes(consent_state: Mapping[str, Any]) -> frozenset[str]:
    """The purposes of `consent_state.gdpr` whose state has `consented: true` (the JSON boolean), lower-cased and
    trimmed, from the first MAX_USER_ENTRIES purposes.

    mParticle (JSON reference, `consent_state`; both the Events API and the webhook's output) maps each purpose
    the workspace defines to `{"consented": bool, "document", "timestamp_unixtime_ms", "location",
    "hardware_id"}`; a purpose consented `false`, or with anything but a boolean `true`, is not consented.
    """
    purposes = _first(mapping(consent_state.get("gdpr")).items(), "consent_state.gdpr")
    consented = (
        purpose.strip().lower()
        for purpose, state in purposes
        if isinstance(purpose, str) and mapping(state).get("consented") is True
    )
    return frozenset(purpose for purpose in consented if purpose)


def check_structure(raw: bytes) -> None:
    """Refuse, before parsing, a body over 2 MiB holding more than MAX_CONTAINERS objects and arrays.

    `raw` is the body's bytes; raises BatchTooLarge. Counting costs about 0.4 ms per MB, so bodies that
    cannot exceed the parse budget (up to 2 MiB, which covers every realistic batch) are not counted.
    """
    if len(raw) <= CONTAINERS_COUNTED_ABOVE_BYTES:
        return
    containers = raw.count(b"{") + raw.count(b"[")
    if containers > MAX_CONTAINERS:
        raise BatchTooLarge(
            f"the body holds up to {containers} JSON objects and arrays ('{{' and '[' characters); a body over "
            f"{CONTAINERS_COUNTED_ABOVE_BYTES} bytes may hold at most {MAX_CONTAINERS}"
        )


def _bounded_id(value: Any, name: str) -> str | None:
    """`text(value)`, or None (and a warning naming the field, never its value) over MAX_ID_LENGTH."""
    identifier = text(value)
    if identifier is not None and len(identifier) > MAX_ID_LENGTH:
        logger.warning(
            "id too long, dropped", extra={"field": name, "length": len(identifier), "max_length": MAX_ID_LENGTH}
        )
        return None
    return identifier


def parse_batch(raw: bytes) -> Batch:
    """The batch in a request body (JSON bytes); raises BatchError (400) or BatchTooLarge (413)."""
    check_structure(raw)  # before parsing: what a body of tiny nested values would run out of memory in
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        # orjson's message gives the position, not the content.
        raise BatchError(f"the body is not valid JSON: {error}") from None
    return read_batch(body)


def read_batch(body: Any) -> Batch:
    """The typed view of a parsed JSON body; raises BatchError if it cannot be a batch."""
    if not isinstance(body, dict):
        raise BatchError(f"the body must be a JSON object (an mParticle batch), got {type(body).__name__}")
    events = body.get("events", [])
    if events is None:
        events = []
    if not isinstance(events, list):
        raise BatchError(f"'events' must be an array, got {type(events).__name__}")
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise BatchTooLarge(f"the batch has {len(events)} events; at most {MAX_EVENTS_PER_BATCH} are accepted")
    attributes = {
        key.lower(): value
        for key, value in _first(mapping(body.get("user_attributes")).items(), "user_attributes")
        if isinstance(key, str)
    }
    device = mapping(body.get("device_info"))
    consent_state = mapping(body.get("consent_state"))
    user = User(
        identities=_identities(body.get("user_identities")),
        attributes=attributes,
        ios_advertising_id=_bounded_id(device.get("ios_advertising_id"), "ios_advertising_id"),
        android_advertising_id=_bounded_id(device.get("android_advertising_id"), "android_advertising_id"),
        ccpa_opted_out=_ccpa_opted_out(consent_state),
        gdpr_consented_purposes=_gdpr_consented_purposes(consent_state),
        mpid=_mpid(body.get("mpid")),
    )
    return Batch(
        user=user,
        events=events,
        timestamp_ms=timestamp_ms(body.get("timestamp_unixtime_ms")),
        batch_id=_bounded_id(body.get("batch_id"), "batch_id"),
        source_request_id=_bounded_id(body.get("source_request_id"), "source_request_id"),
        development=(text(body.get("environment")) or "").lower() == "development",
    )
