"""The handler end to end: API Gateway event -> moto Secrets Manager -> local Graph stand-in -> status.

Every scenario runs for both Facebook APIs (the `api` fixture), so the matrix is shared, not copied.
"""

from __future__ import annotations

import json
import math

import pytest

from localdev.aws import ACCESS_TOKEN, WEBHOOK_AUTHORIZATION
from localdev.graph_stub import Fault
from tests.support import EVENT_SET_ID, SHORT_INVOCATION, api_event, commerce_event, make_batch, put_secret

LIMIT = {"offline_conversions": 2000, "conversions_api": 1000}
VERSION = {"offline_conversions": "v16.0", "conversions_api": "v26.0"}


def many_events(count: int) -> list[dict]:
    return [commerce_event("add_to_cart", source_message_id=f"m-{i}") for i in range(count)]


def test_delivers_a_purchase_to_the_event_set(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    answer = invoke(api_event(make_batch()))
    assert answer.status == 200, answer.body
    assert answer.body["received"] == 1
    assert answer.body["forwarded"] == 1
    assert answer.body["api"] == api
    [request] = graph.received
    assert request.path == f"/{VERSION[api]}/{EVENT_SET_ID}/events"
    assert request.query == ""  # the token travels in the body, never in the URL
    assert request.body["access_token"] == ACCESS_TOKEN
    assert request.api == api
    [event] = request.body["data"]
    assert event["event_name"] == "Purchase"


@pytest.mark.parametrize("sample", ["purchase.json", "add_to_cart.json", "view_detail.json", "base64_purchase.json"])
def test_each_single_event_sample_is_forwarded(function_env, invoke, graph, api, sample):
    function_env(FACEBOOK_API=api)
    answer = invoke(sample)
    assert answer.status == 200, answer.body
    assert answer.body["forwarded"] == 1
    assert len(graph.events) == 1


@pytest.mark.parametrize("count", [1, 999, 1000, 1001, 2000, 2001, 4500])
def test_splits_batches_at_the_api_limit(function_env, invoke, graph, api, count):
    function_env(FACEBOOK_API=api)
    answer = invoke(api_event(make_batch(many_events(count))))
    assert answer.status == 200, answer.body
    sizes = [len(request.data) for request in graph.received]
    assert len(sizes) == math.ceil(count / LIMIT[api])
    assert max(sizes) <= LIMIT[api]
    assert sum(sizes) == count == answer.body["forwarded"]
    assert [r["events"] for r in answer.body["requests"]] == sizes
    assert all(r["accepted"] == r["events"] for r in answer.body["requests"])


@pytest.mark.parametrize(
    "authorization", [None, "", "Basic wrong", WEBHOOK_AUTHORIZATION + "x", WEBHOOK_AUTHORIZATION.lower()]
)
def test_refuses_a_missing_or_wrong_authorization(function_env, invoke, graph, authorization):
    answer = invoke(api_event(make_batch(), authorization=authorization))
    assert answer.status == 401
    assert "Authorization" in answer.body["error"]
    assert graph.received == []


def test_header_name_is_case_insensitive(function_env, invoke, graph):
    event = api_event(make_batch(), authorization=None)
    event["headers"]["authorization"] = WEBHOOK_AUTHORIZATION
    assert invoke(event).status == 200


def test_fails_closed_when_the_secret_has_no_webhook_authorization(aws, function_env, invoke, graph):
    put_secret(aws, {"access_token": ACCESS_TOKEN})
    for authorization in (WEBHOOK_AUTHORIZATION, "", None):
        answer = invoke(api_event(make_batch(), authorization=authorization))
        assert answer.status == 401
    assert graph.received == []


@pytest.mark.parametrize(
    ("event", "named"),
    [
        (api_event(raw="not json"), "not valid JSON"),
        (api_event(raw="[1, 2]"), "JSON object"),
        (api_event(raw='{"events": {"a": 1}}'), "'events' must be an array"),
        (api_event(raw=""), "empty"),
        (api_event(raw="@@@", base64_body=False) | {"isBase64Encoded": True}, "base64"),
    ],
)
def test_answers_400_naming_the_problem(function_env, invoke, graph, event, named):
    answer = invoke(event)
    assert answer.status == 400
    assert named in answer.body["error"]
    assert graph.received == []


def test_malformed_sample_is_a_400(function_env, invoke):
    answer = invoke("malformed_body.json")
    assert answer.status == 400
    assert "JSON" in answer.body["error"]


def test_refuses_a_body_over_the_limit(function_env, invoke, graph):
    answer = invoke(api_event(raw=" " * (6 * 1024 * 1024 + 1)))
    assert answer.status == 413
    assert "larger than" in answer.body["error"]


def test_rereads_a_rotated_token_once_and_succeeds(aws, function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    assert invoke(api_event(make_batch())).status == 200  # caches the first token
    put_secret(aws, {"access_token": "rotated-token", "webhook_authorization": WEBHOOK_AUTHORIZATION})
    graph.access_token = "rotated-token"
    answer = invoke(api_event(make_batch()))
    assert answer.status == 200, answer.body
    assert answer.body["requests"][0]["attempts"] == 2
    tokens_and_statuses = [(r.body["access_token"], r.status) for r in graph.received]
    assert tokens_and_statuses == [(ACCESS_TOKEN, 200), (ACCESS_TOKEN, 400), ("rotated-token", 200)]


def test_an_invalid_token_even_after_rereading_is_a_502(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    graph.access_token = "the token facebook expects"
    answer = invoke(api_event(make_batch()))
    assert answer.status == 502
    assert "code 190" in answer.body["error"]
    assert ACCESS_TOKEN not in json.dumps(answer.body)


def test_rate_limit_then_success(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    graph.script(Fault.graph_error(17, message="User request limit reached"), Fault.graph_error(80004))
    answer = invoke(api_event(make_batch()))
    assert answer.status == 200, answer.body
    assert answer.body["retries"] == 2
    assert answer.body["requests"][0]["attempts"] == 3


def test_rate_limited_until_time_runs_out_is_a_503_with_retry_after(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    graph.script(*[Fault.graph_error(613, message="Calls to this api have exceeded the rate limit")] * 50)
    answer = invoke(api_event(make_batch()), timeout=SHORT_INVOCATION)
    assert answer.status == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert "code 613" in answer.body["error"]
    assert answer.body["requests"][0]["attempts"] >= 2


def test_invalid_parameter_is_a_422_with_facebooks_message(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    graph.script(
        Fault.graph_error(100, error_subcode=33, message="Invalid parameter", error_user_msg="event_time is too old")
    )
    answer = invoke(api_event(make_batch()))
    assert answer.status == 422
    assert "code 100" in answer.body["error"]
    assert "event_time is too old" in answer.body["error"]
    assert answer.body["requests"][0]["attempts"] == 1


def test_permission_error_is_a_502_and_stops_later_requests(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    graph.script(Fault.graph_error(200, message="Permissions error"))
    answer = invoke(api_event(make_batch(many_events(LIMIT[api] + 1))))
    assert answer.status == 502
    assert [r["status"] for r in answer.body["requests"]] == ["permission", "not_attempted"]
    assert len(graph.received) == 1  # nothing was sent after the permission error


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=502, body="<html><body>Bad Gateway</body></html>"),
        Fault(status=500, body=""),
        Fault(status=200, body=""),
        Fault(status=503, body={"error": {"message": "Service temporarily unavailable", "code": 2}}),
        Fault(status=400, body={"error": {"message": "Please retry", "code": 99, "is_transient": True}}),
    ],
)
def test_transient_answers_are_retried(function_env, invoke, graph, api, fault):
    function_env(FACEBOOK_API=api)
    graph.script(fault)
    answer = invoke(api_event(make_batch()))
    assert answer.status == 200, answer.body
    assert answer.body["requests"][0]["attempts"] == 2


def test_html_error_page_that_keeps_coming_names_the_content_type(function_env, invoke, graph):
    graph.script(*[Fault(status=502, body="<html>Bad Gateway</html>")] * 50)
    answer = invoke(api_event(make_batch()), timeout=SHORT_INVOCATION)
    assert answer.status == 503
    assert "HTTP 502" in answer.body["error"]
    assert "text/html" in answer.body["error"]


def test_a_slow_facebook_times_out_and_is_retried(function_env, invoke, graph):
    graph.script(Fault(delay=10.0))  # beyond the whole invocation, so beyond any read timeout in it
    answer = invoke(api_event(make_batch()), timeout=SHORT_INVOCATION)
    assert answer.status == 503
    assert "did not answer in time" in answer.body["error"]


def test_connection_refused_is_a_503(function_env, invoke):
    function_env(FACEBOOK_GRAPH_URL="http://127.0.0.1:9")  # discard port: nothing listens
    answer = invoke(api_event(make_batch()), timeout=SHORT_INVOCATION)
    assert answer.status == 503
    assert "could not reach Facebook" in answer.body["error"]


def test_a_missing_secret_is_a_502_for_the_operator(function_env, invoke, monkeypatch):
    monkeypatch.setenv("SECRET_ID", "no-such-secret")
    answer = invoke(api_event(make_batch()))
    assert answer.status == 502
    # The caller is not authenticated yet: the AWS error code, not AWS's text with ids and ARNs.
    assert answer.body["error"] == (
        "Secrets Manager refused the secret (ResourceNotFoundException): check SECRET_ID and its policy"
    )


VALID_SECRET = {"access_token": ACCESS_TOKEN, "webhook_authorization": WEBHOOK_AUTHORIZATION}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("not json", "not valid JSON"),
        (json.dumps({"webhook_authorization": WEBHOOK_AUTHORIZATION}), "no 'access_token'"),
        # SecretBinary is bytes: UTF-8 text holding the documented JSON, or the operator must fix it.
        (b"\xff\xfe leaky binary", "not UTF-8"),
        (json.dumps(VALID_SECRET).encode("utf-16"), "not UTF-8"),  # starts with the UTF-16 BOM, ff fe
        (b"leaky \xc3\x28 truncated sequence", "not UTF-8"),
        (b"leaky text that is not json", "not valid JSON"),
        (b"{leaky: 1}", "not valid JSON"),
        (json.dumps(["leaky"]).encode(), "JSON object"),
        (json.dumps({"webhook_authorization": "leaky"}).encode(), "no 'access_token'"),
    ],
)
def test_a_malformed_secret_is_a_502_naming_the_problem(aws, function_env, invoke, graph, value, named):
    put_secret(aws, value)
    answer = invoke(api_event(make_batch()))
    assert answer.status == 502
    assert "secret" in answer.body["error"]
    assert named in answer.body["error"]
    assert "leaky" not in json.dumps(answer.body)
    assert graph.received == []


@pytest.mark.parametrize(
    "value",
    [
        json.dumps(VALID_SECRET).encode(),
        json.dumps(VALID_SECRET | {"app_secret": "sécret ✓"}, ensure_ascii=False).encode(),
    ],
)
def test_a_binary_secret_of_utf8_json_is_read_like_a_string_one(aws, function_env, invoke, graph, value):
    put_secret(aws, value)
    answer = invoke(api_event(make_batch()))
    assert answer.status == 200, answer.body
    [request] = graph.received
    assert request.body["access_token"] == ACCESS_TOKEN


# Every variable the function validates, with values marked "leaky" where there is a value to leak: the
# answer goes to a caller not yet authenticated, so it names the variable and never quotes the value.
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SECRET_ID", ""),
        ("OFFLINE_EVENT_SET_ID", ""),
        ("OFFLINE_EVENT_SET_ID", "act_leaky_123"),
        ("OFFLINE_EVENT_SET_ID", "\u0661\u0662\u0663"),  # Arabic-Indic digits are not the numeric id
        ("PARKING_QUEUE_URL", ""),
        ("SEND_CCPA_LIMITED_DATA_USE", "leaky-sometimes"),
        ("FACEBOOK_API", "leaky_marketing_api"),
        ("FACEBOOK_API_VERSION", "leaky16"),
        ("FACEBOOK_API_VERSION", "v\u0661\u0666.\u0660"),  # nor are they a version
        ("FACEBOOK_GRAPH_URL", "http://leaky.graph.facebook.com"),
        ("FACEBOOK_GRAPH_URL", "https://user:hunter2-leaky@graph.facebook.com"),
        ("FACEBOOK_GRAPH_URL", "https://graph.facebook.com:leaky"),
        ("FACEBOOK_GRAPH_URL", "https://graph.facebook.com/?leaky=1"),
        ("UPLOAD_TAG", "leaky" * 52),
        ("DEFAULT_CURRENCY", "leaky"),
        ("DEFAULT_CURRENCY", "EURO"),
        ("EVENT_NAME_OVERRIDES", "refund=LeakyRefund"),
        ("EVENT_NAME_OVERRIDES", "checkout=Leaky{Name}"),
        ("EVENT_NAME_OVERRIDES", "checkout=Checkout,leaky-entry"),
        ("EMAIL_IDENTITY_TYPES", "email,leaky_other"),
        ("EXTERNAL_ID_IDENTITY_TYPE", "leaky_id"),
        ("DEFAULT_COUNTRY", "LEAKY"),
        ("DEFAULT_COUNTRY", "XX"),
        ("CUSTOM_EVENT_MAPPING", "Leaky Visit=Leaky{Name}"),
        ("FORWARD_UNMAPPED_CUSTOM_EVENTS", "leaky"),
        ("CUSTOM_EVENT_CURRENCY_ATTRIBUTE", "leaky,currency"),
        ("DEFAULT_ACTION_SOURCE", "leaky_store"),
        ("DEVELOPMENT_BATCHES", "leaky"),
    ],
)
def test_invalid_configuration_is_a_500_naming_the_variable(function_env, invoke, graph, variable, value):
    function_env(**{variable: value})
    answer = invoke(api_event(make_batch()))
    assert answer.status == 500
    error = answer.body["error"]
    assert variable in error
    assert "leaky" not in error.lower()
    if value:
        assert value.lower() not in error.lower()
    assert graph.received == []


@pytest.mark.parametrize("headers", [None, [], "Authorization: x", 42])
def test_headers_that_are_not_an_object_are_a_401(function_env, invoke, graph, headers):
    event = api_event(make_batch())
    event["headers"] = headers
    assert invoke(event).status == 401
    assert graph.received == []


def test_a_batch_with_nothing_to_forward_is_a_200(function_env, invoke, graph):
    for sample in ("empty_batch.json", "non_commerce_batch.json"):
        answer = invoke(sample)
        assert answer.status == 200, answer.body
        assert answer.body["forwarded"] == 0
    assert graph.received == []


def test_multi_event_sample_counts_every_event(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    answer = invoke("multi_event_batch.json")
    assert answer.status == 200, answer.body
    assert answer.body["received"] == answer.body["forwarded"] + sum(answer.body["skipped"].values())
    assert answer.body["skipped"]
    assert answer.body["forwarded"] == len(graph.events)


@pytest.mark.parametrize(("method", "path"), [("GET", "/events"), ("POST", "/other"), ("PUT", "/events")])
def test_only_post_events_is_routed(function_env, invoke, graph, method, path):
    answer = invoke(api_event(make_batch(), method=method, path=path))
    assert answer.status == 404
    assert graph.received == []


def test_fewer_processed_than_sent_is_reported(function_env, invoke, graph):
    graph.script(Fault(status=200, body={"id": "1", "num_processed_entries": 0}))
    answer = invoke(api_event(make_batch()))
    assert answer.body["requests"][0]["accepted"] == 0
    assert answer.body["requests"][0]["events"] == 1


def test_a_token_error_when_the_secret_is_gone_on_reread_is_a_502(aws, function_env, invoke, graph):
    import boto3

    assert invoke(api_event(make_batch())).status == 200  # caches the token
    client = boto3.client("secretsmanager", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    client.delete_secret(SecretId="mparticle-facebook-forwarder", ForceDeleteWithoutRecovery=True)
    graph.access_token = "rotated elsewhere"
    answer = invoke(api_event(make_batch()))
    assert answer.status == 502
    assert "ResourceNotFoundException" in answer.body["error"]


def test_the_conversions_api_is_the_default(aws, function_env, invoke, graph, monkeypatch):
    """Meta shut the Offline Conversions API; without FACEBOOK_API the function speaks the Conversions API."""
    monkeypatch.delenv("FACEBOOK_API")
    answer = invoke(api_event(make_batch()))
    assert answer.status == 200 and answer.body["api"] == "conversions_api"
    [request] = graph.received
    assert request.path == "/v26.0/1234567890/events"
    assert request.body["data"][0]["action_source"] == "physical_store"
