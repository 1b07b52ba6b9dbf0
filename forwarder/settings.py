"""The function's configuration, read once from the environment and validated loudly.

Every variable is documented in README ("Configuration"); the contract in `shared/contract.md` fixes
their names. An invalid value raises `SettingsError` naming the variable and what it allows, never a
silent default. The message never quotes the value: it is answered to callers not yet authenticated
(the secret is read after the settings), and a value may hold credentials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import ip_address
from typing import TypeVar
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A configuration variable is missing or invalid; the message names it."""


class LduMode(StrEnum):
    NEVER = "never"
    ALWAYS = "always"
    OPTED_OUT = "opted_out"


class FacebookApi(StrEnum):
    OFFLINE_CONVERSIONS = "offline_conversions"
    CONVERSIONS_API = "conversions_api"


# Meta: the Offline Conversions API accepts offline events up to v16.0 only (graph-api changelog v17.0).
DEFAULT_VERSION = {FacebookApi.OFFLINE_CONVERSIONS: "v16.0", FacebookApi.CONVERSIONS_API: "v26.0"}
# Meta: at most 2000 events per Offline Conversions request, 1000 per Conversions API request.
MAX_EVENTS_PER_REQUEST = {FacebookApi.OFFLINE_CONVERSIONS: 2000, FacebookApi.CONVERSIONS_API: 1000}
DEFAULT_UPLOAD_TAG = "mparticle-offline-forwarder"

# The seed's product actions and Meta's standard event names for them (README, "Event names").
DEFAULT_EVENT_NAMES: Mapping[str, str] = {
    "add_to_cart": "AddToCart",
    "add_to_wishlist": "AddToWishlist",
    "checkout": "InitiateCheckout",
    "purchase": "Purchase",
    "view_detail": "ViewContent",
}

_VERSION = re.compile(r"v[0-9]+\.[0-9]+")  # ASCII digits: \d would take any script's digits into the URL
_EVENT_SET_ID = re.compile(r"[0-9]{1,30}")
CURRENCY = re.compile(r"[A-Z]{3}")  # ISO 4217 alphabetic code, upper-cased
_EVENT_NAME = re.compile(r"[A-Za-z0-9_ -]{1,100}")
_LOOPBACK_HOSTS = {"localhost"}

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class Settings:
    secret_id: str
    event_set_id: str
    parking_queue_url: str
    ldu_mode: LduMode = LduMode.NEVER
    api: FacebookApi = FacebookApi.OFFLINE_CONVERSIONS
    api_version: str = DEFAULT_VERSION[FacebookApi.OFFLINE_CONVERSIONS]
    graph_url: str = "https://graph.facebook.com"
    upload_tag: str = DEFAULT_UPLOAD_TAG
    default_currency: str = "USD"
    event_names: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENT_NAMES))
    test_event_code: str | None = None

    @property
    def max_events_per_request(self) -> int:
        return MAX_EVENTS_PER_REQUEST[self.api]

    @property
    def events_url(self) -> str:
        return f"{self.graph_url}/{self.api_version}/{self.event_set_id}/events"

    def public_view(self) -> dict[str, str | None]:
        """What may be logged or stored with a parked batch: everything but the secret's id."""
        return {
            "api": self.api.value,
            "api_version": self.api_version,
            "event_set_id": self.event_set_id,
            "ldu_mode": self.ldu_mode.value,
            "upload_tag": self.upload_tag,
            "default_currency": self.default_currency,
        }


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


def _graph_url(raw: str) -> str:
    """HTTPS only, except an explicit loopback base URL for local runs and tests."""
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname or ""))
    if secure and parts.hostname and not (parts.username or parts.password):
        return url
    # The value is not echoed: this message can reach callers, and a URL may carry credentials.
    raise SettingsError("FACEBOOK_GRAPH_URL must be an https:// URL without credentials (or http:// on loopback)")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


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


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment; raises SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    event_set_id = _required(env, "OFFLINE_EVENT_SET_ID")
    if not _EVENT_SET_ID.fullmatch(event_set_id):
        raise SettingsError("OFFLINE_EVENT_SET_ID must be the numeric id of the event set or dataset")
    api = _choice(env, "FACEBOOK_API", FacebookApi, FacebookApi.OFFLINE_CONVERSIONS)
    version = env.get("FACEBOOK_API_VERSION", "").strip() or DEFAULT_VERSION[api]
    if not _VERSION.fullmatch(version):
        raise SettingsError("FACEBOOK_API_VERSION must be a Graph API version vNN.N, such as v16.0 or v26.0")
    currency = env.get("DEFAULT_CURRENCY", "").strip().upper() or "USD"
    if not CURRENCY.fullmatch(currency):
        raise SettingsError("DEFAULT_CURRENCY must be an ISO 4217 code of three letters, such as USD")
    upload_tag = env.get("UPLOAD_TAG", "").strip() or DEFAULT_UPLOAD_TAG
    if len(upload_tag) > 256:
        raise SettingsError("UPLOAD_TAG must be at most 256 characters")
    return Settings(
        secret_id=_required(env, "SECRET_ID"),
        event_set_id=event_set_id,
        ldu_mode=_choice(env, "SEND_CCPA_LIMITED_DATA_USE", LduMode, LduMode.NEVER),
        api=api,
        api_version=version,
        graph_url=_graph_url(env.get("FACEBOOK_GRAPH_URL", "") or "https://graph.facebook.com"),
        upload_tag=upload_tag,
        default_currency=currency,
        event_names=_event_names(env.get("EVENT_NAME_OVERRIDES", "")),
        test_event_code=env.get("TEST_EVENT_CODE", "").strip() or None,
        parking_queue_url=_required(env, "PARKING_QUEUE_URL"),
    )
