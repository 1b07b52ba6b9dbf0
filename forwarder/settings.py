"""The function's configuration, read once from the environment and validated loudly.

Every variable is documented in README ("Configuration"), which also fixes their names (operators and
the SAM template rely on them). An invalid value raises `SettingsError` naming the variable and what
it allows, never a silent default. The message never quotes the value: it is answered to callers not yet authenticated
(the secret is read after the settings), and a value may hold credentials.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

from forwarder.batch import IDENTITY_TYPES
from forwarder.currencies import currency_code
from forwarder.destination import (
    DEFAULT_CONNECTION,
    DEFAULT_UPLOAD_TAG,
    Destination,
    DestinationError,
    api_version,
    dataset_id,
    test_event_code,
    upload_tag,
)
from forwarder.facebook_api import PROFILES, FacebookApi, Profile
from forwarder.match_keys import EXTERNAL_ID_SOURCES, KeySettings
from forwarder.places import ISO_ALPHA_2
from forwarder.settled import SettledEvents


class SettingsError(ValueError):
    """A configuration variable is missing or invalid; the message names it."""


class LduMode(StrEnum):
    NEVER = "never"
    ALWAYS = "always"
    OPTED_OUT = "opted_out"


class DeliveryMode(StrEnum):
    DIRECT = "direct"  # the webhook calls Facebook
    BUFFERED = "buffered"  # the webhook queues; the sender function calls Facebook (README, "Delivery modes")


class ActionSource(StrEnum):
    """Where a conversion happened: Meta's `action_source` values (conversions-api/parameters/server-event)."""

    PHYSICAL_STORE = "physical_store"
    PHONE_CALL = "phone_call"
    CHAT = "chat"
    EMAIL = "email"
    SYSTEM_GENERATED = "system_generated"
    WEBSITE = "website"
    APP = "app"
    BUSINESS_MESSAGING = "business_messaging"
    OTHER = "other"


class DevelopmentBatches(StrEnum):
    """What to do with batches mParticle marks `environment: development` (README, "Development batches")."""

    TEST = "test"  # sent with TEST_EVENT_CODE; skipped when there is none
    SEND = "send"  # sent like production batches
    SKIP = "skip"  # never sent


# The product actions of mParticle's Facebook Offline Conversions integration and Meta's standard event
# names for them (README, "Event names").
DEFAULT_EVENT_NAMES: Mapping[str, str] = {
    "add_to_cart": "AddToCart",
    "add_to_wishlist": "AddToWishlist",
    "checkout": "InitiateCheckout",
    "purchase": "Purchase",
    "view_detail": "ViewContent",
}

_EVENT_NAME = re.compile(r"[A-Za-z0-9_ -]{1,100}")
# A Facebook event name a custom event is sent under: Meta's custom event names are at most 50 characters
# (meta-pixel reference, "Custom events"); the characters are those of Meta's app event names (letters,
# digits, spaces, '_' and '-'), which every standard name is made of too.
CUSTOM_EVENT_NAME = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9_ -]{0,48}[A-Za-z0-9_-])?")
DEFAULT_CUSTOM_EVENT_VALUE_ATTRIBUTES = ("value", "revenue")
DEFAULT_CUSTOM_EVENT_CURRENCY_ATTRIBUTE = "currency"
_LOOPBACK_HOSTS = {"localhost"}
# Under `sam local` (which sets AWS_SAM_LOCAL=true in its container) the host's stand-ins are reached by this
# name; it is never a loopback address, so http:// to it is allowed there and nowhere else.
_SAM_LOCAL_HOST = "host.docker.internal"
# What a base URL `scheme://host[:port][/path]` may hold: RFC 3986's unreserved characters, "/" and, outside
# the path, ":" and the "[" "]" around an IPv6 address. Anything else, such as whitespace, control
# characters, "?", "#", ";", "%", "@" or a backslash, could send the request elsewhere than the URL checked:
# urlsplit drops tabs and newlines before splitting, and keeps ";params" in the path.
_PATH_CHARS = frozenset(string.ascii_letters + string.digits + "-._~" + "/")
_BASE_URL_CHARS = _PATH_CHARS | frozenset(":[]")
# A host name label (RFC 1123: letters, digits, hyphens; an internationalised name in its punycode form).
_LABEL_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")
_GRAPH_URL_RULE = (
    "FACEBOOK_GRAPH_URL must be https://host[:port][/path] (http:// only on loopback, or to host.docker.internal "
    "under sam local), with a port from 1 to "
    "65535, a path of letters, digits, '-', '.', '_', '~' and '/', and no credentials, query, fragment, "
    "';' parameters, whitespace or control characters"
)

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class Settings:
    secret_id: str
    event_set_id: str
    parking_queue_url: str
    ldu_mode: LduMode = LduMode.NEVER
    api: FacebookApi = FacebookApi.CONVERSIONS_API  # Meta shut the Offline Conversions API down
    api_version: str = PROFILES[FacebookApi.CONVERSIONS_API].default_version
    graph_url: str = "https://graph.facebook.com"
    upload_tag: str = DEFAULT_UPLOAD_TAG
    default_currency: str = "USD"
    event_names: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENT_NAMES))
    # Where email and external id come from, and the region of national phone numbers (README, "Match keys").
    key_settings: KeySettings = field(default_factory=KeySettings)
    delivery_mode: DeliveryMode = DeliveryMode.DIRECT
    ingest_queue_url: str | None = None
    test_event_code: str | None = None  # per batch: see for_batch
    # mParticle custom event name, case-folded -> Facebook event name (CUSTOM_EVENT_MAPPING).
    custom_event_names: Mapping[str, str] = field(default_factory=dict)
    forward_unmapped_custom_events: bool = False
    # Custom attribute names, case-folded, read for a custom event's value (the first valid one) and currency.
    custom_event_value_attributes: tuple[str, ...] = DEFAULT_CUSTOM_EVENT_VALUE_ATTRIBUTES
    custom_event_currency_attribute: str = DEFAULT_CUSTOM_EVENT_CURRENCY_ATTRIBUTE
    default_action_source: str = ActionSource.PHYSICAL_STORE.value  # one of ActionSource's values
    development_batches: DevelopmentBatches = DevelopmentBatches.TEST
    settled_events_table: str | None = None  # SETTLED_EVENTS_TABLE (forwarder/settled.py)

    # What the chosen API does differently (forwarder/facebook_api.py); set once, read per event.
    profile: Profile = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", PROFILES[self.api])

    @property
    def skips_development_batches(self) -> bool:
        """Development batches are not sent: DEVELOPMENT_BATCHES=skip, or `test` without a test code this API
        carries (the Offline Conversions API has none, so they would count as production there)."""
        if self.development_batches is DevelopmentBatches.TEST:
            return not (self.profile.test_event_code and self.test_event_code)
        return self.development_batches is DevelopmentBatches.SKIP

    def destination(self, development: bool = False) -> Destination:
        """Where one batch's events go (and are parked for): only a development batch, under
        DEVELOPMENT_BATCHES=test, carries TEST_EVENT_CODE; a production batch never does."""
        keep = development and self.development_batches is DevelopmentBatches.TEST
        return Destination(
            api=self.api,
            api_version=self.api_version,
            dataset_id=self.event_set_id,
            upload_tag=self.upload_tag,
            test_event_code=self.test_event_code if keep else None,
        )

    @property
    def secret_ids(self) -> dict[str, str]:
        """Each connection's secret: the one the variables describe (SECRET_ID)."""
        return {DEFAULT_CONNECTION: self.secret_id}

    @property
    def settled_events(self) -> SettledEvents | None:
        """The table remembering what isolation settled (SETTLED_EVENTS_TABLE), if there is one."""
        return SettledEvents(self.settled_events_table) if self.settled_events_table else None


def _choice(env: Mapping[str, str], name: str, enum: type[E], default: E) -> E:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return enum(raw.lower())
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise SettingsError(f"{name} must be one of {allowed}") from None


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required")
    return value


def _graph_url(raw: str, sam_local: bool = False) -> str:
    """The Graph API base URL without its trailing slash; the events path is appended to it.

    HTTPS only, except an explicit loopback base URL for local runs and tests, and host.docker.internal
    when `sam_local` (the function runs in `sam local`'s container); a plain path prefix (a proxy such as
    https://proxy.example.com/graph) is allowed. Raises SettingsError otherwise.
    """
    url = raw.strip().rstrip("/")
    parts = _base_url_parts(url)
    if parts is None or not (
        parts.scheme == "https" or (parts.scheme == "http" and _plain_http_allowed(parts.hostname or "", sam_local))
    ):
        raise SettingsError(_GRAPH_URL_RULE)
    return url


def _plain_http_allowed(host: str, sam_local: bool) -> bool:
    return _is_loopback(host) or (sam_local and host == _SAM_LOCAL_HOST)


def _base_url_parts(url: str) -> SplitResult | None:
    """`scheme://host[:port][/path]` split, or None when the URL holds anything else."""
    if not set(url) <= _BASE_URL_CHARS:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError, quoting the port, when it is not a number or beyond 65535
    except ValueError:  # also from urlsplit, for an unbalanced "[" or "]"; its text is not kept
        return None
    if port == 0 or not parts.hostname or not _is_host(parts.hostname):
        return None
    # The authority is the host and port and nothing else (urlsplit ignores text after an IPv6 "]").
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.netloc.lower() != (host if port is None else f"{host}:{port}"):
        return None
    # requests collapses "." and ".." segments (moving the path elsewhere), and many servers collapse "//".
    segments = parts.path.split("/")[1:]
    if not set(parts.path) <= _PATH_CHARS or any(segment in ("", ".", "..") for segment in segments):
        return None
    return parts


def _is_host(host: str) -> bool:
    """A DNS name of non-empty RFC 1123 labels, or an IP address (urlsplit lower-cases and unbrackets it)."""
    return all(label and set(label) <= _LABEL_CHARS for label in host.split(".")) or _ip(host) is not None


def _is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS or ((address := _ip(host)) is not None and address.is_loopback)


def _ip(host: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def _event_names(raw: str) -> dict[str, str]:
    """`EVENT_NAME_OVERRIDES="checkout=Checkout,add_to_wishlist=AddToWishList"` replaces names per action."""
    names = dict(DEFAULT_EVENT_NAMES)
    for position, item in enumerate(filter(None, (part.strip() for part in raw.split(","))), start=1):
        action, sep, name = (piece.strip() for piece in item.partition("="))
        if not sep or action not in DEFAULT_EVENT_NAMES or not _EVENT_NAME.fullmatch(name):
            supported = ", ".join(DEFAULT_EVENT_NAMES)
            raise SettingsError(
                f"EVENT_NAME_OVERRIDES entries must be action=EventName, with action one of {supported} and an "
                f"EventName of 1 to 100 letters, digits, spaces, '_' or '-' (entry {position} is not)"
            )
        names[action] = name
    return names


def _key_settings(env: Mapping[str, str]) -> KeySettings:
    """EMAIL_IDENTITY_TYPES (default email), EXTERNAL_ID_IDENTITY_TYPE (default customer_id) and DEFAULT_COUNTRY."""
    emails: list[str] = []
    for position, item in enumerate(_names(env.get("EMAIL_IDENTITY_TYPES", "")), 1):
        if item.lower() not in IDENTITY_TYPES:
            raise SettingsError(
                f"EMAIL_IDENTITY_TYPES must be comma-separated mParticle identity types, each one of "
                f"{', '.join(sorted(IDENTITY_TYPES))} (entry {position} is not)"
            )
        emails.append(item.lower())
    external = env.get("EXTERNAL_ID_IDENTITY_TYPE", "").strip().lower() or "customer_id"
    if external != "none" and external not in EXTERNAL_ID_SOURCES:
        raise SettingsError(f"EXTERNAL_ID_IDENTITY_TYPE must be one of {', '.join(EXTERNAL_ID_SOURCES)} or none")
    country = env.get("DEFAULT_COUNTRY", "").strip().lower() or None
    if country is not None and country not in ISO_ALPHA_2:
        raise SettingsError("DEFAULT_COUNTRY must be an ISO 3166-1 alpha-2 country code, such as US or GB")
    sources = {
        "email": tuple(dict.fromkeys(emails)) or ("email",),
        "external_id": () if external == "none" else (external,),
    }
    return KeySettings(sources=sources, default_country=country)


def _names(raw: str) -> list[str]:
    """Comma-separated names, each stripped of ASCII whitespace (what CloudFormation's \\s matches too); empty
    entries are ignored."""
    return [name for part in raw.split(",") if (name := part.strip(string.whitespace))]


def _custom_event_names(raw: str) -> dict[str, str]:
    """`CUSTOM_EVENT_MAPPING="Appointment Booked=Schedule,Store Visit=FindLocation"`: mParticle custom event
    names (matched case-insensitively, so stored case-folded) -> Facebook event names."""
    names: dict[str, str] = {}
    for position, item in enumerate(_names(raw), start=1):
        source, sep, name = item.partition("=")
        source, name = source.strip(string.whitespace), name.strip(string.whitespace)
        key = source.casefold()
        if not sep or not source or not CUSTOM_EVENT_NAME.fullmatch(name) or key in names:
            raise SettingsError(
                "CUSTOM_EVENT_MAPPING entries must be mParticle event name=Facebook event name, separated by commas, "
                "each mParticle name once (matched case-insensitively) and without ',' or '=', each Facebook name "
                f"1 to 50 letters, digits, spaces, '_' or '-' (entry {position} is not)"
            )
        names[key] = name
    return names


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in ("", "true", "false"):
        raise SettingsError(f"{name} must be true or false")
    return raw == "true"


def _attribute_names(raw: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Custom attribute names, case-folded (they are matched case-insensitively), in their order."""
    names = _names(raw)
    return tuple(dict.fromkeys(name.casefold() for name in names)) if names else default


def _currency_attribute(raw: str) -> str:
    names = _attribute_names(raw, (DEFAULT_CUSTOM_EVENT_CURRENCY_ATTRIBUTE,))
    if len(names) > 1:
        raise SettingsError("CUSTOM_EVENT_CURRENCY_ATTRIBUTE must be one custom attribute name, without ','")
    return names[0]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment; raises SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    api = _choice(env, "FACEBOOK_API", FacebookApi, FacebookApi.CONVERSIONS_API)
    try:
        event_set_id = dataset_id(_required(env, "OFFLINE_EVENT_SET_ID"))
        version = api_version(env.get("FACEBOOK_API_VERSION", "").strip() or PROFILES[api].default_version)
        tag = upload_tag(env.get("UPLOAD_TAG", "").strip())
        test_code = test_event_code(env.get("TEST_EVENT_CODE", "").strip())
    except DestinationError as problem:
        raise SettingsError(str(problem)) from None
    currency = currency_code(env.get("DEFAULT_CURRENCY", "").strip() or "USD")
    if currency is None:
        raise SettingsError("DEFAULT_CURRENCY must be an ISO 4217 currency code, such as USD or EUR")
    return Settings(
        secret_id=_required(env, "SECRET_ID"),
        event_set_id=event_set_id,
        ldu_mode=_choice(env, "SEND_CCPA_LIMITED_DATA_USE", LduMode, LduMode.NEVER),
        api=api,
        api_version=version,
        graph_url=_graph_url(
            env.get("FACEBOOK_GRAPH_URL", "") or "https://graph.facebook.com", env.get("AWS_SAM_LOCAL") == "true"
        ),
        upload_tag=tag,
        default_currency=currency,
        event_names=_event_names(env.get("EVENT_NAME_OVERRIDES", "")),
        test_event_code=test_code,
        key_settings=_key_settings(env),
        parking_queue_url=_required(env, "PARKING_QUEUE_URL"),
        **_delivery(env, api),
        custom_event_names=_custom_event_names(env.get("CUSTOM_EVENT_MAPPING", "")),
        forward_unmapped_custom_events=_flag(env, "FORWARD_UNMAPPED_CUSTOM_EVENTS"),
        custom_event_value_attributes=_attribute_names(
            env.get("CUSTOM_EVENT_VALUE_ATTRIBUTES", ""), DEFAULT_CUSTOM_EVENT_VALUE_ATTRIBUTES
        ),
        custom_event_currency_attribute=_currency_attribute(env.get("CUSTOM_EVENT_CURRENCY_ATTRIBUTE", "")),
        default_action_source=_choice(env, "DEFAULT_ACTION_SOURCE", ActionSource, ActionSource.PHYSICAL_STORE).value,
        development_batches=_choice(env, "DEVELOPMENT_BATCHES", DevelopmentBatches, DevelopmentBatches.TEST),
        settled_events_table=env.get("SETTLED_EVENTS_TABLE", "").strip() or None,
    )


def _delivery(env: Mapping[str, str], api: FacebookApi) -> dict[str, Any]:
    mode = _choice(env, "DELIVERY_MODE", DeliveryMode, DeliveryMode.DIRECT)
    if mode is DeliveryMode.DIRECT:
        return {"delivery_mode": mode, "ingest_queue_url": None}
    if not PROFILES[api].deduplicates:
        # A queue delivers at least once: a message received twice must count once, and only the Conversions
        # API de-duplicates (event_id).
        raise SettingsError("DELIVERY_MODE=buffered needs FACEBOOK_API=conversions_api (it de-duplicates a resend)")
    return {"delivery_mode": mode, "ingest_queue_url": _required(env, "INGEST_QUEUE_URL")}
