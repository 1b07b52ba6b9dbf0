"""Phone and country examples end to end: a user whose only key was dropped is now matched.

Expected values: Mexico's numbering plan since 2019 (10 digits; the mobile `1` after +52 abolished, as
libphonenumber's data has it), Meta's phone rule ("Remove symbols, letters, and any leading zeros", with the
country code), ISO 3166-1 codes (ru, ps, mk). The rules themselves: tests/unit/test_phones.py and
tests/unit/test_country_names.py. Both identity shapes (the webhook's array, the Events API's map), both APIs,
a commerce and a custom event.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.support import NOW_MS, api_event, commerce_event, make_batch


def sha(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()


STORE_VISIT = {
    "event_type": "custom_event",
    "data": {"event_name": "Store Visit", "timestamp_unixtime_ms": NOW_MS - 60_000, "source_message_id": "msg-visit"},
}


def identities(shape: str, **given: str) -> Any:
    if shape == "inbound":
        return dict(given)
    return [{"identity_type": kind, "identity": value} for kind, value in given.items()]


# (the user's only identity or attributes, the key Facebook receives: neutral name -> normalised value)
EXAMPLES = [
    ({"mobile_number": "+5215541637145"}, {}, ("phone", "525541637145")),  # the old Mexican mobile form: the only key
    ({}, {"$mobile": "+5215541637145"}, ("phone", "525541637145")),
    ({}, {"$mobile": "+52 1 (55) 4163-7145"}, ("phone", "525541637145")),  # another way to write it
    ({}, {"$mobile": "044 55 4163 7145", "$country": "MX"}, ("phone", "525541637145")),  # the old national form
    ({}, {"$mobile": "+001 (616) 954-78 88"}, ("phone", "16169547888")),  # kept by Meta's rule
    ({}, {"$firstname": "Ivan", "$country": "Russia"}, ("country", "ru")),
    ({}, {"$firstname": "Rami", "$country": "Palestine"}, ("country", "ps")),
    ({}, {"$firstname": "Ana", "$country": "Macedonia"}, ("country", "mk")),
]
FIELDS = {
    "conversions_api": {"phone": "ph", "country": "country"},
    "offline_conversions": {"phone": "phone", "country": "country"},
}


@pytest.mark.parametrize("shape", ["outbound", "inbound"])
@pytest.mark.parametrize(("given", "attributes", "key"), EXAMPLES)
def test_the_user_is_matched(
    function_env, invoke, graph, api, shape: str, given: dict[str, str], attributes: dict[str, str], key: Any
) -> None:
    function_env(FACEBOOK_API=api, CUSTOM_EVENT_MAPPING="Store Visit=FindLocation")
    batch = make_batch(
        [commerce_event(), STORE_VISIT],
        user_identities=identities(shape, **given),
        user_attributes=attributes,
        device_info={},
    )
    answer = invoke(api_event(batch))
    assert (answer.status, answer.body["forwarded"], answer.body["skipped"]) == (200, 2, {}), answer.body
    name, normalised = key
    field = FIELDS[api][name]
    for event in graph.events:
        keys = event["user_data" if api == "conversions_api" else "match_keys"]
        assert keys[field] == sha(normalised)
    assert name in answer.body["match_keys"]
