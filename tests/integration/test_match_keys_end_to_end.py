"""Match keys end to end: the handler and the local Graph stand-in (the rules: tests/unit/test_match_keys.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import NOW_MS, api_event, make_batch
from tests.unit.test_match_keys import IDFA, metas_sdk, sha

SENT_AS = {
    "offline_conversions": {
        "field": "match_keys",
        "email": "email",
        "gen": "gen",
        "external_id": "extern_id",
        "phone": "phone",
        "zip": "zip",
    },
    "conversions_api": {
        "field": "user_data",
        "email": "em",
        "gen": "ge",
        "external_id": "external_id",
        "phone": "ph",
        "zip": "zp",
    },
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


# ---- batches built with mParticle's Python SDK: phones, states, ZIPs and several identities -------------------


def sdk_body(
    identities: dict[str, str], attributes: dict[str, Any], mpid: int | None = None, shape: str = "inbound_map"
) -> dict[str, Any]:
    """A purchase as mParticle's SDK serialises it (inbound: identities as a map), or as the webhook delivers
    it (outbound: identities as an array)."""
    import mparticle as mp

    batch = mp.Batch()
    batch.environment = "production"
    batch.mpid = mpid
    user_identities = mp.UserIdentities()
    for kind, value in identities.items():
        setattr(user_identities, kind, value)
    batch.user_identities = user_identities
    batch.user_attributes = attributes
    action = mp.ProductAction("purchase")
    action.transaction_id, action.total_amount = "T-1", 30.0
    action.products = [mp.Product(id="sku-1", name="Shirt", price=10.0, quantity=3.0)]
    event = mp.CommerceEvent(action)
    event.timestamp_unixtime_ms, event.source_message_id, event.currency_code = NOW_MS - 3_600_000, "m-1", "USD"
    batch.events = [event]
    body = json.loads(json.dumps(mp.ApiClient.sanitize_for_serialization(batch)))
    if shape == "outbound_array":
        types = {"customerid": "customer_id"}
        body["user_identities"] = [
            {"identity_type": types.get(kind, kind), "identity": value}
            for kind, value in body["user_identities"].items()
        ]
    return body


AMERICAN = {
    "identities": {
        "email": "Jane.Doe@Example.com",
        "other": "jane@work.example",
        "customerid": "C-100234",
        "other_id_2": "LOYALTY-77",
        "mobile_number": "(415) 555-0134",
        "phone_number_2": "+1 650 555 1212",
        "phone_number_3": "415.555.0134",  # the mobile number again: sent once
    },
    "attributes": {
        "$FirstName": "Jane",
        "$LastName": "Doe",
        "$Gender": "Female",
        "$City": "San Francisco",
        "$State": "California",
        "$Zip": "94103-1234",
        "$Country": "United States",
        "$Mobile": "+1 (212) 555-0199",
    },
}
AMERICAN_PHONES = [sha("14155550134"), sha("16505551212"), sha("12125550199")]
AMERICAN_EMAILS = [sha("jane.doe@example.com"), sha("jane@work.example")]
AMERICAN_HASHED = {
    "fn": sha("jane"),
    "ln": sha("doe"),
    "ct": sha("sanfrancisco"),
    "st": sha("ca"),
    "country": sha("us"),
}
EXPECTED_AMERICAN = {
    "offline_conversions": {
        "email": AMERICAN_EMAILS,
        "phone": AMERICAN_PHONES,
        "gen": sha("f"),
        "zip": sha("94103"),
        "extern_id": "LOYALTY-77",  # Meta: not hashed on this API
        **AMERICAN_HASHED,
    },
    "conversions_api": {
        "em": AMERICAN_EMAILS,
        "ph": AMERICAN_PHONES,
        "ge": sha("f"),
        "zp": sha("94103"),
        "external_id": sha("LOYALTY-77"),
        **AMERICAN_HASHED,
    },
}


@pytest.mark.parametrize("shape", ["inbound_map", "outbound_array"])
def test_an_sdk_batch_reaches_facebook_with_every_key_and_array(function_env, invoke, graph, api, shape):
    function_env(FACEBOOK_API=api, EMAIL_IDENTITY_TYPES="email,other", EXTERNAL_ID_IDENTITY_TYPE="other_id_2")
    body = sdk_body(AMERICAN["identities"], AMERICAN["attributes"], mpid=7346244611012968789, shape=shape)
    answer = invoke(api_event(body))
    assert answer.status == 200, answer.body
    assert answer.body["forwarded"] == 1
    assert sent_keys(graph, api) == EXPECTED_AMERICAN[api]  # the stand-in accepted it: names, hashes, arrays
    expected_names = ["email", "phone", "fn", "ln", "gen", "ct", "st", "zip", "country", "external_id"]
    assert answer.body["match_keys"] == dict.fromkeys(expected_names, 1)


def test_the_mpid_as_external_id(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api, EXTERNAL_ID_IDENTITY_TYPE="mpid")
    body = sdk_body({"email": "jane@example.com", "customerid": "C-1"}, {}, mpid=-8433569949297563456)
    assert invoke(api_event(body)).status == 200
    keys = sent_keys(graph, api)
    mpid = "-8433569949297563456"
    assert keys[SENT_AS[api]["external_id"]] == (mpid if api == "offline_conversions" else sha(mpid))


def test_a_british_shopper_with_national_numbers(function_env, invoke, graph, api):
    """Store data as a UK till records it: national phone numbers, a postcode, a county; $country says where."""
    function_env(FACEBOOK_API=api)
    identities = {"mobile_number": "07700 900123", "phone_number_2": "020 7946 0958"}
    attributes = {"$Country": "GB", "$Zip": "M1 1AE", "$State": "Greater Manchester", "$Mobile": "+44 7700 900123"}
    assert invoke(api_event(sdk_body(identities, attributes))).status == 200
    keys = sent_keys(graph, api)
    names = SENT_AS[api]
    assert keys[names["phone"]] == [sha("447700900123"), sha("442079460958")]  # the mobile twice: once
    assert keys[names["zip"]] == sha("m11ae")  # Meta's example
    assert keys["st"] == sha("greatermanchester")
    assert keys["country"] == sha("gb")


def test_national_numbers_without_a_country_need_the_default_country(function_env, invoke, graph, api):
    identities = {"email": "jane@example.com", "mobile_number": "(415) 555-0134", "phone_number_2": "+44 20 7946 0958"}
    function_env(FACEBOOK_API=api)
    assert invoke(api_event(sdk_body(identities, {}))).status == 200
    assert sent_keys(graph, api)[SENT_AS[api]["phone"]] == sha("442079460958")  # only the international one
    graph.received.clear()
    function_env(FACEBOOK_API=api, DEFAULT_COUNTRY="US")
    assert invoke(api_event(sdk_body(identities, {}))).status == 200
    assert sent_keys(graph, api)[SENT_AS[api]["phone"]] == [sha("14155550134"), sha("442079460958")]
