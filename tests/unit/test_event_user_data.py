"""An event's own ids for matching: `Facebook.LeadId`, `Facebook.CtwaClid`, `Facebook.PageId` -> Meta's
`user_data.lead_id`, `ctwa_clid`, `page_id` (Conversions API only, never hashed).

Expected values: Meta's customer-information-parameters ("Do not hash" for all three; lead_id an integer id,
page_id and ctwa_clid strings), Meta's SDK (facebook_business serverside `UserData`, which sends each as
given, unhashed: it is the oracle for what is sent), Meta's offline-conversion-file-uploader for what a lead
id may be (an `fbid`: digits within an unsigned 64-bit integer, its example `l:4234567890123` with the
`l:` prefix dropped), and WhatsApp's webhook reference for a ctwa_clid's form. Batches are built by
mParticle's Python SDK (inbound shape) and converted to the webhook's outbound shape.
"""

from __future__ import annotations

from typing import Any

import mparticle as mp
import pytest

from forwarder.redaction import Redactor
from tests.unit.test_sdk_batches import outbound
from tests.unit.test_store_events import MAPPING, commerce, custom, product, rendered, sdk_batch, settings

UserData = pytest.importorskip("facebook_business.adobjects.serverside.user_data").UserData

SHIRT = product(id="sku-1", name="Shirt", price=40.0, quantity=1.0)
# WhatsApp's webhook reference gives this ad click id as an example of `ctwa_clid`.
CTWA_CLID = "Aff-n8ZTODiE79d22KtAwQKj9e_mIEOOj27vDVwFjN80dp4_0N"
SHAPES = {"inbound": lambda body: body, "outbound": outbound}


def purchase(flags: dict[str, Any] | None = None, attributes: dict[str, Any] | None = None) -> mp.CommerceEvent:
    event = commerce("purchase", [SHIRT], flags, transaction_id="T-1", total_amount=40.0)
    if attributes is not None:
        event.custom_attributes = attributes
    return event


def metas_sdk(field: str, value: str) -> Any:
    """What Meta's SDK sends for `field` given `value`: unhashed, as given."""
    return UserData(**{field: value}).normalize()[field]


# (instruction, value as the event gives it, Meta's field, what is sent; None: left out as invalid_<field>)
CASES = [
    ("Facebook.LeadId", "1234567890123456", "lead_id", "1234567890123456"),
    ("Facebook.LeadId", " 7543756327866 ", "lead_id", "7543756327866"),
    ("Facebook.LeadId", "l:4234567890123", "lead_id", "4234567890123"),  # Meta's uploader's own example
    ("Facebook.LeadId", 4234567890123, "lead_id", "4234567890123"),  # a JSON number: exact, as its string
    ("Facebook.LeadId", "18446744073709551615", "lead_id", "18446744073709551615"),  # the largest Facebook id
    ("Facebook.LeadId", "18446744073709551616", "lead_id", None),
    ("Facebook.LeadId", "0", "lead_id", None),
    ("Facebook.LeadId", "-12", "lead_id", None),
    ("Facebook.LeadId", "12a", "lead_id", None),
    ("Facebook.LeadId", 1.5e15, "lead_id", None),  # a float may have lost digits
    ("Facebook.LeadId", True, "lead_id", None),
    ("Facebook.LeadId", "5" * 64, "lead_id", None),  # longer than any Facebook id
    ("Facebook.LeadId", "a" * 64, "lead_id", None),  # hashed: Meta says do not hash, and cannot match it
    ("Facebook.CtwaClid", CTWA_CLID, "ctwa_clid", CTWA_CLID),
    ("Facebook.CtwaClid", f"  {CTWA_CLID}\n", "ctwa_clid", CTWA_CLID),
    ("Facebook.CtwaClid", "A" * 500, "ctwa_clid", "A" * 500),
    ("Facebook.CtwaClid", "A" * 501, "ctwa_clid", None),
    ("Facebook.CtwaClid", "two words", "ctwa_clid", None),
    ("Facebook.CtwaClid", "clic\u00e9", "ctwa_clid", None),
    ("Facebook.CtwaClid", 12345, "ctwa_clid", None),  # a click id is a string
    ("Facebook.PageId", "102938475610293", "page_id", "102938475610293"),
    ("Facebook.PageId", 102938475610293, "page_id", "102938475610293"),
    ("Facebook.PageId", "l:102938475610293", "page_id", None),  # the prefix is a lead id's only
    ("Facebook.PageId", "my-page", "page_id", None),
]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("where", ["custom_flags", "custom_attributes"])
@pytest.mark.parametrize(("name", "given", "field", "sent"), CASES)
def test_each_id_is_sent_unhashed_as_metas_sdk_sends_it(
    shape: str, where: str, name: str, given: Any, field: str, sent: str | None
) -> None:
    event = purchase(**{"flags" if where == "custom_flags" else "attributes": {name: given}})
    events, skipped, adjusted = rendered(SHAPES[shape](sdk_batch(event)), settings("conversions_api"))
    [rendered_event] = events
    user_data = rendered_event["user_data"]
    assert not skipped
    if sent is None:
        assert field not in user_data
        assert adjusted == {f"invalid_{field}": 1}
    else:
        assert user_data[field] == sent == metas_sdk(field, sent)
        assert not adjusted
    assert user_data["em"]  # beside the user's own keys
    assert name not in rendered_event.get("custom_data", {})  # an instruction, never custom data


@pytest.mark.parametrize("given", [None, "", "  ", []])
def test_an_absent_or_empty_id_is_nothing_to_count(given: Any) -> None:
    events, _, adjusted = rendered(sdk_batch(purchase({"Facebook.LeadId": given})), settings("conversions_api"))
    assert "lead_id" not in events[0]["user_data"]
    assert not adjusted


def test_the_custom_flag_comes_before_the_custom_attribute_and_a_list_gives_its_first() -> None:
    event = purchase({"Facebook.LeadId": ["111", "222"]}, {"Facebook.LeadId": "333", "store": "SF-01"})
    [sent] = rendered(sdk_batch(event), settings("conversions_api"))[0]
    assert sent["user_data"]["lead_id"] == "111"
    assert sent["custom_data"]["store"] == "SF-01"
    assert "Facebook.LeadId" not in sent["custom_data"]


def test_all_three_on_a_custom_event_of_a_chat() -> None:
    flags = {"Facebook.ActionSource": "business_messaging", "Facebook.CtwaClid": CTWA_CLID}
    attributes = {"Facebook.PageId": "102938475610293", "Facebook.LeadId": "4234567890123", "topic": "sofa"}
    event = custom("Appointment Booked", attributes, flags)
    [sent] = rendered(outbound(sdk_batch(event)), settings("conversions_api", CUSTOM_EVENT_MAPPING=MAPPING))[0]
    assert sent["action_source"] == "business_messaging"
    ids = {field: sent["user_data"][field] for field in ("lead_id", "ctwa_clid", "page_id")}
    assert ids == {"lead_id": "4234567890123", "ctwa_clid": CTWA_CLID, "page_id": "102938475610293"}
    assert sent["custom_data"] == {"topic": "sofa"}


def test_each_event_has_its_own_ids_and_the_users_keys_are_shared_unchanged() -> None:
    first = purchase({"Facebook.LeadId": "111"})
    second = commerce("add_to_cart", [SHIRT])
    third = purchase({"Facebook.CtwaClid": CTWA_CLID})
    third.source_message_id = "m-third"
    events = rendered(sdk_batch(first, second, third), settings("conversions_api"))[0]
    assert [{key for key in event["user_data"] if key in ("lead_id", "ctwa_clid")} for event in events] == [
        {"lead_id"},
        set(),
        {"ctwa_clid"},
    ]
    users_keys = [
        {key: value for key, value in event["user_data"].items() if key in ("em", "external_id")} for event in events
    ]
    assert users_keys[0] == users_keys[1] == users_keys[2] and users_keys[0]["em"]
    assert events[1]["user_data"] is not events[0]["user_data"]


def test_the_offline_conversions_api_takes_none_of_them_and_counts_nothing() -> None:
    flags = {"Facebook.LeadId": "111", "Facebook.CtwaClid": "not valid", "Facebook.PageId": "x"}
    event = purchase(flags, {"Facebook.PageId": "222", "store": "SF-01"})
    events, skipped, adjusted = rendered(sdk_batch(event), settings("offline_conversions"))
    [sent] = events
    assert not {"lead_id", "ctwa_clid", "page_id"} & set(sent["match_keys"])
    assert sent["custom_data"] == {"store": "SF-01"}
    assert not skipped and not adjusted


def user_without_keys(*events: Any) -> dict[str, Any]:
    """A batch whose user has no identity or attribute at all: no match key of their own."""
    return {**sdk_batch(*events), "user_identities": {}, "user_attributes": {}}


# (the event's ids, Conversions API: sent with these user_data keys, or skipped)
ALONE = [
    ({"Facebook.LeadId": "4234567890123"}, {"lead_id"}),
    ({"Facebook.CtwaClid": CTWA_CLID}, {"ctwa_clid"}),
    ({"Facebook.CtwaClid": CTWA_CLID, "Facebook.PageId": "102938475610293"}, {"ctwa_clid", "page_id"}),
    ({"Facebook.PageId": "102938475610293"}, None),  # names the business, not the person
    ({"Facebook.LeadId": "not an id"}, None),
    ({}, None),
]


@pytest.mark.parametrize(("flags", "sent_keys"), ALONE)
def test_a_lead_or_click_id_matches_a_user_without_keys(flags: dict[str, str], sent_keys: set[str] | None) -> None:
    other = commerce("add_to_cart", [SHIRT])  # no id of its own: no key at all
    body = user_without_keys(purchase(flags), other)
    events, skipped, _ = rendered(body, settings("conversions_api"))
    if sent_keys is None:
        assert (events, skipped) == ([], {"no_match_key": 2})
    else:
        assert [set(event["user_data"]) for event in events] == [sent_keys]
        assert skipped == {"no_match_key": 1}
    assert rendered(body, settings("offline_conversions"))[:2] == ([], {"no_match_key": 2})


def test_an_id_facebook_quotes_back_is_redacted_from_what_we_log() -> None:
    """They travel unhashed, so an error quoting one must not carry it into a log line or parked reason."""
    flags = {"Facebook.LeadId": "4234567890123", "Facebook.CtwaClid": CTWA_CLID}
    events = rendered(sdk_batch(purchase(flags)), settings("conversions_api"))[0]
    redact = Redactor.for_events(events)
    quoted = f"Invalid parameter: lead 4234567890123 and click '{CTWA_CLID}' are not this dataset's"
    assert "4234567890123" not in redact(quoted) and CTWA_CLID not in redact(quoted)
