"""GDPR consent as mParticle batches carry it: `consent_state.gdpr.<purpose>.consented`.

The shape is mParticle's (JSON reference, `consent_state`: the same in the Events API's inbound batches and
the webhook's outbound ones; its example has purposes `location_collection`, consented, and `parental`,
not), and the official Python SDK's (`ConsentState.gdpr`, a map of purpose to `GDPRConsentState`), which
builds the inbound batches here.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from forwarder import batch as batch_module
from forwarder.batch import MAX_USER_ENTRIES, read_batch

# mParticle's JSON reference example, as it documents it.
REFERENCE_CONSENT_STATE = {
    "gdpr": {
        "location_collection": {
            "consented": True,
            "document": "location_collection_agreement_v4",
            "timestamp_unixtime_ms": 1523039002083,
            "location": "17 Cherry Tree Lane",
            "hardware_id": "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702",
        },
        "parental": {
            "consented": False,
            "document": "parental_consent_agreement_v2",
            "timestamp_unixtime_ms": 1523039002083,
            "location": "17 Cherry Tree Lane",
            "hardware_id": "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702",
        },
    },
    "ccpa": {
        "data_sale_opt_out": {
            "consented": True,
            "document": None,
            "timestamp_unixtime_ms": 1523039002083,
            "location": None,
            "hardware_id": None,
        }
    },
}


def purposes(consent_state: Any) -> frozenset[str]:
    return read_batch({"events": [], "consent_state": consent_state}).user.gdpr_consented_purposes


def test_the_json_references_example() -> None:
    user = read_batch({"events": [], "consent_state": REFERENCE_CONSENT_STATE}).user
    assert user.gdpr_consented_purposes == {"location_collection"}
    assert user.ccpa_opted_out


def sdk_batch(consents: dict[str, bool]) -> dict[str, Any]:
    """An inbound batch as mParticle's Python SDK serialises it, through JSON."""
    mp = pytest.importorskip("mparticle")
    batch = mp.Batch()
    batch.environment = "production"
    identities = mp.UserIdentities()
    identities.email = "jane.doe@example.com"
    batch.user_identities = identities
    state = mp.ConsentState()
    state.gdpr = {
        purpose: mp.GDPRConsentState(document="v1", consented=consented, timestamp_unixtime_ms=1)
        for purpose, consented in consents.items()
    }
    batch.consent_state = state
    return dict(json.loads(json.dumps(mp.ApiClient.sanitize_for_serialization(batch))))


def outbound(body: dict[str, Any]) -> dict[str, Any]:
    """The same batch as the webhook delivers it: identities as an array, mParticle's own ids added."""
    converted = copy.deepcopy(body)
    converted["user_identities"] = [
        {"identity_type": kind, "identity": value, "timestamp_unixtime_ms": 1}
        for kind, value in body["user_identities"].items()
    ]
    return converted | {"batch_id": 9001, "mpid": 7, "timestamp_unixtime_ms": 1}


@pytest.mark.parametrize("shape", ["inbound_map", "outbound_array"])
def test_both_shapes_give_the_consented_purposes(shape: str) -> None:
    body = sdk_batch({"marketing": True, "location_collection": False, "analytics": True})
    body = body if shape == "inbound_map" else outbound(body)
    assert read_batch(body).user.gdpr_consented_purposes == {"marketing", "analytics"}


# (consent_state as sent, the purposes consented)
CONSENT_STATES: list[tuple[Any, set[str]]] = [
    ({"gdpr": {"marketing": {"consented": True}}}, {"marketing"}),
    # Purpose names are matched without case (mParticle's SDKs lower-case them; a hand-built batch may not).
    ({"gdpr": {"Marketing": {"consented": True}, " ADS ": {"consented": True}}}, {"marketing", "ads"}),
    ({"gdpr": {"marketing": {"consented": False}}}, set()),
    # Only the JSON boolean true is consent.
    ({"gdpr": {"marketing": {"consented": "true"}}}, set()),
    ({"gdpr": {"marketing": {"consented": 1}}}, set()),
    ({"gdpr": {"marketing": {"consented": None}}}, set()),
    ({"gdpr": {"marketing": {"document": "v1"}}}, set()),
    ({"gdpr": {"marketing": True}}, set()),
    ({"gdpr": {"marketing": [{"consented": True}]}}, set()),
    # The flat object the published JSON schema describes names no purpose.
    ({"gdpr": {"consented": True, "document": "v1"}}, set()),
    ({"gdpr": {"": {"consented": True}, "   ": {"consented": True}}}, set()),
    ({"gdpr": {}}, set()),
    ({"gdpr": None}, set()),
    ({"gdpr": ["marketing"]}, set()),
    ({"gdpr": "marketing"}, set()),
    # CCPA's purpose is not a GDPR one.
    ({"ccpa": {"data_sale_opt_out": {"consented": True}}}, set()),
    ({}, set()),
    (None, set()),
    ([], set()),
]


@pytest.mark.parametrize(("consent_state", "expected"), CONSENT_STATES)
def test_a_purpose_is_consented_only_with_consented_true(consent_state: Any, expected: set[str]) -> None:
    assert purposes(consent_state) == expected


def test_a_batch_without_consent_state_has_no_purposes() -> None:
    assert read_batch({"events": []}).user.gdpr_consented_purposes == frozenset()


def test_purposes_are_read_to_the_user_entries_limit_with_a_warning_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warnings: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        def warning(self, message: str, extra: dict[str, Any]) -> None:
            warnings.append((message, extra))

    monkeypatch.setattr(batch_module, "logger", Recorder())
    gdpr = {f"purpose_{n}": {"consented": True} for n in range(MAX_USER_ENTRIES + 5)}
    consented = purposes({"gdpr": gdpr})
    assert len(consented) == MAX_USER_ENTRIES
    assert "purpose_0" in consented and f"purpose_{MAX_USER_ENTRIES}" not in consented
    assert warnings == [
        ("user entries past the limit ignored", {"field": "consent_state.gdpr", "max_entries": MAX_USER_ENTRIES})
    ]
