"""Fault tools for the integration tests: a Graph stand-in that can also cut or reset a connection or
hold its answer until the test releases it, a loopback AWS endpoint that answers every call with one
scripted error, a proxy in front of moto, closed ports, and moto's SQS clock moved by the test.

Everything listens on 127.0.0.1 only. `reset_aws_clients()` forgets the process-wide AWS clients
(Powertools' SecretsProvider and its cache, the parking SQS client) so a changed endpoint takes effect.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import requests
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base
from moto.sqs import models as moto_sqs

from forwarder.parking import sqs_client
from forwarder.secrets import provider as secrets_provider
from localdev.aws import REGION
from localdev.graph_stub import GraphStub


class Truncated(str):
    """A fault body cut short: Content-Length promises more bytes than are sent, then the connection closes."""


class Reset(str):
    """A fault body never sent: the connection is reset (TCP RST) after the request was read."""


class Trickle(str):
    """A fault body sent one byte at a time, `interval` seconds apart, after the status line and headers
    (or, with `headers_too`, the headers themselves one byte at a time): each read gets a byte in time."""

    interval: float = 0.8
    headers_too: bool = False

    def __new__(cls, body: str, interval: float = 0.8, headers_too: bool = False) -> Trickle:
        trickle = super().__new__(cls, body)
        trickle.interval, trickle.headers_too = interval, headers_too
        return trickle


class Held(str):
    """A fault body held back until the test sets `release` (or `HOLD_SECONDS` pass), then sent as is."""

    release: threading.Event

    def __new__(cls, body: str, release: threading.Event) -> Held:
        held = super().__new__(cls, body)
        held.release = release
        return held


HOLD_SECONDS = 120.0  # what a held answer or a hanging server waits at most: longer than any test needs


def reset(request: BaseHTTPRequestHandler) -> None:
    """Reset the connection (TCP RST: SO_LINGER 0 makes close() send it instead of FIN), never answering."""
    request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.connection.close()
    request.close_connection = True


def trickle(request: BaseHTTPRequestHandler, status: int, body: Trickle) -> None:
    payload = body.encode()
    head = (
        f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()
    if not body.headers_too:
        request.wfile.write(head)
        request.wfile.flush()
        head = b""
    with contextlib.suppress(OSError):  # the client gave up: expected
        for byte in head + payload:
            request.wfile.write(bytes([byte]))
            request.wfile.flush()
            time.sleep(body.interval)
    request.close_connection = True


class FaultyGraph(GraphStub):
    """The Graph stand-in plus faults it cannot script itself: a truncated answer, a reset, a trickle, an
    answer held until the test releases it."""

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        if isinstance(body, Trickle):
            trickle(request, status, body)
            return
        if isinstance(body, Held):
            body.release.wait(HOLD_SECONDS)
            GraphStub._reply(request, status, str(body))
            return
        if isinstance(body, Reset):
            reset(request)
            return
        if isinstance(body, Truncated):
            payload = body.encode()
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload) + 64))
            request.end_headers()
            request.wfile.write(payload)
            request.connection.shutdown(socket.SHUT_RDWR)
            request.close_connection = True
            return
        GraphStub._reply(request, status, body)

    def __exit__(self, *exc: object) -> None:
        stop_quickly(self._server)


class AwsFaultServer:
    """Answers every AWS call with one status and JSON body, e.g. a ThrottlingException; records the targets."""

    def __init__(self, status: int = 400, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.body = json.dumps(body or {"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        self.targets: list[str] = []

    def __enter__(self) -> AwsFaultServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.targets.append(self.headers.get("X-Amz-Target") or "")
                self.send_response(server.status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        stop_quickly(self._server)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


@dataclass
class AwsStep:
    """What the proxy does with one call of an operation: wait before forwarding it (a slow service),
    forward it and wait before answering (the call took effect, its answer comes late), forward it and
    reset the connection (the call took effect, its answer is lost), answer an error instead of
    forwarding, or trickle moto's answer one byte per `trickle` seconds."""

    delay_before: float = 0.0
    delay_after: float = 0.0
    reset_after: bool = False
    error: tuple[int, str] | None = None  # (HTTP status, AWS error code)
    trickle: float = 0.0


class AwsProxy:
    """A loopback AWS endpoint in front of the moto server: forwards every call, except that the calls of
    an operation (`SendMessage`, `GetSecretValue`...) follow the steps scripted for it, one per call.
    `calls` lists every operation in order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: list[str] = []
        self._steps: dict[str, list[AwsStep]] = {}
        # Set when the test's block ends: a call still held is then dropped, never forwarded late, so a
        # hanging SQS cannot write into the queue of a test that runs two minutes later.
        self._closed = threading.Event()

    def script(self, operation: str, *steps: AwsStep) -> None:
        self._steps.setdefault(operation, []).extend(steps)

    def __enter__(self) -> AwsProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                proxy._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        stop_quickly(self._server)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, operation: str) -> int:
        return self.calls.count(operation)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        operation = (request.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        self.calls.append(operation)
        steps = self._steps.get(operation)
        step = steps.pop(0) if steps else AwsStep()
        if self._closed.wait(step.delay_before):
            with contextlib.suppress(OSError):  # the client may have gone already
                reset(request)
            return
        if step.error:
            status, code = step.error
            self._answer(request, status, json.dumps({"__type": code, "message": "scripted"}).encode(), step)
            return
        dropped = ("host", "connection", "content-length", "accept-encoding")
        headers = {key: value for key, value in request.headers.items() if key.lower() not in dropped}
        answer = requests.post(self.upstream + request.path, data=body, headers=headers, timeout=HOLD_SECONDS)
        status, payload = answer.status_code, answer.content
        if step.reset_after:
            reset(request)
            return
        time.sleep(step.delay_after)
        self._answer(request, status, payload, step)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, payload: bytes, step: AwsStep) -> None:
        if step.trickle:
            trickle(request, status, Trickle(payload.decode(), step.trickle))
            return
        with contextlib.suppress(OSError):  # the client may have given up
            request.send_response(status)
            request.send_header("Content-Type", "application/x-amz-json-1.0")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)


def stop_quickly(server: ThreadingHTTPServer) -> None:
    """shutdown() waits for serve_forever's 0.5 s poll; a connection wakes it at once."""
    stopper = threading.Thread(target=server.shutdown, daemon=True)
    stopper.start()
    for _ in range(100):
        with contextlib.suppress(OSError), socket.create_connection(server.server_address[:2], timeout=0.5):
            pass
        stopper.join(0.02)
        if not stopper.is_alive():
            break
    server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reset_aws_clients() -> None:
    base.DEFAULT_PROVIDERS.clear()
    parameters.clear_caches()
    sqs_client.cache_clear()
    secrets_provider.cache_clear()


@contextmanager
def fresh_aws_clients() -> Iterator[None]:
    reset_aws_clients()
    try:
        yield
    finally:
        reset_aws_clients()


MAX_VISIBILITY = 12 * 3600  # SQS's longest visibility timeout, in seconds


class SqsClock:
    """moto's SQS clock, which the test moves forward: moto serves from this process, so a visibility
    timeout runs out when the test says, not after that many seconds of wall time on a machine of any
    speed. Only "now" moves; every other reading of moto's clock is left alone."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ahead = 0.0
        seconds = moto_sqs.unix_time
        monkeypatch.setattr(moto_sqs, "unix_time", lambda dt=None: seconds(dt) + (0.0 if dt else self.ahead))
        monkeypatch.setattr(moto_sqs, "unix_time_millis", lambda dt=None: moto_sqs.unix_time(dt) * 1000.0)

    def advance(self, seconds: float) -> None:
        self.ahead += seconds


@functools.cache
def _moto_sqs(endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)


def parked_messages(env: dict[str, str]) -> list[dict[str, Any]]:
    """Every message in the parking queue, read from moto directly (whatever endpoint the function uses).

    Each message is hidden while the queue is read (for as long as SQS allows: however slow the machine,
    none reappears to be counted twice), so more than ten are all found, then made visible again so replay
    can still receive them.
    """
    sqs = _moto_sqs(env["AWS_ENDPOINT_URL"])
    queue = env["PARKING_QUEUE_URL"]
    found: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    for _ in range(200):  # bounded: 2000 messages is far more than any test parks
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=MAX_VISIBILITY)
        fresh = [message for message in received.get("Messages", []) if message["MessageId"] not in found]
        if not fresh:
            break
        found.update((message["MessageId"], json.loads(message["Body"])) for message in fresh)
        handles.extend(message["ReceiptHandle"] for message in fresh)
    for handle in handles:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=0)
    return list(found.values())


def reasons(message: dict[str, Any]) -> list[str]:
    """Each parked event's reason, in the order of the message's events (the parking format's reason table)."""
    table = [entry["reason"] for entry in message["reasons"]]
    return [table[index] for index in message["event_reasons"]]


@dataclass
class MovedClock:
    """A monotonic clock the test moves, and what runs on it: deadlines (`deadlines`, standing in for a module's
    `Deadline`) and a Graph client whose every answer takes `seconds_per_answer` of it. Verdicts never depend
    on how fast the machine is."""

    seconds_per_answer: float
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    @property
    def deadlines(self) -> Any:
        from forwarder.deadline import Deadline

        clock = self

        class OnTestClock:
            @staticmethod
            def after(seconds: float, _clock: Any = None) -> Deadline:
                return Deadline(clock() + seconds, clock)

        return OnTestClock

    def slow_graph_client(self) -> Any:
        from forwarder.graph_client import GraphClient

        clock = self

        class SlowGraphClient(GraphClient):
            def post(self, *args: Any, **kwargs: Any) -> Any:
                clock.now += clock.seconds_per_answer
                return super().post(*args, **kwargs)

        return SlowGraphClient()
