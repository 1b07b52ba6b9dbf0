"""One deployment, many mParticle connections and Meta datasets, end to end: the real handler and the sender
function against moto (Secrets Manager, SSM, SQS) and the Graph stand-in, which checks that each dataset
receives its own connection's token.

Three connections beside the default one, each with its own secret, datasets, API and LDU mode: a store feed
fanned out to two datasets (its purchases to a third instead), a call centre on the Offline Conversions API,
a marketplace sending LDU only for opted-out users.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import pytest

from forwarder import connections as connections_module
from forwarder import secrets
from forwarder.connections import main as check_main
from forwarder.replay import replay
from forwarder.settings import load_settings
from localdev.event_source import drain
from localdev.graph_stub import GraphStub
from tests.faulty_servers import parked_messages
from tests.support import api_event, commerce_event, make_batch

SECRETS = {
    "stores-de": {"access_token": "token-stores", "webhook_authorization": "Basic c3RvcmVz"},
    "callcentre": {"access_token": "token-calls", "webhook_authorization": "Basic Y2FsbHM="},
    "marketplace": {"access_token": "token-market", "webhook_authorization": "Basic bWFya2V0"},
}
DOCUMENT = {
    "stores-de": {
        "offline_event_set_id": ["111", "222"],
        "secret_id": "forwarder/connections/stores-de",
        "send_ccpa_limited_data_use": "always",
        "event_datasets": {"Purchase": ["333"]},
    },
    "callcentre": {
        "offline_event_set_id": 444,
        "secret_id": "forwarder/connections/callcentre",
        "facebook_api": "offline_conversions",
    },
    "marketplace": {
        "offline_event_set_id": "555",
        "secret_id": "forwarder/connections/marketplace",
        "send_ccpa_limited_data_use": "opted_out",
    },
}
TOKENS = {"111": "token-stores", "222": "token-stores", "333": "token-stores", "444": "token-calls"}
TOKENS["555"] = "token-market"


def secrets_client(aws: dict[str, str]) -> Any:
    return boto3.client("secretsmanager", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture
def connected(aws: dict[str, str], function_env: Any, graph: GraphStub) -> Any:
    """The three connections' secrets in moto, the document in CONNECTIONS, the stand-in expecting each
    dataset's token; call with overrides (e.g. DELIVERY_MODE, or CONNECTIONS replaced)."""
    client = secrets_client(aws)
    for name, secret in SECRETS.items():
        client.create_secret(Name=f"forwarder/connections/{name}", SecretString=json.dumps(secret))
    graph.tokens = dict(TOKENS)

    def configure(**env: str) -> None:
        function_env(**{"FACEBOOK_API": "conversions_api", "CONNECTIONS": json.dumps(DOCUMENT), **env})

    configure()
    return configure


def post(invoke: Any, connection: str | None, batch: dict[str, Any], authorization: str | None = None) -> Any:
    path = "/events" if connection is None else f"/events/{connection}"
    default = authorization or (SECRETS[connection]["webhook_authorization"] if connection else None)
    event = api_event(batch, path=path, **({"authorization": default} if default else {}))
    if connection is not None:
        event["resource"], event["pathParameters"] = "/events/{connection}", {"connection": connection}
    return invoke(event)


def cart_and_purchase(prefix: str, opted_out: bool = False) -> dict[str, Any]:
    batch = make_batch(
        [
            commerce_event("add_to_cart", source_message_id=f"{prefix}-cart"),
            commerce_event("purchase", source_message_id=f"{prefix}-buy"),
        ]
    )
    if opted_out:
        batch["consent_state"] = {"ccpa": {"data_sale_opt_out": {"consented": True}}}
    return batch


def received(graph: GraphStub) -> dict[str, list[dict[str, Any]]]:
    """Dataset -> the events it acknowledged."""
    found: dict[str, list[dict[str, Any]]] = {}
    for request in graph.received:
        if request.status == 200:
            found.setdefault(request.path.split("/")[2], []).extend(request.data)
    return found


# --- routes, secrets and datasets --------------------------------------------------------------------------


def test_each_connection_sends_with_its_own_token_to_its_own_datasets(connected, invoke, graph):
    assert post(invoke, "stores-de", cart_and_purchase("de")).status == 200
    assert post(invoke, "callcentre", cart_and_purchase("cc")).status == 200
    assert post(invoke, "marketplace", cart_and_purchase("mk")).status == 200
    assert post(invoke, "marketplace", cart_and_purchase("mk-out", opted_out=True)).status == 200
    assert post(invoke, None, cart_and_purchase("default")).status == 200
    by_dataset = received(graph)
    names = {dataset: sorted(e["event_name"] for e in events) for dataset, events in by_dataset.items()}
    assert names == {
        "111": ["AddToCart"],  # fanned out to both datasets...
        "222": ["AddToCart"],
        "333": ["Purchase"],  # ...except purchases, which event_datasets sends elsewhere
        "444": ["AddToCart", "Purchase"],
        "555": ["AddToCart", "AddToCart", "Purchase", "Purchase"],
        "1234567890": ["AddToCart", "Purchase"],
    }
    assert all(request.status == 200 for request in graph.received)  # every dataset got its own token
    assert {request.api for request in graph.received if "/444/" in request.path} == {"offline_conversions"}
    ldu = {
        e.get("event_id", e.get("order_id")): "data_processing_options" in e for es in by_dataset.values() for e in es
    }
    assert ldu["de-cart"] and ldu["de-buy"]  # always
    assert ldu["mk-out-cart"] and not ldu["mk-cart"]  # opted_out: only the opted-out user's
    assert not ldu["default-cart"]


def test_the_summary_names_the_connection_and_its_datasets(connected, invoke, graph):
    answer = post(invoke, "stores-de", cart_and_purchase("de"))
    assert answer.body["connection"] == "stores-de"
    assert {(d["dataset"], d["forwarded"]) for d in answer.body["destinations"]} == {("111", 1), ("222", 1), ("333", 1)}


@pytest.mark.parametrize(
    ("route", "authorization"),
    [
        ("stores-de", SECRETS["callcentre"]["webhook_authorization"]),
        ("callcentre", SECRETS["stores-de"]["webhook_authorization"]),
        ("stores-de", "Basic bXBhcnRpY2xlOmxvY2FsLXdlYmhvb2s="),  # the default connection's
        (None, SECRETS["marketplace"]["webhook_authorization"]),
    ],
)
def test_one_connections_secret_never_opens_another_route(connected, invoke, graph, route, authorization):
    answer = post(invoke, route, cart_and_purchase("x"), authorization=authorization)
    assert answer.status == 401 and graph.received == []


@pytest.mark.parametrize("name", ["stores-fr", "default-x", "a" * 65, "../events", "stores de"])
def test_an_unknown_connection_is_a_404_before_the_body_or_a_secret_is_read(
    connected, invoke, graph, monkeypatch, name
):
    import handler.app

    reads: list[str] = []
    monkeypatch.setattr(handler.app, "get_credentials", lambda *args, **kwargs: reads.append(args[0]))
    event = api_event(raw="not json at all", path=f"/events/{name}")
    event["resource"], event["pathParameters"] = "/events/{connection}", {"connection": name}
    answer = invoke(event)
    assert (answer.status, answer.body) == (404, {"error": "unknown connection"})
    assert reads == [] and graph.received == []


def test_an_invalid_connection_fails_its_own_route_naming_the_field_never_the_value(connected, invoke, graph):
    document = {**DOCUMENT, "marketplace": {**DOCUMENT["marketplace"], "offline_event_set_id": "55x-secret"}}
    connected(CONNECTIONS=json.dumps(document))
    answer = post(invoke, "marketplace", cart_and_purchase("mk"))
    assert answer.status == 500
    assert "connection 'marketplace'" in answer.body["error"] and "offline_event_set_id" in answer.body["error"]
    assert "55x-secret" not in json.dumps(answer.body)
    assert post(invoke, "stores-de", cart_and_purchase("de")).status == 200  # the others keep working
    assert post(invoke, None, cart_and_purchase("default")).status == 200


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_a_document_that_is_not_one_fails_every_route(connected, invoke, graph, document, problem):
    connected(CONNECTIONS=document)
    for route in (None, "stores-de"):
        answer = post(invoke, route, cart_and_purchase("x"))
        assert answer.status == 500 and problem in answer.body["error"]


# --- the document in SSM -----------------------------------------------------------------------------------


def test_connections_come_from_an_ssm_parameter_and_a_change_takes_effect(connected, aws, invoke, graph, monkeypatch):
    ssm = boto3.client("ssm", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    ssm.put_parameter(
        Name="/forwarder/connections", Value=json.dumps({"stores-de": DOCUMENT["stores-de"]}), Type="String"
    )
    connected(CONNECTIONS="", CONNECTIONS_PARAMETER="/forwarder/connections")
    monkeypatch.setattr(connections_module, "PARAMETER_MAX_AGE", 0)  # as if 5 minutes had passed between calls
    assert post(invoke, "stores-de", cart_and_purchase("de")).status == 200
    assert post(invoke, "callcentre", cart_and_purchase("cc")).status == 404
    ssm.put_parameter(Name="/forwarder/connections", Value=json.dumps(DOCUMENT), Type="String", Overwrite=True)
    assert post(invoke, "callcentre", cart_and_purchase("cc")).status == 200  # added without a redeploy


def test_a_missing_parameter_is_a_500_naming_the_variable(connected, invoke):
    connected(CONNECTIONS="", CONNECTIONS_PARAMETER="/forwarder/nowhere")
    answer = post(invoke, None, cart_and_purchase("x"))
    assert answer.status == 500 and "CONNECTIONS_PARAMETER" in answer.body["error"]


# --- buffered, parking and replay per connection -------------------------------------------------------------


def test_buffered_delivery_keeps_each_connections_token_and_datasets(connected, aws, invoke, graph):
    connected(DELIVERY_MODE="buffered")
    assert post(invoke, "stores-de", cart_and_purchase("de")).status == 200
    assert post(invoke, "marketplace", cart_and_purchase("mk")).status == 200
    assert post(invoke, None, cart_and_purchase("default")).status == 200
    callcentre = post(invoke, "callcentre", cart_and_purchase("cc"))  # the Offline Conversions API
    assert callcentre.status == 500 and "connection 'callcentre'" in callcentre.body["error"]
    from handler.sender import lambda_handler

    sqs = boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    invocations = drain(sqs, aws["INGEST_QUEUE_URL"], lambda_handler)
    assert [invocation.failures for invocation in invocations] == [[]]
    assert all(request.status == 200 for request in graph.received)
    assert Counter(dataset for dataset, events in received(graph).items() for _ in events) == Counter(
        {"111": 1, "222": 1, "333": 1, "555": 2, "1234567890": 2}
    )


def test_a_rejected_event_is_replayed_to_its_connections_dataset_with_its_new_token(connected, aws, invoke, graph):
    graph.reject_marked = "BAD"
    batch = make_batch([commerce_event("add_to_cart", source_message_id=i) for i in ("ok-1", "BAD-2")])
    assert post(invoke, "marketplace", batch).status == 200  # ok-1 delivered, BAD-2 parked
    [message] = parked_messages(aws)
    assert message["destination"]["connection"] == "marketplace" and message["destination"]["dataset_id"] == "555"
    rotated = {**SECRETS["marketplace"], "access_token": "token-market-2"}
    secrets_client(aws).put_secret_value(SecretId="forwarder/connections/marketplace", SecretString=json.dumps(rotated))
    graph.tokens["555"], graph.reject_marked = "token-market-2", None
    graph.received.clear()
    secrets.provider().clear_cache()  # replay runs in a process of its own (make replay): nothing cached
    report = replay(load_settings())
    assert report.delivered_events == 1 and report.finished
    [request] = graph.received
    assert request.path == "/v26.0/555/events" and request.body["access_token"] == "token-market-2"
    assert [event["event_id"] for event in request.data] == ["BAD-2"]


def test_replay_keeps_a_set_whose_connection_is_gone(connected, aws, invoke, graph):
    graph.reject_marked = "BAD"
    assert post(invoke, "marketplace", make_batch([commerce_event(source_message_id="BAD-1")])).status == 422
    connected(CONNECTIONS=json.dumps({"stores-de": DOCUMENT["stores-de"]}))
    graph.reject_marked = None
    report = replay(load_settings())
    assert report.kept == {"destination: connection 'marketplace' is not configured now": 1}


# --- checking a document before it is deployed ---------------------------------------------------------------


def test_a_document_is_checked_before_it_is_deployed(tmp_path, capsys, monkeypatch):
    for name in ("CONNECTIONS", "CONNECTIONS_PARAMETER"):
        monkeypatch.delenv(name, raising=False)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(DOCUMENT))
    assert check_main(["--check", str(good)]) == 0
    assert "stores-de: conversions_api, datasets 111, 222, 333" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    broken = {
        **DOCUMENT,
        "callcentre": {"facebook_api": "telepathy"},
        "marketplace": {"send_ccpa_limited_data_use": "sometimes-secret"},
        "stores-de": {"delivery_mode": "buffered"},
    }
    bad.write_text(json.dumps(broken))
    assert check_main(["--check", str(bad)]) == 1
    errors = capsys.readouterr().err
    assert "connection 'callcentre': facebook_api must be one of" in errors
    assert "connection 'marketplace': send_ccpa_limited_data_use must be one of" in errors
    assert "connection 'stores-de': 'delivery_mode' is not a setting a connection may have" in errors
    assert "telepathy" not in errors and "sometimes-secret" not in errors
