"""What reaches answers, logs and parked reasons from Facebook's text: no secret, no personal value."""

from __future__ import annotations

import hashlib

import pytest

from forwarder.batch import read_batch
from forwarder.redaction import MESSAGE_LIMIT, REDACTED, Redactor, user_values

IDFA = "7E2B4C1A-90D3-4F5E-8A6B-C0FFEE123456"


@pytest.mark.parametrize(
    ("values", "text", "expected"),
    [
        ([IDFA], f"madid '{IDFA.lower()}' is not valid", f"madid '{REDACTED}' is not valid"),
        (["Quackenbush"], "ln QUACKENBUSH rejected", f"ln {REDACTED} rejected"),
        (["tok-1", "tok-12345"], "token tok-12345 and tok-1", f"token {REDACTED} and {REDACTED}"),
        ([], "write to zq@example.org now", f"write to {REDACTED} now"),
        ([], "a <zq@example.org>, b", f"a {REDACTED} b"),
        ([], f"device {IDFA} seen", f"device {REDACTED} seen"),
        (["US", "m"], "Invalid parameter for US users", "Invalid parameter for US users"),  # too short to mean anyone
        (["a.b+c*d"], "quoted a.b+c*d here", f"quoted {REDACTED} here"),  # a value is text, not a pattern
        ([], "Object with ID '1234567890' does not exist", "Object with ID '1234567890' does not exist"),
    ],
)
def test_known_values_and_personal_shapes_are_redacted(values, text, expected):
    assert Redactor(values)(text) == expected


@pytest.mark.parametrize(
    ("redactor", "text"),
    [
        (Redactor(secrets=["s" * 50]), "x" * (MESSAGE_LIMIT - 10) + "s" * 50),  # a secret, even glued to a word
        (Redactor(["s" * 50]), "x " * ((MESSAGE_LIMIT - 10) // 2) + "s" * 50),  # a personal value, as a word
    ],
)
def test_a_value_cut_by_the_limit_never_survives_in_part(redactor, text):
    cleaned = redactor(text)
    assert "ssss" not in cleaned and len(cleaned) <= MESSAGE_LIMIT


@pytest.mark.parametrize(
    ("values", "text", "expected"),
    [
        (["Doe"], "Object does not exist for Doe", f"Object does not exist for {REDACTED}"),
        (["Jane"], "user_Jane, Janet", f"user_{REDACTED}, Janet"),
        (["6505551212"], "id 16505551212 and 6505551212", f"id 16505551212 and {REDACTED}"),
    ],
)
def test_a_personal_value_is_found_whole_never_inside_metas_words(values, text, expected):
    assert Redactor(values)(text) == expected


def test_a_huge_message_costs_a_bounded_scan():
    cleaned = Redactor(["never-there"])("@" * 5_000_000)
    assert cleaned == REDACTED


def test_every_raw_value_of_the_user_is_known():
    batch = read_batch(
        {
            "user_identities": [{"identity_type": "other_id_3", "identity": "loyalty-99812"}],
            "user_attributes": {"$Mobile": "+1 415 555 0199", "favourite_store": "Quillby Marsh", "age": 41},
            "device_info": {"ios_advertising_id": IDFA, "android_advertising_id": "gaid-0001-xyz"},
        }
    )
    assert set(user_values(batch.user)) == {
        "loyalty-99812",
        "+1 415 555 0199",
        "Quillby Marsh",
        "41",
        IDFA,
        "gaid-0001-xyz",
    }


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_every_path_knows_the_unhashed_values_of_rendered_keys():
    digest = "a" * 64
    events = [
        {"user_data": {"em": [digest], "madid": IDFA.lower(), "ct": digest}},
        {"match_keys": {"extern_id": "cust-7"}},
    ]
    redactor = Redactor.for_events(events)
    assert redactor.personal == {IDFA.lower(), "cust-7"} and redactor.hashes == {digest}
    assert Redactor.for_events([{"user_data": "not keys"}]).personal == frozenset()


# What the user typed, and Meta's normalised value of which only the hash was sent (Meta's normalisation:
# conversions-api/parameters/customer-information-parameters): the redactor of a path that never saw the raw
# value (the buffered sender, replay) still finds every form Meta may quote.
PHONE, PHONE_SENT = "(650) 555-1212", "16505551212"  # DEFAULT_COUNTRY=US: Meta's ph is digits with the 1
HASHED_FORMS = [
    (PHONE_SENT, "Invalid parameter: ph 16505551212 not valid", "Invalid parameter: ph [redacted] not valid"),
    (PHONE_SENT, "ph '+16505551212' unknown", "ph '[redacted]' unknown"),
    (PHONE_SENT, 'value "1 650 555 1212" refused', 'value "[redacted]" refused'),
    (PHONE_SENT, "phone 001-650-555-1212", "phone [redacted]"),
    (
        "CUST-998877",
        "Invalid parameter: external_id CUST-998877 unknown",
        "Invalid parameter: external_id [redacted] unknown",
    ),
    ("jane.doe@example.com", "em JANE.DOE@EXAMPLE.COM", "em [redacted]"),
    ("sanfrancisco", "ct San Francisco not a city", "ct [redacted] not a city"),
    ("obrien", "ln O'Brien", "ln [redacted]"),
    ("sw1a1aa", "zp SW1A 1AA", "zp [redacted]"),
]


@pytest.mark.parametrize(("normalised", "text", "expected"), HASHED_FORMS)
def test_a_value_sent_hashed_is_found_in_every_form_meta_may_quote(normalised, text, expected):
    redactor = Redactor.for_events([{"user_data": {"ph": [sha256(normalised)], "em": [sha256(normalised)]}}])
    assert redactor(text) == expected


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (PHONE, "ph 6505551212 invalid"),  # the raw value's digits
        (PHONE, "ph (650) 555-1212 invalid"),
        ("+44 20 7946 0958", "ph 00442079460958 invalid"),  # with the international prefix
        ("+44 20 7946 0958", "ph 442079460958 invalid"),
    ],
)
def test_a_raw_value_is_found_as_digits_with_or_without_prefixes(raw, text):
    assert "[redacted]" in Redactor([raw])(text) and not any(c.isdigit() for c in Redactor([raw])(text)[3:])


def test_digests_are_redacted_whatever_their_case():
    text = f"em {sha256('x').upper()} and {sha256('y')}"
    assert Redactor()(text) == "em [redacted] and [redacted]"


def test_ordinary_words_and_ids_stay():
    redactor = Redactor.for_events([{"user_data": {"ph": [sha256(PHONE_SENT)], "ge": [sha256("m")]}}])
    text = "(#100) Invalid parameter: Object with ID '1234567890' does not exist (subcode 2804050)"
    assert redactor(text) == text
