"""Currencies are ISO 4217 codes (Meta: "a valid ISO 4217 three-letter currency code"), not three letters.

Right values are ISO 4217's own (the standard's list as pycountry carries it), never our table's.
"""

from __future__ import annotations

import pycountry
import pytest

from forwarder.currencies import ISO_4217, currency_code
from tests.support import api_event, commerce_event, make_batch

# ISO 4217's codes that are not money a purchase is paid in, which the frozen list leaves out (its module
# docstring says why): written out here from the standard's list, not read from the code under test.
NOT_MONEY = frozenset(
    {"XAU", "XAG", "XPD", "XPT"}  # gold, silver, palladium, platinum
    # bond-market and accounting units: EURCO and its kin, the SDR, the Sucre, ADB's unit, the Arab Accounting Dinar
    | {"XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA", "XAD"}
    | {"XTS", "XXX"}  # for testing; no currency
    | {"BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW"}  # fund codes
)


def test_the_frozen_list_is_iso_4217_as_the_library_has_it():
    """A new or withdrawn ISO 4217 code fails this test when the library is updated: the list cannot rot."""
    assert {currency.alpha_3 for currency in pycountry.currencies} == ISO_4217 | NOT_MONEY
    assert not ISO_4217 & NOT_MONEY


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("USD", "USD"),
        ("usd", "USD"),  # Meta's SDK sends currencies lower-cased; either case names the currency
        (" eur ", "EUR"),
        ("CNY", "CNY"),
        ("JPY", "JPY"),
        ("XOF", "XOF"),  # West African CFA franc: an X code that is money
        ("RMB", None),  # renminbi is the yuan's name; its code is CNY
        ("NTD", None),  # the New Taiwan dollar's code is TWD
        ("UKP", None),  # sterling's code is GBP
        ("XXX", None),  # ISO's "no currency"
        ("XTS", None),  # ISO's testing code
        ("XAU", None),  # gold
        ("BOV", None),  # a fund code, not a currency paid in
        ("US$", None),
        ("US", None),
        ("USDD", None),
        ("", None),
        ("840", None),  # the numeric code is not the alphabetic one Meta asks for
        (840, None),
        (None, None),
        ("U\u200bSD", None),
        ("€", None),
    ],
)
def test_only_iso_4217_codes_of_money_are_currencies(value, expected):
    assert currency_code(value) == expected


def test_a_purchase_in_an_unknown_currency_is_skipped_and_other_events_lose_their_value(
    aws, function_env, invoke, graph, api
):
    function_env(FACEBOOK_API=api)
    batch = make_batch(
        [
            commerce_event("purchase", currency_code="RMB", source_message_id="p-rmb"),
            commerce_event("add_to_cart", currency_code="RMB", source_message_id="c-rmb"),
            commerce_event("purchase", currency_code="cny", source_message_id="p-cny"),
        ]
    )
    answer = invoke(api_event(batch))
    assert answer.status == 200
    assert answer.body["skipped"] == {"invalid_currency": 1}
    cart, purchase = graph.events
    commerce = (lambda event: event) if api == "offline_conversions" else (lambda event: event["custom_data"])
    assert "value" not in commerce(cart) and "currency" not in commerce(cart)
    assert commerce(purchase)["currency"] == "CNY" and commerce(purchase)["value"] == 30.0


@pytest.mark.parametrize("value", ["RMB", "XXX", "US$"])
def test_a_default_currency_that_is_no_currency_is_a_configuration_error(aws, function_env, invoke, graph, value):
    function_env(DEFAULT_CURRENCY=value)
    answer = invoke(api_event(make_batch()))
    assert answer.status == 500
    assert "DEFAULT_CURRENCY" in answer.body["error"] and value not in answer.body["error"]
