"""Integration fixtures: one moto server per session, a fresh Graph stand-in per test, and invoke helpers.

Tests drive the real `lambda_handler` named in template.yaml with API Gateway proxy events, against
real local HTTP servers; nothing in forwarder/ or handler/ is patched but the AWS SDK's per-read timeout
(`patient_aws_clients`). (tests/conftest.py, for every layer, sets Powertools' environment and the `api`
fixture.)
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from botocore.config import Config

from forwarder import parking, secrets
from forwarder.telemetry import logger
from localdev.aws import moto_server, provision
from localdev.graph_stub import GraphStub
from localdev.lambda_context import LocalContext
from localdev.samples import load_api_event
from tests.faulty_servers import HOLD_SECONDS, reset_aws_clients
from tests.support import EVENT_SET_ID, NOW_MS, Answer

# The function's clients give each SDK attempt 3 s to answer, then resend. moto answers from this process,
# and on a busy machine (a CI runner doing other work) one of its answers can take longer: the resend then
# parks a message twice, or receives again what the lost answer had already taken (hidden for the
# visibility timeout), and a good change fails. Tests give every read as long as a hanging server waits:
# the invocation's deadline still bounds each call in total (tests/integration/test_faults_deadlines.py).
PATIENT = Config(read_timeout=HOLD_SECONDS)
SDK_CONFIGS = [(parking, "_SQS_CONFIG"), (secrets, "_SECRETS_CONFIG")]  # the function's botocore Configs


@pytest.fixture(scope="package", autouse=True)
def patient_aws_clients() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for module, name in SDK_CONFIGS:
            patch.setattr(module, name, getattr(module, name).merge(PATIENT))
        reset_aws_clients()  # clients cached before were made with the function's timeouts
        yield
    reset_aws_clients()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


_TESTS = itertools.count(1)


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh secret, queues and table in the shared moto server (reset between tests), named for this
    test alone: a request an earlier test's client gave up on cannot land in this test's queue."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=HOLD_SECONDS)
    env = provision(moto_endpoint, suffix=f"-{next(_TESTS)}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with GraphStub() as stub:
        yield stub


@pytest.fixture
def function_env(aws: dict[str, str], graph: GraphStub, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Configure the function like the template does; call again with overrides (e.g. FACEBOOK_API)."""
    import handler.app
    from forwarder import secrets

    def configure(**overrides: str) -> None:
        values = {
            "OFFLINE_EVENT_SET_ID": EVENT_SET_ID,
            "FACEBOOK_GRAPH_URL": graph.url,
            "FACEBOOK_API": "offline_conversions",
            "SEND_CCPA_LIMITED_DATA_USE": "never",
            **overrides,
        }
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(handler.app, "_settings", None)
        secrets.provider().clear_cache()  # the same moto endpoint: keep the client, drop cached values

    configure()
    return configure


@pytest.fixture
def invoke() -> Callable[..., Answer]:
    """Call the real lambda_handler; accepts an API Gateway event or the name of a file in events/."""
    from handler.app import lambda_handler

    def call(event: dict[str, Any] | str, timeout: float = 25.0) -> Answer:
        if isinstance(event, str):
            event = load_api_event(event, NOW_MS)
        response = lambda_handler(event, LocalContext(timeout_seconds=timeout))
        body = json.loads(response["body"]) if response.get("body") else {}
        headers = {key: values[-1] for key, values in (response.get("multiValueHeaders") or {}).items()}
        return Answer(response["statusCode"], body, headers | (response.get("headers") or {}))

    return call


@pytest.fixture
def captured(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], str]:
    """All the process printed and logged: the Powertools JSON lines (its handler keeps the stream it
    found at import, so it is given one here), EMF metrics and anything else on stdout and stderr
    (capsys), and every std logging record with all its attributes (caplog)."""
    caplog.set_level(logging.INFO)  # the deployed level (POWERTOOLS_LOG_LEVEL=INFO)
    powertools = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", powertools)

    def read() -> str:
        out, err = capsys.readouterr()
        records = [json.dumps(record.__dict__, default=repr) for record in caplog.records]
        return "\n".join([powertools.getvalue(), out, err, *records])

    return read
