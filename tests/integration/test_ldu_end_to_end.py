"""Limited Data Use end to end: Facebook receives the state's code (the rules: tests/unit/test_ldu.py)."""

from __future__ import annotations

import pytest

from tests.support import api_event, make_batch
from tests.unit.test_ldu import GEOLOCATE, USA


@pytest.mark.parametrize(
    ("country", "state", "expected"),
    [
        ("United States", "Minnesota", (USA, 1011)),
        ("USA", " md ", (USA, 1012)),
        ("us", "Rhode  Island", (USA, 1013)),
        ("US", "New Jersey", (USA, 1010)),
        ("US", "New York", (USA, GEOLOCATE)),
        ("Germany", "MN", (GEOLOCATE, GEOLOCATE)),
    ],
)
def test_facebook_receives_the_state_code(function_env, invoke, graph, api, country, state, expected):
    function_env(FACEBOOK_API=api, SEND_CCPA_LIMITED_DATA_USE="always")
    answer = invoke(api_event(make_batch(user_attributes={"$firstname": "Jane", "$country": country, "$state": state})))
    assert answer.status == 200, answer.body
    [event] = graph.events
    assert event["data_processing_options"] == ["LDU"]
    assert (event["data_processing_options_country"], event["data_processing_options_state"]) == expected
