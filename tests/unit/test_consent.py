"""Consent: the GDPR gate (REQUIRED_GDPR_PURPOSES, `no_consent`) and the CCPA opt-out as Meta's `opt_out`.

mParticle's shapes: `consent_state.gdpr.<purpose>.consented` and `consent_state.ccpa.data_sale_opt_out.consented`
(JSON reference; the Python SDK's ConsentState builds them here). Meta's `opt_out` is a server-event boolean of
the Conversions API ("If set to true, we only use the event for attribution": Meta's SDK, serverside
`event.py`, which refuses anything but a bool and is the oracle for the field); the Offline Conversions API has
no such field. mParticle's Facebook integration sends its "CCPA Opt Out Status" as `opt_out`.
"""

from __future__ import annotations

from typing import Any

import mparticle as mp
import pytest

from forwarder.settings import SettingsError
from tests.unit.test_sdk_batches import outbound
from tests.unit.test_store_events import (
    MAPPING,
    commerce,
    custom,
    product,
    rendered,
    sdk_batch,
    settings,
)

Event = pytest.importorskip("facebook_business.adobjects.serverside.event").Event

SHIRT = product(id="sku-1", name="Shirt", price=40.0, quantity=1.0)
SHAPES = {"inbound": lambda body: body, "outbound": outbound}


def with_consent(
    body: dict[str, Any], gdpr: dict[str, Any] | None = None, ccpa_opted_out: bool | None = None
) -> dict[str, Any]:
    """`body` with the consent state the Python SDK writes: GDPR purposes (a bool, or a raw state to put
    as it is) and the CCPA data-sale opt-out."""
    consent = mp.ConsentState()
    if ccpa_opted_out is not None:
        consent.ccpa = {"data_sale_opt_out": mp.CCPAConsentState(consented=ccpa_opted_out, timestamp_unixtime_ms=1)}
    states: dict[str, Any] = {}
    for purpose, state in (gdpr or {}).items():
        if isinstance(state, bool):
            states[purpose] = mp.GDPRConsentState(document="v1", consented=state, timestamp_unixtime_ms=1)
    consent.gdpr = states
    written = mp.ApiClient.sanitize_for_serialization(consent)
    written["gdpr"].update({purpose: state for purpose, state in (gdpr or {}).items() if not isinstance(state, bool)})
    return {**body, "consent_state": written}


def store_day() -> dict[str, Any]:
    """A purchase, a screen view and a mapped custom event."""
    visit = custom("Store Visit", {"store": "SF-01"})
    return sdk_batch(commerce("purchase", [SHIRT], total_amount=40.0), mp.ScreenViewEvent(screen_name="Home"), visit)


# (REQUIRED_GDPR_PURPOSES, consent_state.gdpr, forwarded)
GATE = [
    ("", None, True),  # no gate: consent is not asked for
    ("", {"marketing": False}, True),
    ("marketing", {"marketing": True}, True),
    ("Marketing", {"marketing": True}, True),  # purposes matched case-insensitively
    ("marketing", {"MARKETING": True}, True),
    (" marketing , advertising ", {"marketing": True, "advertising": True, "parental": False}, True),
    ("marketing", {"marketing": False}, False),
    ("marketing", {}, False),
    ("marketing", None, False),
    ("marketing,advertising", {"marketing": True}, False),  # every purpose listed
    ("marketing", {"marketing": {"consented": "true"}}, False),  # only the JSON boolean true consents
    ("marketing", {"marketing": {"document": "v1"}}, False),
    ("marketing", {"location_collection": True}, False),
]


@pytest.mark.parametrize("api", ["conversions_api", "offline_conversions"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(("required", "gdpr", "forwarded"), GATE)
def test_the_gdpr_gate(api: str, shape: str, required: str, gdpr: dict[str, Any] | None, forwarded: bool) -> None:
    body = SHAPES[shape](with_consent(store_day(), gdpr) if gdpr is not None else store_day())
    config = settings(api, REQUIRED_GDPR_PURPOSES=required, CUSTOM_EVENT_MAPPING=MAPPING)
    events, skipped, _ = rendered(body, config)
    if forwarded:
        assert [event["event_name"] for event in events] == ["Purchase", "FindLocation"]
        assert skipped == {"not_commerce_event": 1}
    else:
        # Every event of the batch, whatever it is: nothing of a user who did not consent is read further.
        assert (events, skipped) == ([], {"no_consent": 3})


def test_a_development_batch_without_consent_is_still_a_development_batch() -> None:
    body = sdk_batch(commerce("purchase", [SHIRT], total_amount=40.0), environment="development")
    config = settings("conversions_api", REQUIRED_GDPR_PURPOSES="marketing", DEVELOPMENT_BATCHES="skip")
    assert rendered(body, config)[1] == {"development_batch": 1}


@pytest.mark.parametrize(
    ("value", "purposes"),
    [
        ("", frozenset()),
        ("marketing", {"marketing"}),
        (" Marketing ,ADVERTISING,, ", {"marketing", "advertising"}),
        ("location_collection", {"location_collection"}),
    ],
)
def test_required_gdpr_purposes_are_read_in_lower_case(value: str, purposes: set[str]) -> None:
    assert settings(REQUIRED_GDPR_PURPOSES=value).required_gdpr_purposes == purposes


def test_a_purpose_name_past_the_bound_names_the_variable_never_the_value() -> None:
    with pytest.raises(SettingsError, match="REQUIRED_GDPR_PURPOSES") as raised:
        settings(REQUIRED_GDPR_PURPOSES="secret-looking-" + "x" * 300)
    assert "secret-looking" not in str(raised.value)


# ---- opt_out ----------------------------------------------------------------------------------------


def metas_opt_out(value: bool) -> Any:
    """Meta's SDK's `opt_out` for a flag: the field as it writes it."""
    return Event(event_name="Purchase", event_time=1, opt_out=value).normalize()["opt_out"]


# (CCPA data_sale_opt_out consented, SEND_CCPA_LIMITED_DATA_USE, opt_out sent on the Conversions API, LDU sent)
OPT_OUT = [
    (True, "never", True, False),  # opt_out whatever the LDU setting
    (True, "opted_out", True, True),
    (True, "always", True, True),
    (False, "never", None, False),
    (False, "always", None, True),
    (None, "opted_out", None, False),  # no CCPA state: not opted out
]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(("opted_out", "ldu", "opt_out", "with_ldu"), OPT_OUT)
def test_a_ccpa_opt_out_is_metas_opt_out_on_every_event(
    shape: str, opted_out: bool | None, ldu: str, opt_out: bool | None, with_ldu: bool
) -> None:
    body = SHAPES[shape](with_consent(store_day(), ccpa_opted_out=opted_out))
    config = settings("conversions_api", SEND_CCPA_LIMITED_DATA_USE=ldu, CUSTOM_EVENT_MAPPING=MAPPING)
    events = rendered(body, config)[0]
    assert len(events) == 2
    for event in events:
        assert event.get("opt_out") == opt_out
        if opt_out is not None:
            assert event["opt_out"] is metas_opt_out(opt_out)  # the JSON boolean, never "true" or 1
        assert ("data_processing_options" in event) == with_ldu


@pytest.mark.parametrize("opted_out", [True, False])
def test_the_offline_conversions_api_has_no_opt_out(opted_out: bool) -> None:
    body = with_consent(store_day(), ccpa_opted_out=opted_out)
    events = rendered(body, settings("offline_conversions", SEND_CCPA_LIMITED_DATA_USE="opted_out"))[0]
    assert [("opt_out" in event, "data_processing_options" in event) for event in events] == [(False, opted_out)]
