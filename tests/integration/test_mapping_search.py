"""The long searches over read_batch + map_batch + render_events (strategies and invariants in
tests/batch_strategies.py): every property on a large budget, and checks that the batch strategy reaches
what the properties are about, so that none of them holds vacuously.

Pure functions, no servers: they are here rather than in tests/unit for their cost alone (10 to 20 s),
which `make unit` leaves out and `make test` pays. tests/unit/test_mapping_properties.py runs the same
properties on a small budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings

from forwarder.settings import Settings
from localdev.graph_stub import META_STANDARD_EVENTS
from tests.batch_strategies import (
    CONFIGS,
    arbitrary_batches,
    check,
    configs,
    emitted,
    json_values,
    nearly_valid_batches,
    valid_batches,
)

THOROUGH = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@THOROUGH
@given(body=json_values, config=configs)
def test_any_json_value(body: Any, config: Settings) -> None:
    check(body, config)


@THOROUGH
@given(body=arbitrary_batches, config=configs)
def test_arbitrary_json_objects(body: dict[str, Any], config: Settings) -> None:
    check(body, config)


@THOROUGH
@given(body=valid_batches, config=configs)
def test_valid_batches(body: dict[str, Any], config: Settings) -> None:
    check(body, config)


@THOROUGH
@given(body=nearly_valid_batches, config=configs)
def test_nearly_valid_batches(body: dict[str, Any], config: Settings) -> None:
    check(body, config)


def reached(condition: Callable[[dict[str, Any]], bool], max_examples: int) -> None:
    """Fails unless the batch strategy generates a batch meeting `condition` within `max_examples`. Only
    whether one exists matters, so the first found is kept as it is (no shrinking, no example database)."""
    find(
        valid_batches,
        condition,
        settings=settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[4]], ids=["offline_conversions", "conversions_api"])
def test_the_batch_strategy_reaches_what_the_properties_check(config: Settings) -> None:
    """Guards against vacuous properties: valid batches do emit priced Purchases with LDU fields."""

    def priced_purchase_with_ldu(body: dict[str, Any]) -> bool:
        return any(
            rendered["event_name"] == "Purchase" and "data_processing_options" in rendered
            for rendered in emitted(body, config)
        )

    reached(priced_purchase_with_ldu, 2000)


def test_the_batch_strategy_reaches_custom_events_and_other_action_sources() -> None:
    """Guards against vacuous properties: custom events do come out, under custom names and other sources."""
    config = CONFIGS[8]  # the Conversions API, CUSTOM_EVENT_MAPPING, FORWARD_UNMAPPED_CUSTOM_EVENTS=true
    assert config.forward_unmapped_custom_events and config.api.value == "conversions_api"

    def custom_name(body: dict[str, Any]) -> bool:
        return any(rendered["event_name"] not in META_STANDARD_EVENTS for rendered in emitted(body, config))

    def from_the_phone(body: dict[str, Any]) -> bool:
        return any(rendered["action_source"] == "phone_call" for rendered in emitted(body, config))

    for condition in (custom_name, from_the_phone):
        reached(condition, 5000)
