"""Match keys end to end: the handler and the local Graph stand-in (the rules: tests/unit/test_match_keys.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import api_event, make_batch
from tests.unit.test_match_keys import IDFA, metas_sdk, sha

SENT_AS = {
    "offline_conversions": {"field": "match_keys", "email": "email", "gen": "gen", "external_id": "extern_id"},
    "conversions_api": {"field": "user_data", "email": "em", "gen": "ge", "external_id": "external_id"},
}


def sent_keys(graph: Any, api: str) -> dict[str, Any]:
    [event] = graph.events
    return event[SENT_AS[api]["field"]]


@pytest.mark.parametrize(
    ("country", "code"), [("Germany", "de"), ("DEU", "de"), (" united kingdom ", "gb"), ("XX", None), ("ZZ", None)]
)
def test_the_country_facebook_accepts_is_the_iso_code(function_env, invoke, graph, api, country, code):
    function_env(FACEBOOK_API=api)
    answer = invoke(api_event(make_batch(user_attributes={"$firstname": "Jane", "$country": country})))
    assert answer.status == 200, answer.body
    assert answer.body["forwarded"] == 1
    keys = sent_keys(graph, api)
    assert keys.get("country") == (metas_sdk().normalize_field("country", code) if code else None)
    assert keys["fn"] == sha("jane")  # the event still goes, on Jane's other keys


def test_facebook_receives_every_key_without_invisible_characters(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    zwsp, bom, lrm = "\u200b", "\ufeff", "\u200e"
    batch = make_batch(
        user_identities={"email": zwsp + "jane.doe@example.com", "customerid": "C-1024" + bom},
        user_attributes={
            "$firstname": "Ja" + zwsp + "ne",
            "$lastname": lrm + "Doe",
            "$gender": "f" + "\ufe0f",
            "$city": "San\u00adFrancisco",
            "$country": bom + "Germany" + "\x00",
        },
        device_info={"ios_advertising_id": zwsp + IDFA},
    )
    answer = invoke(api_event(batch))
    assert answer.status == 200, answer.body
    keys = sent_keys(graph, api)
    names = SENT_AS[api]
    expected = {
        names["email"]: sha("jane.doe@example.com"),
        "fn": sha("jane"),
        "ln": sha("doe"),
        names["gen"]: sha("f"),
        "ct": sha("sanfrancisco"),
        "country": sha("de"),
        # The Offline Conversions API hashes the advertising id; the Conversions API takes it as it is.
        "madid": sha(IDFA.lower()) if api == "offline_conversions" else IDFA.lower(),
    }
    # The Offline Conversions API takes the external id unhashed (Meta), the Conversions API hashed.
    expected[names["external_id"]] = "C-1024" if api == "offline_conversions" else sha("C-1024")
    assert keys == expected
