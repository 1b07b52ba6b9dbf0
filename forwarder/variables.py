"""Readers of the configuration variables: each takes a variable's text and gives a typed value, or raises
`SettingsError` naming the variable and what it allows.

The message never quotes the value: it is answered to callers not yet authenticated (the secret is read
after the settings), and a value may hold credentials. settings.py puts the values together; the names,
meanings and defaults are README's ("Configuration").
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from forwarder.action_source import NEEDS_APP_DATA, SENDABLE_ACTION_SOURCES, ActionSource
from forwarder.batch import IDENTITY_TYPES
from forwarder.event_names import CUSTOM_EVENT_NAME, DEFAULT_EVENT_NAMES, EVENT_NAME
from forwarder.match_keys import DATE_OF_BIRTH_KEYS, EXTERNAL_ID_SOURCES, USER_ATTRIBUTE, KeySettings
from forwarder.places import ISO_ALPHA_2

DEFAULT_CUSTOM_EVENT_VALUE_ATTRIBUTES = ("value", "revenue")
DEFAULT_CUSTOM_EVENT_CURRENCY_ATTRIBUTE = "currency"
# A bound on a name the operator gives (an attribute, a consent purpose), far above any real one.
MAX_NAME_LENGTH = 256

E = TypeVar("E", bound=StrEnum)


class SettingsError(ValueError):
    """A configuration variable is missing or invalid; the message names it."""


def choice(env: Mapping[str, str], name: str, enum: type[E], default: E) -> E:
    """One of `enum`'s values, in any case; `default` when unset or blank."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return enum(raw.lower())
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise SettingsError(f"{name} must be one of {allowed}") from None


def required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required")
    return value


def flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in ("", "true", "false"):
        raise SettingsError(f"{name} must be true or false")
    return raw == "true"


def names(raw: str) -> list[str]:
    """Comma-separated names, each stripped of ASCII whitespace (what CloudFormation's \\s matches too); empty
    entries are ignored."""
    return [name for part in raw.split(",") if (name := part.strip(string.whitespace))]


def event_name_overrides(raw: str) -> dict[str, str]:
    """`EVENT_NAME_OVERRIDES="checkout=Checkout,add_to_wishlist=AddToWishList"` replaces names per action."""
    overridden = dict(DEFAULT_EVENT_NAMES)
    for position, item in enumerate(filter(None, (part.strip() for part in raw.split(","))), start=1):
        action, sep, name = (piece.strip() for piece in item.partition("="))
        if not sep or action not in DEFAULT_EVENT_NAMES or not EVENT_NAME.fullmatch(name):
            supported = ", ".join(DEFAULT_EVENT_NAMES)
            raise SettingsError(
                f"EVENT_NAME_OVERRIDES entries must be action=EventName, with action one of {supported} and an "
                f"EventName of 1 to 100 letters, digits, spaces, '_' or '-' (entry {position} is not)"
            )
        overridden[action] = name
    return overridden


def custom_event_mapping(raw: str) -> dict[str, str]:
    """`CUSTOM_EVENT_MAPPING="Appointment Booked=Schedule,Store Visit=FindLocation"`: mParticle custom event
    names (matched case-insensitively, so stored case-folded) -> Facebook event names."""
    mapped: dict[str, str] = {}
    for position, item in enumerate(names(raw), start=1):
        source, sep, name = item.partition("=")
        source, name = source.strip(string.whitespace), name.strip(string.whitespace)
        key = source.casefold()
        if not sep or not source or not CUSTOM_EVENT_NAME.fullmatch(name) or key in mapped:
            raise SettingsError(
                "CUSTOM_EVENT_MAPPING entries must be mParticle event name=Facebook event name, separated by commas, "
                "each mParticle name once (matched case-insensitively) and without ',' or '=', each Facebook name "
                f"1 to 50 letters, digits, spaces, '_' or '-' (entry {position} is not)"
            )
        mapped[key] = name
    return mapped


def attribute_names(raw: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Custom attribute names, case-folded (they are matched case-insensitively), in their order."""
    given = names(raw)
    return tuple(dict.fromkeys(name.casefold() for name in given)) if given else default


def currency_attribute(raw: str) -> str:
    """CUSTOM_EVENT_CURRENCY_ATTRIBUTE: one custom attribute name, case-folded."""
    given = attribute_names(raw, (DEFAULT_CUSTOM_EVENT_CURRENCY_ATTRIBUTE,))
    if len(given) > 1:
        raise SettingsError("CUSTOM_EVENT_CURRENCY_ATTRIBUTE must be one custom attribute name, without ','")
    return given[0]


def match_key_settings(env: Mapping[str, str]) -> KeySettings:
    """EMAIL_IDENTITY_TYPES (default email), EXTERNAL_ID_IDENTITY_TYPE (default customer_id) and DEFAULT_COUNTRY."""
    emails: list[str] = []
    for position, item in enumerate(names(env.get("EMAIL_IDENTITY_TYPES", "")), 1):
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
        **date_of_birth_sources(env.get("DATE_OF_BIRTH_ATTRIBUTE", "")),
    }
    return KeySettings(sources=sources, default_country=country)


def date_of_birth_sources(raw: str) -> dict[str, tuple[str, ...]]:
    """DATE_OF_BIRTH_ATTRIBUTE: the user attribute holding the date of birth (matched case-insensitively, as
    every attribute name), the source of each of match_keys.DATE_OF_BIRTH_KEYS; empty: none."""
    name = raw.strip(string.whitespace).lower()
    if not name:
        return {}
    if len(name) > MAX_NAME_LENGTH:
        raise SettingsError(
            f"DATE_OF_BIRTH_ATTRIBUTE must be one user attribute name of at most {MAX_NAME_LENGTH} characters"
        )
    return dict.fromkeys(DATE_OF_BIRTH_KEYS, (USER_ATTRIBUTE + name,))


def gdpr_purposes(raw: str) -> frozenset[str]:
    """REQUIRED_GDPR_PURPOSES: comma-separated mParticle GDPR consent purposes, lower-cased (matched
    case-insensitively, as batch.User.gdpr_consented_purposes holds them); empty: no consent is required."""
    purposes = frozenset(name.lower() for name in names(raw))
    if any(len(purpose) > MAX_NAME_LENGTH for purpose in purposes):
        raise SettingsError(f"REQUIRED_GDPR_PURPOSES must name purposes of at most {MAX_NAME_LENGTH} characters each")
    return purposes


def default_action_source(env: Mapping[str, str]) -> str:
    """DEFAULT_ACTION_SOURCE: one of Meta's action sources but `app`, whose events Meta refuses without the
    app_data an offline feed does not have (action_source.NEEDS_APP_DATA); default physical_store."""
    source = choice(env, "DEFAULT_ACTION_SOURCE", ActionSource, ActionSource.PHYSICAL_STORE).value
    if source == NEEDS_APP_DATA:
        raise SettingsError(
            f"DEFAULT_ACTION_SOURCE must be one of {', '.join(SENDABLE_ACTION_SOURCES)} (not app: Meta refuses app "
            "events without app_data, the device details an offline feed does not have)"
        )
    return source
