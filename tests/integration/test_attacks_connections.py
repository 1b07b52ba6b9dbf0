"""Connections tried as an attacker would: routes, documents, secrets and datasets.

Found by a fresh tester's attack, each kept as a regression test stating what the contract promises.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from forwarder.connections import main as check_main
from localdev.event_source import poll_once
from localdev.graph_stub import GraphStub
from tests.faulty_servers import AwsStep
from tests.support import api_event, commerce_event, make_batch

A = {"access_token": "token-a", "webhook_authorization": "Basic YQ=="}
B = {"access_token": "token-b", "webhook_authorization": "Basic Yg=="}
DOCUMENT = {
    "shop-a": {"offline_event_set_id": "111", "secret_id": "forwarder/connections/a"},
    "shop-b": {"offline_event_set_id": "222", "secret_id": "forwarder/connections/b"},
}


@pytest.fixture
def two_connections(aws: dict[str, str], function_env: Any, graph: GraphStub) -> Any:
    client = boto3.client("secretsmanager", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    client.create_secret(Name="forwarder/connections/a", SecretString=json.dumps(A))
    client.create_secret(Name="forwarder/connections/b", SecretString=json.dumps(B))
    graph.tokens = {"111": "token-a", "222": "token-b"}

    def configure(document: Any = DOCUMENT, **env: str) -> None:
        text = document if isinstance(document, str) else json.dumps(document)
        function_env(FACEBOOK_API="conversions_api", CONNECTIONS=text, **env)

    configure()
    return configure


def post(invoke: Any, connection: str | None, authorization: str, batch: Any = None) -> Any:
    path = "/events" if connection is None else f"/events/{connection}"
    event = api_event(
        batch or make_batch([commerce_event("purchase", source_message_id="p-1")]),
        path=path,
        authorization=authorization,
    )
    if connection is not None:
        event["resource"], event["pathParameters"] = "/events/{connection}", {"connection": connection}
    return invoke(event)


DEFAULT_AUTHORIZATION = "Basic bXBhcnRpY2xlOmxvY2FsLXdlYmhvb2s="

# --- an invalid connection must fail its own route only -----------------------------------------------------

BAD_NAMES = ["stores.de", "stores de", "x" * 65, "", "default"]


@pytest.mark.parametrize("bad_name", BAD_NAMES, ids=["dot", "space", "65 chars", "empty", "default"])
def test_a_connection_with_an_invalid_name_fails_only_itself(two_connections, invoke, graph, bad_name):
    """Contract: "An invalid connection: 500 on its own route naming the connection and the field ... while the
    other connections keep working (a document that is not JSON at all: 500 on every route)". A name with a
    dot (a typo for stores-de) makes the document invalid as a whole: the default route and every good
    connection answer 500, and mParticle retries every feed until the operator notices."""
    two_connections({**DOCUMENT, bad_name: {"offline_event_set_id": "333"}})
    assert post(invoke, None, DEFAULT_AUTHORIZATION).status == 200
    assert post(invoke, "shop-a", A["webhook_authorization"]).status == 200


NESTED = "[" * 100_000 + "]" * 100_000


def test_a_deeply_nested_connections_document_is_a_500_naming_the_problem(two_connections, invoke):
    """json.loads raises RecursionError (not ValueError) for a deep document: the handler's catch-all answers
    'internal error (RecursionError)' instead of 'the connections document is not JSON'."""
    two_connections(NESTED)
    answer = post(invoke, None, DEFAULT_AUTHORIZATION)
    assert answer.status == 500
    assert "connections document" in answer.body["error"], answer.body


def test_check_connections_names_a_deeply_nested_document_invalid(tmp_path):
    document = tmp_path / "connections.json"
    document.write_text(NESTED)
    assert check_main(["--check", str(document)]) == 1


# --- a queued or parked message naming one connection and another connection's dataset ----------------------


def _sqs(aws: dict[str, str]) -> Any:
    return boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")


def _retarget(aws: dict[str, str], queue: str, connection: str) -> None:
    """Rewrite every message of `queue` so its destination names `connection` (its dataset left as it is), as
    anyone who may write to the queue could."""
    sqs = _sqs(aws)
    for _ in range(10):
        messages = sqs.receive_message(QueueUrl=aws[queue], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        for message in messages:
            body = json.loads(message["Body"])
            body["destination"]["connection"] = connection
            sqs.send_message(QueueUrl=aws[queue], MessageBody=json.dumps(body))
            sqs.delete_message(QueueUrl=aws[queue], ReceiptHandle=message["ReceiptHandle"])


def _tokens_sent(graph: GraphStub, dataset: str) -> set[str]:
    return {request.body.get("access_token") for request in graph.received if f"/{dataset}/" in request.path}


def test_the_sender_never_sends_one_connections_token_to_anothers_dataset(two_connections, invoke, graph, aws):
    """A message can never steer a token elsewhere: an ingest message for shop-b (dataset 222) rewritten to name
    shop-a must not have the sender post shop-a's token to dataset 222, which shop-a does not send to."""
    two_connections(DELIVERY_MODE="buffered")
    assert post(invoke, "shop-b", B["webhook_authorization"]).status == 200
    _retarget(aws, "INGEST_QUEUE_URL", "shop-a")
    from handler.sender import lambda_handler

    poll_once(_sqs(aws), aws["INGEST_QUEUE_URL"], lambda_handler)
    assert "token-a" not in _tokens_sent(graph, "222")


def test_replay_with_the_parked_destination_never_sends_a_token_to_another_connections_dataset(
    two_connections, invoke, graph, aws
):
    from forwarder.replay import replay
    from forwarder.settings import load_settings

    graph.datasets = {"0"}  # refused whole: parked for shop-b, dataset 222
    assert post(invoke, "shop-b", B["webhook_authorization"]).status == 422
    graph.datasets = None
    _retarget(aws, "PARKING_QUEUE_URL", "shop-a")
    replay(load_settings(), parked_destination=True)
    assert "token-a" not in _tokens_sent(graph, "222")


def test_replay_to_the_configured_destination_keeps_a_retargeted_set_out_of_the_other_connection(
    two_connections, invoke, graph, aws
):
    """Without --parked-destination a set naming shop-a and dataset 222 goes to shop-a's one dataset (111):
    another connection's events land in shop-a's dataset. Recorded as it behaves (documented: "the
    connection's one dataset: a corrected id is the usual cure"); only a rewritten message gets there."""
    from forwarder.replay import replay
    from forwarder.settings import load_settings

    graph.datasets = {"0"}
    assert post(invoke, "shop-b", B["webhook_authorization"]).status == 422
    graph.datasets = None
    graph.received.clear()
    _retarget(aws, "PARKING_QUEUE_URL", "shop-a")
    replay(load_settings())
    assert _tokens_sent(graph, "222") == set()
    assert _tokens_sent(graph, "111") == {"token-a"}  # shop-b's purchase, delivered into shop-a's dataset


# --- hostile path parameters: 404 before the body or a secret, never a 500 -----------------------------------

ODD_ROUTES = [
    ("/events/{connection}", None, "/events/shop-c"),
    ("/events/{connection}", {}, "/events/"),
    ("/events/{connection}", {"connection": 5}, "/events/5"),
    ("/events/{connection}", {"connection": ["shop-a"]}, "/events/shop-a"),
    ("/events/{connection}", {"connection": "x" * 100_000}, "/events/x"),
    ("/events/{connection}", {"connection": "../events"}, "/events/../events"),
    ("/events/{connection}", {"connection": "shop-a\n"}, "/events/shop-a%0A"),
    ("/events/{connection}", {"connection": "ßhop"}, "/events/ßhop"),
    ("/events/{connection}", {"connection": "unknown"}, "/events/unknown"),
    (None, None, "/events/shop-a/extra"),
    (None, None, "/events//shop-a"),
    ("/events/{proxy+}", {"proxy": "shop-a"}, "/events/shop-a"),
]


@pytest.mark.parametrize(("resource", "parameters", "path"), ODD_ROUTES)
def test_odd_routes_are_a_404_before_any_secret_is_read(two_connections, invoke, aws, resource, parameters, path):
    from tests.faulty_servers import AwsProxy, fresh_aws_clients

    with AwsProxy(aws["AWS_ENDPOINT_URL"]) as proxy:
        two_connections(AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy.url)
        event = api_event(make_batch(), path=path, authorization=A["webhook_authorization"])
        event["resource"], event["pathParameters"] = resource, parameters
        event["body"] = "not even JSON"
        with fresh_aws_clients():
            answer = invoke(event)
        assert answer.status == 404, answer.body
        assert proxy.count("GetSecretValue") == 0


# --- the SSM parameter slow, trickling or throttled: every wait bounded by the invocation --------------------

SSM_STEPS = {
    "trickles one byte per 0.5 s": AwsStep(trickle=0.5),
    "throttled": AwsStep(error=(400, "ThrottlingException")),
    "answers after 20 s": AwsStep(delay_before=20.0),
}


@pytest.mark.parametrize("step", list(SSM_STEPS), ids=list(SSM_STEPS))
@pytest.mark.parametrize("route", [None, "shop-a"], ids=["default route", "named route"])
def test_a_slow_or_throttled_connections_parameter_is_a_503_by_the_deadline(
    two_connections, invoke, aws, monkeypatch, step, route
):
    """The answer's status decides, not the clock: a read that is not bounded by the invocation would finish
    (after minutes of trickling, or 20 s) and the request would be answered 200."""
    from forwarder import connections as connections_module
    from tests.faulty_servers import AwsProxy, fresh_aws_clients

    ssm = boto3.client("ssm", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    ssm.put_parameter(Name="/forwarder/connections", Value=json.dumps(DOCUMENT), Type="String")
    with AwsProxy(aws["AWS_ENDPOINT_URL"]) as proxy:
        proxy.script("GetParameter", *[SSM_STEPS[step]] * 4)
        two_connections("", CONNECTIONS_PARAMETER="/forwarder/connections", AWS_ENDPOINT_URL_SSM=proxy.url)
        connections_module._ssm.cache_clear()
        connections_module._parsed.clear()
        with fresh_aws_clients():
            answer = post(invoke, route, A["webhook_authorization"] if route else DEFAULT_AUTHORIZATION)
        connections_module._ssm.cache_clear()
    assert answer.status == 503, answer.body
    assert answer.headers.get("Retry-After")


# --- what the operator reads when a connection's own secret cannot be read -----------------------------------


def test_a_connections_unreadable_secret_is_a_502_naming_the_connection(two_connections, invoke):
    """A connection whose secret_id names a secret that is not there (a typo, or a name outside
    ConnectionSecretsPrefix, which the stack's policy does not cover): the 502 says "check SECRET_ID and its
    policy" while SECRET_ID (the default connection's) is fine; nothing names the connection or its secret_id."""
    two_connections({**DOCUMENT, "shop-c": {"offline_event_set_id": "333", "secret_id": "forwarder/connections/c"}})
    answer = post(invoke, "shop-c", A["webhook_authorization"])
    assert answer.status == 502
    assert "shop-c" in answer.body["error"] or "secret_id" in answer.body["error"], answer.body["error"]


def test_the_sender_with_every_connections_secret_trickling_returns_every_message(two_connections, invoke, aws, graph):
    """Buffered, messages of shop-a, shop-b and the default connection; Secrets Manager trickles every read (a byte
    per 0.5 s: minutes in all). Each read is bounded by its destination's share of the invocation: nothing is
    sent, and exactly the three messages come again (an unbounded read would finish and deliver them)."""
    from handler.sender import lambda_handler
    from tests.faulty_servers import AwsProxy, fresh_aws_clients

    two_connections(DELIVERY_MODE="buffered")
    assert post(invoke, "shop-a", A["webhook_authorization"]).status == 200
    assert post(invoke, "shop-b", B["webhook_authorization"]).status == 200
    assert post(invoke, None, DEFAULT_AUTHORIZATION).status == 200
    with AwsProxy(aws["AWS_ENDPOINT_URL"]) as proxy:
        proxy.script("GetSecretValue", *[AwsStep(trickle=0.5)] * 20)
        two_connections(DELIVERY_MODE="buffered", AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy.url)
        with fresh_aws_clients():
            invocation = poll_once(_sqs(aws), aws["INGEST_QUEUE_URL"], lambda_handler, timeout=12.0)
    assert invocation is not None
    assert (invocation.records, len(invocation.failures)) == (3, 3)
    assert not [request for request in graph.received if request.status == 200]
