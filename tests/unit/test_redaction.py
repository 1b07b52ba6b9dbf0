"""What reaches answers, logs and parked reasons from Facebook's text: no secret, no personal value."""

from __future__ import annotations

import pytest

from forwarder.batch import read_batch
from forwarder.redaction import MESSAGE_LIMIT, REDACTED, Redactor, raw_values, user_values

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


def test_a_value_cut_by_the_limit_never_survives_in_part():
    secret = "s" * 50
    text = "x" * (MESSAGE_LIMIT - 10) + secret
    cleaned = Redactor([secret])(text)
    assert "ssss" not in cleaned and len(cleaned) <= MESSAGE_LIMIT


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


def test_replay_knows_the_unhashed_values_of_rendered_keys():
    digest = "a" * 64
    keys = {"em": [digest], "madid": IDFA.lower(), "extern_id": "cust-7", "ct": digest}
    assert sorted(raw_values(keys)) == sorted([IDFA.lower(), "cust-7"])
    assert raw_values("not keys") == []
