"""Privacy, authentication and transport security, end to end through the real handler.

(a) Known personal data and secrets go through every scenario for both APIs; everything the function
    emits (Powertools JSON logs and EMF metrics on stdout, std logging, responses, parked messages,
    replay's report) is searched for them. The access token may appear only in the Graph request body.
(b) The webhook's Authorization: constant-time comparison, identical refusals, fail closed, one route.
(c) Outbound only over HTTPS with certificate verification (http:// only on loopback), no redirects.
(d) appsecret_proof = HMAC-SHA256(app_secret, access_token) when the secret holds an app_secret.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

import handler.app
from forwarder import replay
from forwarder.deadline import Deadline
from forwarder.graph_client import Accepted, ErrorClass, GraphClient, GraphError
from forwarder.posting import Poster, Tokens
from forwarder.redaction import Redactor
from forwarder.secrets import Credentials
from forwarder.secrets import provider as handler_secrets
from forwarder.settings import SettingsError, load_settings
from localdev.aws import ACCESS_TOKEN, WEBHOOK_AUTHORIZATION
from localdev.graph_stub import Fault, GraphStub
from localdev.lambda_context import LocalContext
from tests.faulty_servers import FaultyGraph, fresh_aws_clients, parked_messages, stop_quickly
from tests.support import api_event, commerce_event, make_batch, put_secret


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with FaultyGraph() as stub:  # the stand-in, stopped without waiting for its poll interval
        yield stub


# --- (a) privacy ---------------------------------------------------------------------------------

EMAIL = "Zebulon.Quackenbush@Example.org"
FIRST_NAME, LAST_NAME = "Zebulon", "Quackenbush"
CITY = "Quillby Marsh"
PHONE = "+1 (415) 555-0199"
PHONE_2 = "+44 20 7946 0958"
IDFA = "7E2B4C1A-90D3-4F5E-8A6B-C0FFEE123456"
CUSTOMER_ID = "cust-7731-ZQ"
MPID = "-6104870218845937416"  # mParticle's user id: a signed 64-bit integer
TOKEN = "EAAGprivacyToken9f8e7d6c"
ROTATED_TOKEN = "EAAGrotatedToken1a2b3c4d"
WEBHOOK = "Basic cHJpdmFjeTp3ZWJob29rLXNlY3JldA=="  # base64("privacy:webhook-secret")
APP_SECRET = "app-secret-5c4b3a2910"
WRONG_ATTEMPT = "Basic Z3Vlc3M6bm90LXRoZS1zZWNyZXQ="

PERSONAL = {
    "email": EMAIL,
    "first name": FIRST_NAME,
    "last name": LAST_NAME,
    "city": CITY,
    "city, normalised": "quillbymarsh",
    "phone": PHONE,
    "phone digits": "14155550199",
    "IDFA": IDFA,
    "customer id": CUSTOMER_ID,
    "mpid": MPID,
    "phone, second": PHONE_2,
    "phone, second, in E.164": "442079460958",
    "ZIP": "94107-1234",
}
SECRETS = {
    "access token": TOKEN,
    "rotated token": ROTATED_TOKEN,
    "webhook authorization": WEBHOOK,
    "webhook credentials": "webhook-secret",
    "app secret": APP_SECRET,
    "appsecret_proof": hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest(),
    "a wrong Authorization tried": WRONG_ATTEMPT,
}


def leaked(text: str, needles: dict[str, str]) -> list[str]:
    """Names of the needles found, compared lower-cased: catches the value and its case changes."""
    text = text.lower()
    return [name for name, needle in needles.items() if needle.lower() in text]


def personal_batch() -> dict[str, Any]:
    batch = make_batch(
        [
            commerce_event("purchase", source_message_id="p-1"),
            commerce_event("add_to_cart", source_message_id="p-2"),
            {"event_type": "custom_event", "data": {"event_name": "Store visit"}},
        ],
        user_identities=[
            {"identity_type": "email", "identity": EMAIL},
            {"identity_type": "customer_id", "identity": CUSTOMER_ID},
            {"identity_type": "mobile_number", "identity": PHONE},
            {"identity_type": "phone_number_2", "identity": PHONE_2},
        ],
        user_attributes={
            "$FirstName": FIRST_NAME,
            "$LastName": LAST_NAME,
            "$City": CITY,
            "$Mobile": PHONE,
            "$Country": "US",
            "$State": "CA",
            "$Zip": PERSONAL["ZIP"],
        },
        device_info={"ios_advertising_id": IDFA},
    )
    return batch | {"mpid": int(MPID)}


@dataclass
class World:
    """One scenario's function, servers and everything the function said."""

    aws: dict[str, str]
    configure: Callable[..., None]
    graph: GraphStub
    monkeypatch: pytest.MonkeyPatch
    api: str
    responses: list[dict[str, Any]] = field(default_factory=list)

    def send(self, event: dict[str, Any] | None = None, timeout: float = 25.0) -> int:
        event = event or api_event(personal_batch(), authorization=WEBHOOK)
        response = handler.app.lambda_handler(event, LocalContext(timeout_seconds=timeout))
        self.responses.append(response)
        return response["statusCode"]


def success(world: World) -> list[int]:
    return [world.send()]


def unauthorized(world: World) -> list[int]:
    return [world.send(api_event(personal_batch(), authorization=WRONG_ATTEMPT))]


def not_json(world: World) -> list[int]:
    return [world.send(api_event(raw=json.dumps(personal_batch())[:-40], authorization=WEBHOOK))]


def too_large(world: World) -> list[int]:
    text = json.dumps(personal_batch())
    return [world.send(api_event(raw=text[:-1] + " " * (6 * 1024 * 1024) + "}", authorization=WEBHOOK))]


def rejected(world: World) -> list[int]:
    # Meta's messages can quote what they received; the token and app secret must be scrubbed.
    world.graph.script(
        Fault.graph_error(100, error_subcode=33, message=f"Invalid parameter for token {TOKEN} ({APP_SECRET})")
    )
    return [world.send()]


def quoting(*values: str) -> str:
    """A Graph error message that quotes what it was sent, as Meta's per-field messages do."""
    return "Invalid parameter: " + "; ".join(f"value '{value}' is not valid" for value in values)


PROOF = SECRETS["appsecret_proof"]


def rejected_quoting_personal_data(world: World) -> list[int]:
    quoted = quoting(IDFA, IDFA.lower(), EMAIL, FIRST_NAME, LAST_NAME, CITY, PHONE, CUSTOMER_ID, TOKEN, PROOF)
    world.graph.script(
        Fault.graph_error(100, error_subcode=33, message=quoted, error_user_msg=quoted, error_user_title=quoted)
    )
    return [world.send()]


def rejected_quoting_secrets_for_a_user_of_many_attributes(world: World) -> list[int]:
    """Hundreds of attributes must not crowd the token or the user's own values out of the redaction."""
    batch = personal_batch()
    batch["user_attributes"] = {f"attribute_{i}": f"value {i:04}" for i in range(600)} | batch["user_attributes"]
    quoted = quoting(TOKEN, PROOF, FIRST_NAME, LAST_NAME, IDFA.lower(), EMAIL)
    world.graph.script(Fault.graph_error(100, error_subcode=33, message=quoted, error_user_msg=quoted))
    return [world.send(api_event(batch, authorization=WEBHOOK))]


def rejected_quoting_the_mpid_sent_as_extern_id(world: World) -> list[int]:
    """The Offline Conversions API takes extern_id unhashed: here the mpid, which Facebook's text may quote."""
    world.configure(FACEBOOK_API=world.api, EXTERNAL_ID_IDENTITY_TYPE="mpid")
    quoted = quoting(MPID, CUSTOMER_ID, PHONE, PHONE_2, PERSONAL["ZIP"])
    world.graph.script(Fault.graph_error(100, error_subcode=33, message=quoted, error_user_msg=quoted))
    return [world.send()]


def replay_rejected_quoting_the_madid(world: World) -> list[int]:
    statuses = rejected(world)
    # Replay only has the rendered events: the madid (unhashed on the Conversions API) is what Meta could quote.
    world.graph.script(Fault.graph_error(100, error_subcode=33, message=quoting(IDFA.lower(), TOKEN, PROOF, EMAIL)))
    return [*statuses, 200 if replay.main([]) == 0 else 1]


def token_refused(world: World) -> list[int]:
    world.graph.script(*[Fault.graph_error(190, message=f"Invalid OAuth access token: {TOKEN}")] * 2)
    return [world.send()]


def transient(world: World) -> list[int]:
    world.graph.script(*[Fault.graph_error(2, status=500, message=f"Unavailable for {TOKEN}")] * 30)
    return [world.send(timeout=7)]


def rotation(world: World) -> list[int]:
    first = world.send()
    rotated = {"access_token": ROTATED_TOKEN, "webhook_authorization": WEBHOOK, "app_secret": APP_SECRET}
    put_secret(world.aws, rotated)
    world.graph.access_token = ROTATED_TOKEN
    return [first, world.send()]


def replayed(world: World) -> list[int]:
    statuses = rejected(world)
    return [*statuses, 200 if replay.main([]) == 0 else 1]  # replay prints its report on stdout


def parking_failure(world: World) -> list[int]:
    world.configure(PARKING_QUEUE_URL=world.aws["PARKING_QUEUE_URL"] + "-missing")
    world.graph.script(Fault.graph_error(100, error_subcode=33))
    return [world.send()]


def secret_unreadable(world: World) -> list[int]:
    world.configure(SECRET_ID="no-such-secret")
    return [world.send()]


def unexpected_error(world: World) -> list[int]:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"an error quoting the input: {EMAIL} {IDFA} {TOKEN}")

    world.monkeypatch.setattr(handler.app, "deliver_batch", fail)
    return [world.send()]


SCENARIOS = {
    "success": (success, [200]),
    "401": (unauthorized, [401]),
    "400": (not_json, [400]),
    "413": (too_large, [413]),
    "422 parked": (rejected, [422]),
    "422 quoting personal data": (rejected_quoting_personal_data, [422]),
    "422 quoting secrets, 600 attributes": (rejected_quoting_secrets_for_a_user_of_many_attributes, [422]),
    "422 quoting the mpid as extern_id": (rejected_quoting_the_mpid_sent_as_extern_id, [422]),
    "replay rejected quoting the madid": (replay_rejected_quoting_the_madid, [422, 1]),
    "502": (token_refused, [502]),
    "503": (transient, [503]),
    "rotation": (rotation, [200, 200]),
    "replay": (replayed, [422, 200]),
    "parking failure": (parking_failure, [503]),
    "secret unreadable": (secret_unreadable, [502]),
    "unexpected error": (unexpected_error, [500]),
}


# What Meta takes unhashed: the Conversions API's madid (the lower-cased IDFA), the Offline Conversions API's
# extern_id (the customer id, or the mpid when EXTERNAL_ID_IDENTITY_TYPE says so).
UNHASHED = {("user_data", "madid"): {IDFA.lower()}, ("match_keys", "extern_id"): {CUSTOMER_ID, MPID}}


def without_unhashed(event: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The event without the values Meta requires unhashed, and those values (each checked to be the expected one)."""
    event = copy.deepcopy(event)
    values = []
    for (field_name, key), allowed in UNHASHED.items():
        if (value := (event.get(field_name) or {}).pop(key, None)) is not None:
            assert value in allowed, (key, value)
            values.append(value)
    return event, values


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_personal_data_or_secret_leaves_except_to_facebook(
    scenario, api, aws, function_env, graph, monkeypatch, captured
):
    put_secret(aws, {"access_token": TOKEN, "webhook_authorization": WEBHOOK, "app_secret": APP_SECRET})
    graph.access_token = TOKEN
    function_env(FACEBOOK_API=api)
    world = World(aws, function_env, graph, monkeypatch, api)
    run, expected = SCENARIOS[scenario]

    with fresh_aws_clients():
        statuses = run(world)
    assert statuses == expected

    messages = parked_messages(aws)
    parked = []
    for message in messages:
        # What Meta takes unhashed is kept so replay can send it: the Conversions API's madid, the extern_id.
        events = [without_unhashed(event)[0] for event in message.pop("events")]
        parked.append(json.dumps({**message, "events": events}))
    emitted = "\n".join([captured(), *map(json.dumps, world.responses), *parked])
    # The search proves something only if the capture works: Powertools' log lines and EMF blobs are there.
    assert '"message":"batch processed"' in emitted or '"message":"request refused"' in emitted
    assert '"CloudWatchMetrics"' in emitted
    assert leaked(emitted, PERSONAL | SECRETS) == []

    for request in graph.received:
        assert request.query == ""
        body = dict(request.body)
        assert body.pop("access_token") in (TOKEN, ROTATED_TOKEN)
        body.pop("appsecret_proof", None)
        events = [without_unhashed(event)[0] for event in body.pop("data")]
        sent = json.dumps({**body, "data": events})
        assert leaked(sent, PERSONAL | SECRETS) == [], "only hashed keys (and the madid, extern_id) go to Facebook"
    if scenario in ("success", "422 parked", "422 quoting personal data", "502", "503", "rotation", "replay"):
        assert graph.received, "the scenario should have reached Facebook"
    if scenario == "422 quoting the mpid as extern_id" and api == "offline_conversions":
        assert [event["match_keys"]["extern_id"] for event in graph.received[0].data] == [MPID, MPID]


# --- (b) authentication --------------------------------------------------------------------------

WRONG_VALUES = {
    "missing": None,
    "empty": "",
    "prefix": WEBHOOK_AUTHORIZATION[:-1],
    "half": WEBHOOK_AUTHORIZATION[: len(WEBHOOK_AUTHORIZATION) // 2],
    "longer": WEBHOOK_AUTHORIZATION + "x",
    "trailing space": WEBHOOK_AUTHORIZATION + " ",
    "leading space": " " + WEBHOOK_AUTHORIZATION,
    "other case": WEBHOOK_AUTHORIZATION.swapcase(),
    "scheme only": "Basic",
    "bearer": "Bearer " + WEBHOOK_AUTHORIZATION.removeprefix("Basic "),
    "the access token": ACCESS_TOKEN,
    "non-ASCII": WEBHOOK_AUTHORIZATION + "é😀",
    "very long": WEBHOOK_AUTHORIZATION * 10_000,
}


def raw_call(event: dict[str, Any], timeout: float = 25.0) -> dict[str, Any]:
    return handler.app.lambda_handler(event, LocalContext(timeout_seconds=timeout))


def test_every_wrong_authorization_gets_the_same_401(function_env, graph):
    answers = {name: raw_call(api_event(make_batch(), authorization=value)) for name, value in WRONG_VALUES.items()}
    first = answers["missing"]
    assert first["statusCode"] == 401
    for name, answer in answers.items():
        assert answer == first, f"the refusal for {name!r} differs: it would tell the caller something"
    assert graph.received == []


def test_the_comparison_is_constant_time_over_the_whole_values(function_env, graph, monkeypatch):
    calls = []
    compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert raw_call(api_event(make_batch(), authorization=WRONG_VALUES["prefix"]))["statusCode"] == 401
    assert raw_call(api_event(make_batch()))["statusCode"] == 200
    assert sorted(calls) == sorted(
        [
            (WRONG_VALUES["prefix"].encode(), WEBHOOK_AUTHORIZATION.encode()),
            (WEBHOOK_AUTHORIZATION.encode(), WEBHOOK_AUTHORIZATION.encode()),
        ]
    )


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION", "aUTHORIZATION"])
def test_the_header_name_is_matched_in_any_case(function_env, graph, name):
    event = api_event(make_batch(), authorization=None)
    event["headers"][name] = WEBHOOK_AUTHORIZATION
    assert raw_call(event)["statusCode"] == 200


@pytest.mark.parametrize(
    "event",
    [
        api_event(raw="not json"),
        api_event(raw=""),
        api_event(raw="@@@") | {"isBase64Encoded": True},
        api_event(raw=" " * (6 * 1024 * 1024 + 1)),
    ],
    ids=["not json", "empty", "bad base64", "too large"],
)
def test_an_unauthenticated_caller_learns_nothing_about_its_body(function_env, graph, event):
    event["headers"]["Authorization"] = WRONG_ATTEMPT
    answer = raw_call(event)
    assert answer == raw_call(api_event(make_batch(), authorization=WRONG_ATTEMPT))
    assert answer["statusCode"] == 401


@pytest.mark.parametrize(
    "secret",
    [
        {"access_token": ACCESS_TOKEN},
        {"access_token": ACCESS_TOKEN, "webhook_authorization": ""},
        {"access_token": ACCESS_TOKEN, "webhook_authorization": None},
        {"access_token": ACCESS_TOKEN, "webhook_authorization": []},
        {"access_token": ACCESS_TOKEN, "webhook_authorization": ["", None]},
    ],
    ids=["absent", "empty", "null", "empty list", "list of nothing"],
)
def test_fails_closed_without_a_webhook_authorization(aws, function_env, graph, secret):
    put_secret(aws, secret)
    for authorization in (None, "", "None", "null", WEBHOOK_AUTHORIZATION):
        assert raw_call(api_event(make_batch(), authorization=authorization))["statusCode"] == 401, authorization
    assert graph.received == []


@pytest.mark.parametrize(
    "value", [12345, [WEBHOOK_AUTHORIZATION, 12345], [WEBHOOK_AUTHORIZATION, "b", "c"], {"a": WEBHOOK_AUTHORIZATION}]
)
def test_a_webhook_authorization_that_is_not_text_lets_nobody_in(aws, function_env, graph, value):
    put_secret(aws, {"access_token": ACCESS_TOKEN, "webhook_authorization": value})
    for authorization in ("12345", WEBHOOK_AUTHORIZATION, None):
        assert raw_call(api_event(make_batch(), authorization=authorization))["statusCode"] == 502
    assert graph.received == []


def test_during_a_rotation_the_old_and_the_new_value_are_both_accepted(aws, function_env, graph):
    """README's rotation: list the new value beside the old, change mParticle, then drop the old one."""
    new = "Basic bmV3OnZhbHVl"
    put_secret(aws, {"access_token": ACCESS_TOKEN, "webhook_authorization": [WEBHOOK_AUTHORIZATION, new]})
    for authorization, status in ((WEBHOOK_AUTHORIZATION, 200), (new, 200), (new + "x", 401), (None, 401)):
        assert raw_call(api_event(make_batch(), authorization=authorization))["statusCode"] == status
    put_secret(aws, {"access_token": ACCESS_TOKEN, "webhook_authorization": new})
    handler_secrets().clear_cache()
    assert raw_call(api_event(make_batch(), authorization=WEBHOOK_AUTHORIZATION))["statusCode"] == 401
    assert raw_call(api_event(make_batch(), authorization=new))["statusCode"] == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "post", "POST"])
def test_no_route_but_post_events(function_env, graph, method):
    for path in ["/events", "/", "/event", "/events/", "/events/replay", "/EVENTS", "/v1/events", "/admin", ""]:
        if (method, path) == ("POST", "/events"):
            continue
        answers = [
            raw_call(api_event(make_batch(), method=method, path=path, authorization=authorization))
            for authorization in (WEBHOOK_AUTHORIZATION, None)  # the valid credential, and none
        ]
        assert [answer["statusCode"] for answer in answers] == [404, 404], (method, path)
        assert answers[0] == answers[1]  # the same with or without credentials
    assert graph.received == []
    assert raw_call(api_event(make_batch()))["statusCode"] == 200  # the control: the one route works


# --- (c) transport -------------------------------------------------------------------------------

SETTINGS_ENV = {"SECRET_ID": "s", "OFFLINE_EVENT_SET_ID": "123", "PARKING_QUEUE_URL": "https://sqs.example/q"}


@pytest.mark.parametrize(
    "url",
    [
        "http://graph.facebook.com",
        "HTTP://graph.facebook.com",
        "http://127.0.0.1.nip.io",
        "http://localhost.attacker.example",
        "http://127.0.0.1@attacker.example",
        "http://attacker.example#@127.0.0.1",
        "http://10.0.0.1",
        "http://0x7f000001",
        "http://[::ffff:8.8.8.8]",
        "ftp://127.0.0.1",
        "file:///etc/passwd",
        "graph.facebook.com",
        "//graph.facebook.com",
        "https://",
        # Anything but scheme://host[:port][/path] (RFC 3986) would post somewhere else than it reads:
        "https://graph.facebook.com?",  # a query, even an empty one
        "https://graph.facebook.com/?debug=all",
        "https://graph.facebook.com#",  # a fragment
        "https://graph.facebook.com/#frag",
        "https://graph.facebook.com/graph;v=1",  # ;params (urlsplit keeps them in the path)
        "https://graph.facebook.com;x",
        "https://graph.facebook.com:https",  # a port that is not a number (urlsplit(...).port raises)
        "https://graph.facebook.com:65536",  # beyond TCP's ports
        "https://graph.facebook.com:99999",
        "https://graph.facebook.com:-1",
        "https://graph.facebook.com:+443",
        "https://graph.facebook.com:0",  # port 0 is reserved: nothing can be reached there
        "https://graph.facebook.com:",  # an empty port
        "https://graph.facebook.com:443:443",
        "https://graph.face book.com",  # whitespace and control characters, which urlsplit drops or keeps
        "https://graph.face\tbook.com",
        "https://graph.facebook.com/graph\nHost: attacker.example",
        "https://graph.facebook.com\r/x",
        "https://graph.facebook.com/\x00",
        "https://graph.facebook.com/\x7f",
        "https://graph.facebook.com/gr\u00a0aph",
        "https://graph.facebook.com/../v16.0",  # dot segments, which requests collapses
        "https://graph.facebook.com/graph/.",
        "https://graph.facebook.com//graph",  # an empty segment
        "https://graph.facebook.com/%2e%2e/graph",  # percent-encoding
        "https://graph.facebook.com\\@attacker.example",  # a backslash (and credentials)
        "https://[::1]attacker.example",  # text after an IPv6 address
        "https://[::1",
        "https://gräph.facebook.com",  # a host that is not in its punycode form
        "https://graph_api.facebook.com",  # not a host name (RFC 1123)
        "https://graph..facebook.com",
        "https://graph.facebook.com./",
        "https://graph.facebook.com/gr[aph]",
    ],
)
def test_settings_refuse_a_graph_url_that_is_not_a_plain_https_or_loopback_base(url):
    assert "FACEBOOK_GRAPH_URL" in graph_url_refusal(url)
    # Nothing of the value is echoed: every refusal says the same, and no host appears in it.
    assert graph_url_refusal(url) == graph_url_refusal("ftp://127.0.0.1")
    assert "facebook.com" not in graph_url_refusal(url)


def graph_url_refusal(url: str) -> str:
    with pytest.raises(SettingsError) as refused:
        load_settings(SETTINGS_ENV | {"FACEBOOK_GRAPH_URL": url})
    return str(refused.value)


@pytest.mark.parametrize(
    "url",
    ["https://graph.facebook.com", "https://graph.facebook.com/", "http://127.0.0.1:8080", "http://localhost:1",
     "http://[::1]:9", "http://127.1.2.3", "https://proxy.example.com/graph", "https://proxy.example.com/graph/",
     "https://proxy.example.com/a-b/c_d/e.f/g~h", "HTTPS://Graph.Facebook.com", "https://graph.facebook.com:443",
     "https://graph.facebook.com:65535", "https://[2001:db8::1]:8443", "https://xn--grph-koa.example",
     "https://10.0.0.1", " https://graph.facebook.com\n"],
)  # fmt: skip
def test_settings_accept_https_and_loopback_http(url):
    # Outer whitespace is trimmed as for every variable, and a trailing slash dropped.
    assert load_settings(SETTINGS_ENV | {"FACEBOOK_GRAPH_URL": url}).graph_url == url.strip().rstrip("/")


def test_a_graph_url_path_prefix_is_kept_before_the_events_path():
    settings = load_settings(SETTINGS_ENV | {"FACEBOOK_GRAPH_URL": "https://proxy.example.com/graph/"})
    urls: list[str] = []

    class Recording:
        def post(self, url: str, body: Any, time_limit: float, redact: Any, count_field: str) -> Accepted:
            urls.append(url)
            return Accepted(1, None, 1.0)

    tokens = Tokens.with_credentials({"default": "s"}, {"default": Credentials("token")})
    poster = Poster(Recording(), settings.graph_url, tokens)  # type: ignore[arg-type]
    poster.post(settings.destination("123"), [{}], Redactor(), Deadline.after(30))
    assert urls == ["https://proxy.example.com/graph/v26.0/123/events"]


def test_the_graph_session_verifies_certificates():
    assert GraphClient().session.verify is True
    assert handler.app.graph_client.session.verify is True
    root = Path(__file__).resolve().parents[2]
    source = "\n".join(
        path.read_text() for folder in ("forwarder", "handler") for path in (root / folder).rglob("*.py")
    )
    for defeat in (r"verify\s*=\s*False", r"CERT_NONE", r"_create_unverified_context", r"disable_warnings"):
        assert not re.search(defeat, source), defeat


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if not openssl:
            pytest.skip("neither the cryptography package nor the openssl CLI is available")
        subprocess.run(  # noqa: S603 - fixed arguments, no input from outside the test
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


@pytest.fixture
def self_signed_graph(tmp_path: Path) -> Iterator[tuple[str, Path, list[dict[str, Any]]]]:
    """An HTTPS server on loopback with a self-signed certificate that answers like Facebook."""
    cert, key = _self_signed(tmp_path)
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            payload = json.dumps({"events_received": len(received[-1].get("data", []))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert, received
    finally:
        stop_quickly(server)


def test_an_unverifiable_certificate_is_a_transient_failure_not_a_delivery(self_signed_graph):
    url, cert, received = self_signed_graph
    events_url = f"{url}/v26.0/123/events"
    with pytest.raises(GraphError) as failure:
        GraphClient().post(events_url, {"access_token": ACCESS_TOKEN, "data": [{}]}, 2, Redactor(), "events_received")
    assert failure.value.error_class is ErrorClass.TRANSIENT
    assert "SSLError" in failure.value.message
    assert received == []
    # The control: the same server, trusted explicitly, answers; so the refusal above was verification.
    trusted = requests.post(events_url, json={"data": [{}]}, verify=str(cert), timeout=5)
    assert trusted.json() == {"events_received": 1}


def test_the_handler_sends_nothing_to_an_unverifiable_graph(self_signed_graph, function_env, graph):
    url, _, received = self_signed_graph
    function_env(FACEBOOK_GRAPH_URL=url)
    answer = raw_call(api_event(make_batch()), 7)
    assert answer["statusCode"] == 503
    assert "SSLError" in json.loads(answer["body"])["error"]
    assert received == []


@pytest.fixture
def redirecting_graph() -> Iterator[tuple[str, GraphStub]]:
    """A Graph URL that answers 307 to another server (which would accept the events)."""
    with GraphStub() as elsewhere:

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(307)
                self.send_header("Location", elsewhere.url + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", elsewhere
        finally:
            stop_quickly(server)


def test_a_redirect_is_not_followed_with_the_token(redirecting_graph, aws, function_env, graph):
    """A 307 keeps the method and body: following it would send the token wherever Location says."""
    url, elsewhere = redirecting_graph
    function_env(FACEBOOK_GRAPH_URL=url)
    answer = raw_call(api_event(make_batch()), 7)
    assert elsewhere.received == []
    assert answer["statusCode"] in (422, 502, 503)  # refused, not delivered, and not lost:
    if answer["statusCode"] == 422:
        assert len(parked_messages(aws)) == 1
    assert "307" in json.loads(answer["body"])["error"]


# --- (d) appsecret_proof -------------------------------------------------------------------------


def test_appsecret_proof_is_sent_when_the_secret_holds_an_app_secret(aws, function_env, graph, api):
    function_env(FACEBOOK_API=api)
    put_secret(aws, {"access_token": ACCESS_TOKEN, "webhook_authorization": WEBHOOK_AUTHORIZATION, "app_secret": "s3"})
    assert raw_call(api_event(make_batch()))["statusCode"] == 200
    [request] = graph.received
    assert request.body["appsecret_proof"] == hmac.new(b"s3", ACCESS_TOKEN.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("app_secret", ["absent", "", None])
def test_no_appsecret_proof_without_an_app_secret(aws, function_env, graph, api, app_secret):
    function_env(FACEBOOK_API=api)
    secret = {"access_token": ACCESS_TOKEN, "webhook_authorization": WEBHOOK_AUTHORIZATION}
    if app_secret != "absent":
        secret["app_secret"] = app_secret
    put_secret(aws, secret)
    assert raw_call(api_event(make_batch()))["statusCode"] == 200
    [request] = graph.received
    assert "appsecret_proof" not in request.body


def test_appsecret_proof_follows_a_rotated_token(aws, function_env, graph):
    put_secret(aws, {"access_token": ACCESS_TOKEN, "webhook_authorization": WEBHOOK_AUTHORIZATION, "app_secret": "s3"})
    assert raw_call(api_event(make_batch()))["statusCode"] == 200
    put_secret(aws, {"access_token": "rotated", "webhook_authorization": WEBHOOK_AUTHORIZATION, "app_secret": "s3"})
    graph.access_token = "rotated"
    assert raw_call(api_event(make_batch()))["statusCode"] == 200
    proofs = [(r.body["access_token"], r.body["appsecret_proof"], r.status) for r in graph.received]
    expected = [
        (token, hmac.new(b"s3", token.encode(), hashlib.sha256).hexdigest(), status)
        for token, status in [(ACCESS_TOKEN, 200), (ACCESS_TOKEN, 400), ("rotated", 200)]
    ]
    assert proofs == expected
