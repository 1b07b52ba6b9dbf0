"""Custom attributes that are emails or phone numbers never reach Facebook (Meta's terms: no unhashed
personal data in custom_data). Phone validity is libphonenumber's, through `phonenumbers`, not ours."""

from __future__ import annotations

import json

import pytest

from forwarder.custom_data import Screen, custom_data
from localdev.graph_stub import Fault
from tests.faulty_servers import parked_messages
from tests.support import api_event, commerce_event, make_batch

EMAIL, PHONE = "email_in_custom_data", "phone_in_custom_data"

CASES = [
    # (attributes, the user's country, removed keys, reasons)
    ({"customer_email": "jane.doe@example.com"}, None, ["customer_email"], [EMAIL]),
    ({"contact": " Jane.Doe@Example.COM "}, None, ["contact"], [EMAIL]),
    ({"note": "write to Jane <jane.doe@example.com>, please"}, None, ["note"], [EMAIL]),
    ({"jane.doe@example.com": "vip"}, None, ["jane.doe@example.com"], [EMAIL]),
    ({"contact": "jane.doe@example.com\u200b"}, None, ["contact"], [EMAIL]),
    ({"handle": "@janedoe"}, None, [], []),  # a handle, not an address
    ({"note": "2 @ 5.00"}, None, [], []),
    ({"phone": "+1 (415) 555-0199"}, None, ["phone"], [PHONE]),
    ({"contact": "+44 20 7946 0958"}, None, ["contact"], [PHONE]),
    ({"contact": "0044 20 7946 0958"}, None, ["contact"], [PHONE]),
    ({"contact": "020 7946 0958"}, "GB", ["contact"], [PHONE]),  # national, valid in the user's country
    ({"contact": "(415) 555-0199"}, "US", ["contact"], [PHONE]),
    ({"store_phone": "4155550199"}, None, ["store_phone"], [PHONE]),  # no country: the name says it
    ({"order_ref": "4155550199"}, None, [], []),  # no country, no name: taken for an id
    ({"delivery_date": "2026-11-29"}, "US", [], []),
    ({"amount": "1234567.00"}, "US", [], []),
    ({"sku": "123456"}, "US", [], []),
    ({"total": 4155550199}, "US", ["total"], [PHONE]),  # a JSON number can be a phone number too
    ({"total": 1234567.5, "count": 41}, "US", [], []),
    ({"contact": "+1 415\u200b555 0199"}, None, ["contact"], [PHONE]),  # invisible characters inside
    ({"contact": "+1\u2011415\u2011555\u20110199"}, None, ["contact"], [PHONE]),  # non-breaking hyphens
    ({"contact": "jane.doe\uff20example.com"}, None, ["contact"], [EMAIL]),  # a fullwidth at sign
    ({"e\u200bmail": "jane.doe@example.com"}, None, ["e\u200bmail"], [EMAIL]),
    ({"store": "SF-01", "lane": 3, "vip": True}, "US", [], []),
    (
        {"email": "jane.doe@example.com", "mobile": "+1 415 555 0199", "store": "SF-01"},
        "US",
        ["email", "mobile"],
        [EMAIL, PHONE],
    ),
]


@pytest.mark.parametrize(("attributes", "region", "removed", "reasons"), CASES)
def test_emails_and_phone_numbers_are_removed_and_counted(attributes, region, removed, reasons):
    kept, _, counted = custom_data({"custom_attributes": attributes}, Screen(region))
    assert kept == {key: value for key, value in attributes.items() if key not in removed}
    assert counted == reasons


def test_an_attribute_map_without_personal_data_is_not_copied():
    attributes = {"store": "SF-01", "lane": 3}
    assert custom_data({"custom_attributes": attributes}, Screen("US"))[0] is attributes


def test_personal_custom_attributes_are_never_sent_logged_or_parked(aws, function_env, invoke, graph, api, capsys):
    function_env(FACEBOOK_API=api)
    event = commerce_event(
        custom_attributes={"customer_email": "zq@example.org", "mobile": "+1 415 555 0199", "store": "SF-01"}
    )
    graph.script(Fault.graph_error(100, error_subcode=33))  # rejected: the events are parked
    answer = invoke(api_event(make_batch([event], user_attributes={"$country": "US"})))
    assert answer.status == 422
    assert answer.body["adjusted"] == {EMAIL: 1, PHONE: 1}
    [sent] = graph.received[0].data
    custom = sent["custom_data"]
    assert custom["store"] == "SF-01" and "customer_email" not in custom and "mobile" not in custom
    [parked] = parked_messages(aws)
    emitted = json.dumps(parked) + json.dumps(answer.body) + capsys.readouterr().out
    assert "zq@example.org" not in emitted and "555 0199" not in emitted


def test_phone_checks_are_bounded_per_batch_and_then_err_on_the_side_of_privacy():
    screen = Screen("US", checks_left=2)
    attributes = {f"n{i}": "+1 415 555 0199" if i % 2 else "12.345.678" for i in range(6)}
    kept, _, removed = custom_data({"custom_attributes": attributes}, screen)
    assert screen.checks_left == 0
    # The two checked: a valid number removed, a version-like string kept; past the budget, removed unchecked.
    assert kept == {"n0": "12.345.678"} and removed == [PHONE] * 5


@pytest.mark.parametrize(
    ("user_country", "default_country", "removed"),
    [
        (None, "US", True),  # the user has no $country: DEFAULT_COUNTRY reads the national number, as the key does
        ("US", "", True),
        (None, "", False),  # no country at all: a bare national number cannot be told from an id
        ("GB", "US", False),  # the user's country wins: (415) 555-0199 is not a British number
    ],
)
def test_a_national_number_in_custom_data_is_read_in_the_region_the_phone_key_uses(
    function_env, invoke, graph, user_country, default_country, removed
):
    function_env(FACEBOOK_API="conversions_api", DEFAULT_COUNTRY=default_country)
    attributes = {"$country": user_country} if user_country else {}
    event = commerce_event(custom_attributes={"contact": "(415) 555-0199", "store": "SF-01"})
    assert invoke(api_event(make_batch([event], user_attributes=attributes))).status == 200
    [sent] = graph.received[0].data
    assert ("contact" not in sent["custom_data"]) is removed and sent["custom_data"]["store"] == "SF-01"
