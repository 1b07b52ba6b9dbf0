"""The function's configuration, read once from the environment and validated loudly.

Every variable is documented in README ("Configuration"), which also fixes their names (operators and
the SAM template rely on them). An invalid value raises `SettingsError` naming the variable and what
it allows, never a silent default. The message never quotes the value: it is answered to callers not yet authenticated
(the secret is read after the settings), and a value may hold credentials. Each variable's own rule is read
by forwarder/variables.py (FACEBOOK_GRAPH_URL's by forwarder/graph_url.py); this module puts them together.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from forwarder.action_source import ActionSource
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
from forwarder.event_names import DEFAULT_EVENT_NAMES
from forwarder.facebook_api import PROFILES, FacebookApi, Profile
from forwarder.graph_url import graph_base_url
from forwarder.match_keys import KeySettings
from forwarder.settled import SettledEvents
from forwarder.variables import (
    DEFAULT_CUSTOM_EVENT_CURRENCY_ATTRIBUTE,
    DEFAULT_CUSTOM_EVENT_VALUE_ATTRIBUTES,
    attribute_names,
    choice,
    currency_attribute,
    custom_event_mapping,
    default_action_source,
    event_name_overrides,
    flag,
    gdpr_purposes,
    match_key_settings,
    required,
)
from forwarder.variables import (
    SettingsError as SettingsError,  # raised here and by every reader; callers catch it from this module
)


class LduMode(StrEnum):
    NEVER = "never"
    ALWAYS = "always"
    OPTED_OUT = "opted_out"


class DeliveryMode(StrEnum):
    DIRECT = "direct"  # the webhook calls Facebook
    BUFFERED = "buffered"  # the webhook queues; the sender function calls Facebook (README, "Delivery modes")


class DevelopmentBatches(StrEnum):
    """What to do with batches mParticle marks `environment: development` (README, "Development batches")."""

    TEST = "test"  # sent with TEST_EVENT_CODE; skipped when there is none
    SEND = "send"  # sent like production batches
    SKIP = "skip"  # never sent


@dataclass(frozen=True, slots=True)
class Settings:
    secret_id: str
    datasets: tuple[str, ...]  # OFFLINE_EVENT_SET_ID: every event goes to each (a connection may list several)
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
    test_event_code: str | None = None  # development batches only: see destination()
    # mParticle custom event name, case-folded -> Facebook event name (CUSTOM_EVENT_MAPPING).
    custom_event_names: Mapping[str, str] = field(default_factory=dict)
    forward_unmapped_custom_events: bool = False
    # Custom attribute names, case-folded, read for a custom event's value (the first valid one) and currency.
    custom_event_value_attributes: tuple[str, ...] = DEFAULT_CUSTOM_EVENT_VALUE_ATTRIBUTES
    custom_event_currency_attribute: str = DEFAULT_CUSTOM_EVENT_CURRENCY_ATTRIBUTE
    default_action_source: str = ActionSource.PHYSICAL_STORE.value  # one of action_source.SENDABLE_ACTION_SOURCES
    development_batches: DevelopmentBatches = DevelopmentBatches.TEST
    settled_events_table: str | None = None  # SETTLED_EVENTS_TABLE (forwarder/settled.py)
    ingest_max_receive_count: int | None = None  # INGEST_MAX_RECEIVE_COUNT: the ingest queue's maxReceiveCount
    connection: str = DEFAULT_CONNECTION  # whose settings these are (forwarder/connections.py)
    # A connection's `event_datasets`: a Facebook event name -> the datasets its events go to instead.
    event_datasets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # REQUIRED_GDPR_PURPOSES, lower-cased: a batch must have consented to each (empty: no consent required).
    required_gdpr_purposes: frozenset[str] = frozenset()

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

    def destination(self, dataset: str, development: bool = False) -> Destination:
        """Where events of one batch go (and are parked for) in `dataset`: only a development batch, under
        DEVELOPMENT_BATCHES=test, carries TEST_EVENT_CODE; a production batch never does."""
        keep = development and self.development_batches is DevelopmentBatches.TEST
        return Destination(
            api=self.api,
            api_version=self.api_version,
            dataset_id=dataset,
            upload_tag=self.upload_tag,
            test_event_code=self.test_event_code if keep else None,
            connection=self.connection,
        )

    def destinations(self, event_name: str, development: bool = False) -> tuple[Destination, ...]:
        """Every dataset an event of this name goes to: its `event_datasets` entry, else the datasets."""
        return tuple(
            self.destination(dataset, development) for dataset in self.event_datasets.get(event_name, self.datasets)
        )

    @property
    def secret_setting(self) -> str:
        """Where the secret's id comes from, for an error an operator reads."""
        return "SECRET_ID" if self.connection == DEFAULT_CONNECTION else f"connection '{self.connection}''s secret_id"

    def with_connection(self, name: str, event_datasets: Mapping[str, tuple[str, ...]]) -> Settings:
        """These settings as connection `name`'s, with its own `event_datasets`."""
        return dataclasses.replace(self, connection=name, event_datasets=event_datasets)

    @property
    def all_datasets(self) -> frozenset[str]:
        """Every dataset this connection sends to, its event_datasets' included."""
        return frozenset(self.datasets).union(*self.event_datasets.values())

    @property
    def settled_events(self) -> SettledEvents | None:
        """The table remembering what isolation settled (SETTLED_EVENTS_TABLE), if there is one."""
        return SettledEvents(self.settled_events_table) if self.settled_events_table else None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment (the default connection's settings; a named connection's are the same variables
    overridden, forwarder/connections.py); raises SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    api = choice(env, "FACEBOOK_API", FacebookApi, FacebookApi.CONVERSIONS_API)
    try:
        datasets = tuple(
            dict.fromkeys(dataset_id(item.strip()) for item in required(env, "OFFLINE_EVENT_SET_ID").split(","))
        )
        version = api_version(env.get("FACEBOOK_API_VERSION", "").strip() or PROFILES[api].default_version)
        tag = upload_tag(env.get("UPLOAD_TAG", "").strip())
        test_code = test_event_code(env.get("TEST_EVENT_CODE", "").strip())
    except DestinationError as problem:
        raise SettingsError(str(problem)) from None
    currency = currency_code(env.get("DEFAULT_CURRENCY", "").strip() or "USD")
    if currency is None:
        raise SettingsError("DEFAULT_CURRENCY must be an ISO 4217 currency code, such as USD or EUR")
    return Settings(
        secret_id=required(env, "SECRET_ID"),
        datasets=datasets,
        ldu_mode=choice(env, "SEND_CCPA_LIMITED_DATA_USE", LduMode, LduMode.NEVER),
        api=api,
        api_version=version,
        graph_url=graph_base_url(
            env.get("FACEBOOK_GRAPH_URL", "") or "https://graph.facebook.com", env.get("AWS_SAM_LOCAL") == "true"
        ),
        upload_tag=tag,
        default_currency=currency,
        event_names=event_name_overrides(env.get("EVENT_NAME_OVERRIDES", "")),
        test_event_code=test_code,
        key_settings=match_key_settings(env),
        parking_queue_url=required(env, "PARKING_QUEUE_URL"),
        **_delivery(env, api),
        custom_event_names=custom_event_mapping(env.get("CUSTOM_EVENT_MAPPING", "")),
        forward_unmapped_custom_events=flag(env, "FORWARD_UNMAPPED_CUSTOM_EVENTS"),
        custom_event_value_attributes=attribute_names(
            env.get("CUSTOM_EVENT_VALUE_ATTRIBUTES", ""), DEFAULT_CUSTOM_EVENT_VALUE_ATTRIBUTES
        ),
        custom_event_currency_attribute=currency_attribute(env.get("CUSTOM_EVENT_CURRENCY_ATTRIBUTE", "")),
        default_action_source=default_action_source(env),
        development_batches=choice(env, "DEVELOPMENT_BATCHES", DevelopmentBatches, DevelopmentBatches.TEST),
        settled_events_table=env.get("SETTLED_EVENTS_TABLE", "").strip() or None,
        ingest_max_receive_count=_receive_count(env.get("INGEST_MAX_RECEIVE_COUNT", "").strip()),
        required_gdpr_purposes=gdpr_purposes(env.get("REQUIRED_GDPR_PURPOSES", "")),
    )


def _receive_count(raw: str) -> int | None:
    """INGEST_MAX_RECEIVE_COUNT: a whole number from 1 to 1000 (SQS's maxReceiveCount range), or unset."""
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 1000):
        raise SettingsError("INGEST_MAX_RECEIVE_COUNT must be a whole number from 1 to 1000")
    return int(raw)


def _delivery(env: Mapping[str, str], api: FacebookApi) -> dict[str, Any]:
    mode = choice(env, "DELIVERY_MODE", DeliveryMode, DeliveryMode.DIRECT)
    if mode is DeliveryMode.DIRECT:
        return {"delivery_mode": mode, "ingest_queue_url": None}
    if not PROFILES[api].deduplicates:
        # A queue delivers at least once: a message received twice must count once, and only the Conversions
        # API de-duplicates (event_id).
        raise SettingsError("DELIVERY_MODE=buffered needs FACEBOOK_API=conversions_api (it de-duplicates a resend)")
    return {"delivery_mode": mode, "ingest_queue_url": required(env, "INGEST_QUEUE_URL")}
