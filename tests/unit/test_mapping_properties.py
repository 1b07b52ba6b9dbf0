"""Properties of read_batch + map_batch + render_events over arbitrary and nearly valid batches, on a small
budget so that `make unit` stays quick: the strategies and the invariants are in tests/batch_strategies.py,
and tests/integration/test_mapping_search.py runs the same properties on a large budget.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from forwarder.settings import Settings
from tests.batch_strategies import arbitrary_batches, check, configs, json_values, nearly_valid_batches, valid_batches

# Enough to meet every kind of input and to replay what the example database remembers; the search that
# finds the rare cases is tests/integration/test_mapping_search.py.
QUICK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(body=json_values, config=configs)
def test_any_json_value(body: Any, config: Settings) -> None:
    check(body, config)


@QUICK
@given(body=arbitrary_batches, config=configs)
def test_arbitrary_json_objects(body: dict[str, Any], config: Settings) -> None:
    check(body, config)


@QUICK
@given(body=valid_batches, config=configs)
def test_valid_batches(body: dict[str, Any], config: Settings) -> None:
    check(body, config)


@QUICK
@given(body=nearly_valid_batches, config=configs)
def test_nearly_valid_batches(body: dict[str, Any], config: Settings) -> None:
    check(body, config)
