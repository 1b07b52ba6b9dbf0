"""The two Facebook APIs, side by side: everything that differs between them, in one table.

Every other module reads a `Profile` (through `Settings.profile`) instead of asking which API it is. The
match keys' names and hashing per API are rows of the match-key table (forwarder/match_keys.py, `KEYS`).
Sources: Meta's marketing-api/offline-conversions (the Offline Conversions API: v16.0 was the last
version that took offline events; 2000 events per request; `upload_tag`; `match_keys`;
`num_processed_entries`; no de-duplication key) and conversions-api/parameters (the Conversions API:
1000 events per request; `user_data` with `madid` unhashed; `item_price`; `event_id` de-duplicated with
`event_name` for 48 hours; `events_received`; `test_event_code`; `action_source`; custom event names;
`content_ids`, `content_name`, `content_category`, `num_items`, `delivery_category` and the contents'
`title` in custom-data; `lead_id`, `ctwa_clid`, `page_id` in customer-information-parameters; `opt_out` in
server-event). The Offline Conversions API's event_name is one of Meta's event types, and its events carry
none of those fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class FacebookApi(StrEnum):
    OFFLINE_CONVERSIONS = "offline_conversions"
    CONVERSIONS_API = "conversions_api"


@dataclass(frozen=True, slots=True)
class Profile:
    api: FacebookApi
    default_version: str
    max_events_per_request: int
    accepted_count_field: str  # the success answer's count of processed events
    deduplicates: bool  # a resent event counts once (event_id + event_name)
    sends_event_id: bool
    price_key: Literal["price", "item_price"]  # a content's unit price
    keys_field: str  # where an event's match keys go (their names and hashing: match_keys.KEYS)
    upload_tag: bool  # the request carries UPLOAD_TAG
    test_event_code: bool  # the request may carry TEST_EVENT_CODE
    action_source: bool  # events carry action_source (and Meta's time window depends on it)
    custom_event_names: bool  # takes event names that are not Meta's standard events
    content_details: bool  # content_ids, content_name, content_category, num_items, delivery_category, title
    server_event_fields: bool  # opt_out, original_event_data, an event's own lead_id, ctwa_clid, page_id


PROFILES: Mapping[FacebookApi, Profile] = {
    FacebookApi.OFFLINE_CONVERSIONS: Profile(
        api=FacebookApi.OFFLINE_CONVERSIONS,
        default_version="v16.0",
        max_events_per_request=2000,
        accepted_count_field="num_processed_entries",
        deduplicates=False,
        sends_event_id=False,
        price_key="price",
        keys_field="match_keys",
        upload_tag=True,
        test_event_code=False,
        action_source=False,
        custom_event_names=False,
        content_details=False,
        server_event_fields=False,
    ),
    FacebookApi.CONVERSIONS_API: Profile(
        api=FacebookApi.CONVERSIONS_API,
        default_version="v26.0",
        max_events_per_request=1000,
        accepted_count_field="events_received",
        deduplicates=True,
        sends_event_id=True,
        price_key="item_price",
        keys_field="user_data",
        upload_tag=False,
        test_event_code=True,
        action_source=True,
        custom_event_names=True,
        content_details=True,
        server_event_fields=True,
    ),
}
