"""A connections document read on its own: each connection's settings are the variables' names in lower case
over the variables; an invalid one keeps an error naming it and the field, never the value; and replay's
choice of destination per connection (docs/configuration.md, "Connections")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from forwarder.connections import Connections, UnknownConnection, parse_connections
from forwarder.destination import Destination
from forwarder.facebook_api import FacebookApi
from forwarder.settings import LduMode, SettingsError, load_settings

ENV = {"SECRET_ID": "default-secret", "OFFLINE_EVENT_SET_ID": "999", "PARKING_QUEUE_URL": "https://sqs/q"}


def parsed(document: Any, **env: str) -> Connections:
    variables = {**ENV, **env}
    return parse_connections(json.dumps(document), variables, load_settings(variables))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"datasets": ("999",), "secret_id": "default-secret", "ldu_mode": LduMode.NEVER}),
        ({"offline_event_set_id": "111"}, {"datasets": ("111",)}),
        ({"offline_event_set_id": 111}, {"datasets": ("111",)}),
        ({"offline_event_set_id": ["111", 222, "111"]}, {"datasets": ("111", "222")}),
        ({"secret_id": "conn/a"}, {"secret_id": "conn/a"}),
        ({"send_ccpa_limited_data_use": "always"}, {"ldu_mode": LduMode.ALWAYS}),
        ({"forward_unmapped_custom_events": True}, {"forward_unmapped_custom_events": True}),
        ({"facebook_api": "offline_conversions"}, {"api": FacebookApi.OFFLINE_CONVERSIONS, "api_version": "v16.0"}),
    ],
)
def test_a_connection_overrides_the_variables_it_names(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    settings = parsed({"a": fields}).get("a")
    assert settings.connection == "a"
    assert {name: getattr(settings, name) for name in expected} == expected


def test_event_datasets_send_events_of_a_name_elsewhere() -> None:
    settings = parsed({"a": {"offline_event_set_id": ["1", "2"], "event_datasets": {"Purchase": ["3", 4]}}}).get("a")
    assert [d.dataset_id for d in settings.destinations("AddToCart")] == ["1", "2"]
    assert [d.dataset_id for d in settings.destinations("Purchase")] == ["3", "4"]
    assert {d.connection for d in settings.destinations("Purchase")} == {"a"}
    assert settings.all_datasets == {"1", "2", "3", "4"}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"offline_event_set_id": "12a"}, "offline_event_set_id"),
        ({"offline_event_set_id": []}, "offline_event_set_id"),
        ({"facebook_api": "graph"}, "facebook_api"),
        ({"send_ccpa_limited_data_use": {"x": 1}}, "send_ccpa_limited_data_use"),
        ({"delivery_mode": "buffered"}, "'delivery_mode' is not a setting a connection may have"),
        ({"facebook_graph_url": "https://evil.example"}, "'facebook_graph_url' is not a setting"),
        ({"Secret_Id": "x"}, "'Secret_Id' is not a setting"),
        ({"event_datasets": {"Purchase": "3"}}, "event_datasets"),
        ({"event_datasets": {"Purchase": ["3x"]}}, "event_datasets"),
        ({"event_datasets": ["3"]}, "event_datasets"),
        ("not an object", "must be an object"),
    ],
)
def test_an_invalid_connection_names_itself_and_the_field(fields: Any, named: str) -> None:
    connections = parsed({"a": fields, "b": {}})
    with pytest.raises(SettingsError) as raised:
        connections.get("a")
    assert str(raised.value).startswith("connection 'a': ") and named in str(raised.value)
    assert "evil" not in str(raised.value) and "12a" not in str(raised.value)
    assert connections.get("b").connection == "b"  # the others keep working


@pytest.mark.parametrize("document", [["a"], "text", 3])
def test_a_document_that_is_not_one_of_connections_is_refused_whole(document: Any) -> None:
    with pytest.raises(SettingsError):
        parsed(document)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"default": {}, "b": {}}', "connection default: a name must be"),
        ('{"a b": {}, "b": {}}', "connection #1: a name must be"),
        ('{"": {}, "b": {}}', "connection #1: a name must be"),
        ('{"a": {"offline_event_set_id": "1"}, "a": {"offline_event_set_id": "2"}, "b": {}}', "named twice"),
    ],
)
def test_a_bad_name_or_a_name_given_twice_fails_only_that_connection(text: str, problem: str) -> None:
    connections = parse_connections(text, ENV, load_settings(ENV))
    errors = [str(found) for found in connections.named.values() if isinstance(found, SettingsError)]
    assert len(errors) == 1 and problem in errors[0]
    assert connections.get("b").connection == "b" and connections.get(None) is connections.default


def test_a_document_nested_too_deep_is_refused_naming_the_problem() -> None:
    with pytest.raises(SettingsError, match="not JSON"):
        parse_connections("[" * 100_000 + "]" * 100_000, ENV, load_settings(ENV))


def test_the_default_and_unknown_names() -> None:
    connections = parsed({"a": {}})
    assert connections.get(None) is connections.get("default") is connections.default
    with pytest.raises(UnknownConnection):
        connections.get("b")
    assert connections.secret_ids == {"default": "default-secret", "a": "default-secret"}


# --- replay: where a parked set goes now ----------------------------------------------------------------------


def parked(dataset: str, connection: str = "a", api: FacebookApi = FacebookApi.CONVERSIONS_API) -> Destination:
    return Destination(api, "v20.0", dataset, test_event_code="TEST1", connection=connection)


CONNECTIONS = {"a": {"offline_event_set_id": "1"}, "fan": {"offline_event_set_id": ["1", "2"]}}


@pytest.mark.parametrize(
    ("recorded", "use_parked", "expected"),
    [
        (parked("1"), False, ("a", "1", "v26.0")),  # still its dataset: sent there, with today's version
        (parked("7"), False, ("a", "1", "v26.0")),  # a wrong id fixed since: the connection's one dataset
        (parked("2", "fan"), False, ("fan", "2", "v26.0")),
        (parked("7", "fan"), False, "not one of connection 'fan''s datasets"),
        (parked("1"), True, ("a", "1", "v20.0")),  # --parked-destination: as recorded...
        (parked("2", "a"), True, "dataset 2 is another connection's"),  # ...but never to another connection's
        (parked("7", "a"), True, ("a", "7", "v20.0")),  # a dataset no connection has now: as recorded
        (parked("1", "gone"), False, "connection 'gone' is not configured now"),
        (parked("1", api=FacebookApi.OFFLINE_CONVERSIONS), False, "rendered for offline_conversions"),
    ],
)
def test_replay_sends_a_set_to_its_connections_dataset_as_configured_now(
    recorded: Destination, use_parked: bool, expected: Any
) -> None:
    connections = parsed(CONNECTIONS)
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            connections.current(recorded, as_recorded=use_parked)
        return
    target = connections.current(recorded, as_recorded=use_parked)
    assert (target.connection, target.dataset_id, target.api_version) == expected
    assert target.test_event_code == "TEST1"  # a test event stays one, a production one never becomes one
