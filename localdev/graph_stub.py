"""A local Graph API stand-in: checks each request the way Facebook would.

Used by `make run`, `make local-invoke`, the integration tests and the benchmarks. It answers like
Meta's Offline Conversions API (when the body has `upload_tag`) or Conversions API, with Meta's error
shapes, and can be scripted with faults (`stub.script(...)`) for tests. It listens on loopback unless
given another address (`GraphStub(host=...)`, for a `sam local` container).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast

_PATH = re.compile(r"/v(\d+)\.\d+/(\d+)/events")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Meta: standard event names, exact spelling. The Offline Conversions API took only these; the Conversions
# API also takes custom names ("a standard event or custom event name",
# https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event).
META_STANDARD_EVENTS = {
    "ViewContent", "Search", "AddToCart", "AddToWishlist", "InitiateCheckout", "AddPaymentInfo", "Purchase",
    "Lead", "CompleteRegistration", "Other", "Contact", "CustomizeProduct", "Donate", "FindLocation",
    "Schedule", "StartTrial", "SubmitApplication", "Subscribe",
}  # fmt: skip
MAX_EVENTS = {"offline_conversions": 2000, "conversions_api": 1000}
# Meta's match-key fields per API: what each value must be (SHA-256 hex, or any non-empty string where Meta
# takes it unhashed) and whether an array of them is accepted. Offline Conversions API: marketing-api/
# offline-conversions (email and phone arrays; extern_id and lead_id not hashed). Conversions API:
# conversions-api/parameters/customer-information-parameters ("string or list<string>" for every hashed
# field; external_id "hashing recommended"; madid and the browser and click ids as they are).
HEX, ANY, FBID = "SHA-256 hex", "a non-empty string", "a Facebook id (digits)"
MATCH_KEY_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "offline_conversions": {
        **dict.fromkeys(("email", "phone"), (HEX, True)),
        **dict.fromkeys(
            ("gen", "doby", "dobm", "dobd", "ln", "fn", "fi", "ct", "st", "zip", "country", "madid"), (HEX, False)
        ),
        "extern_id": (ANY, False),
        "lead_id": (FBID, False),
    },
    "conversions_api": {
        **dict.fromkeys(("em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country"), (HEX, True)),
        "external_id": (ANY, True),
        **dict.fromkeys(
            ("madid", "client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "anon_id",
             "page_scoped_user_id", "ctwa_clid", "ig_account_id", "ig_sid"),
            (ANY, False),
        ),
        # Facebook ids (lead_id "integer", page_id "string" on Meta's page; Meta's SDK sends both as strings).
        **dict.fromkeys(("lead_id", "page_id", "fb_login_id"), (FBID, False)),
    },
}  # fmt: skip
_FBID = re.compile(r"[1-9][0-9]{0,19}")
# The fields an event may have; Meta refuses any other ('Unexpected key "advertiser_tracking_enabled" on param
# "$['data'][0]"', facebook-nodejs-business-sdk#258). Conversions API: conversions-api/parameters/server-event
# (Meta's SDK, serverside `event.py`); Offline Conversions API: marketing-api/offline-conversions.
EVENT_FIELDS = {
    "conversions_api": frozenset(
        {
            "event_name", "event_time", "user_data", "custom_data", "event_source_url", "opt_out", "event_id",
            "action_source", "data_processing_options", "data_processing_options_country",
            "data_processing_options_state", "app_data", "referrer_url", "advanced_measurement_table",
            "messaging_channel", "original_event_data", "attribution_data",
        }
    ),
    "offline_conversions": frozenset(
        {
            "event_name", "event_time", "match_keys", "currency", "value", "contents", "content_type", "order_id",
            "item_number", "custom_data", "data_processing_options", "data_processing_options_country",
            "data_processing_options_state",
        }
    ),
}  # fmt: skip
# Meta's original-event-data parameters and their types (conversions-api/parameters/original-event; Meta's SDK,
# serverside `original_event_data.py`).
ORIGINAL_EVENT_FIELDS: dict[str, type] = {"event_name": str, "event_time": int, "order_id": str, "event_id": str}
# custom_data fields that are numbers (conversions-api/parameters/custom-data; Meta's SDK `custom_data.py`).
NUMBER_FIELDS = ("value", "net_revenue", "predicted_ltv")
# Meta's action_source values and how old an event of each may be, in days: 7 ("the event_time can be up to 7
# days before you send an event", conversions-api/parameters/server-event), but 62 for physical_store
# (conversions-api/offline-events); the Offline Conversions API took offline events up to 62 days old.
ACTION_SOURCE_MAX_AGE_DAYS = {
    "physical_store": 62, "phone_call": 7, "chat": 7, "email": 7, "system_generated": 7, "website": 7, "app": 7,
    "business_messaging": 7, "other": 7,
}  # fmt: skip
OFFLINE_MAX_AGE_DAYS = 62
MAX_CUSTOM_EVENT_NAME = 50  # "Custom event names must be strings, and cannot exceed 50 characters" (meta-pixel)
DELIVERY_CATEGORIES = {"in_store", "curbside", "home_delivery"}


@dataclass
class Fault:
    """One scripted answer: an HTTP status and body, a delay, or a dropped connection."""

    status: int = 200
    body: Any = None  # dict -> JSON, str -> sent as is (e.g. HTML), None -> normal processing
    delay: float = 0.0
    drop: bool = False

    @staticmethod
    def graph_error(code: int, status: int = 400, message: str = "scripted", **extra: Any) -> Fault:
        error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "StubTrace", **extra}
        return Fault(status=status, body={"error": error})


@dataclass
class Received:
    """One request as the stand-in received it, and the status it answered."""

    path: str
    api: str
    body: dict[str, Any]
    query: str
    status: int = 0

    @property
    def data(self) -> list[Any]:
        data = self.body.get("data")
        return data if isinstance(data, list) else []


@dataclass
class GraphStub:
    """`with GraphStub(access_token=...) as stub:` serves on `stub.url` until the block ends."""

    access_token: str = "local-access-token"
    tokens: dict[str, str] = field(default_factory=dict)  # dataset -> its connection's token (else access_token)
    validate: bool = True
    datasets: set[str] | None = None  # the event set / dataset ids that exist (None: any)
    deprecated_before: int = 0  # Graph versions below this major are refused, as Meta refuses retired ones
    # Events whose event_id (Conversions API) or order_id (Offline Conversions) contains this are refused, and
    # with them their whole request, as Meta refuses a request with one invalid event; `blame` says whether
    # the error names the event (`data[3]`) or not, or names the request's last event (a wrong index).
    reject_marked: str | None = None
    blame: bool | Literal["last"] = True  # "last": the error names the request's last event, whatever it is
    # Datasets whose requests are answered 500 with code 2 (Meta's "temporary issue"), the others as usual.
    unavailable: set[str] = field(default_factory=set)
    slow: dict[str, float] = field(default_factory=dict)  # dataset -> seconds each of its requests takes
    host: str = "127.0.0.1"  # the address to listen on
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    _faults: deque[Fault] = field(default_factory=deque)

    def script(self, *faults: Fault) -> None:
        self._faults.extend(faults)

    def recover(self) -> None:
        """Drop the scripted faults not yet answered: Facebook answers normally again."""
        self._faults.clear()

    def __enter__(self) -> GraphStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm the body then waits for the
            # client's delayed ACK (about 40 ms) on every keep-alive request, which is the stand-in's
            # delay, not the function's.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                stub.connections += 1
                super().setup()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                stub._handle(self)

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        # A short poll keeps shutdown() quick: the tests start one stand-in each.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = cast(tuple[str, int], self._server.server_address[:2])  # AF_INET: never bytes
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events Facebook would have accepted (requests answered 200)."""
        return [event for request in self.received if request.status == 200 for event in request.data]

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        path, _, query = request.path.partition("?")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        api = "offline_conversions" if isinstance(body, dict) and "upload_tag" in body else "conversions_api"
        received = Received(path=path, api=api, body=body if isinstance(body, dict) else {}, query=query)
        self.received.append(received)
        fault = self._faults.popleft() if self._faults else None
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.drop:
            request.connection.shutdown(socket.SHUT_RDWR)
            request.close_connection = True
            return
        if fault and fault.body is not None:
            received.status = fault.status
            self._reply(request, fault.status, fault.body)
            return
        received.status, answer = self.answer(path, query, body, api)
        self._reply(request, received.status, answer)

    def answer(self, path: str, query: str, body: Any, api: str) -> tuple[int, dict[str, Any]]:
        """What Facebook would say to this request."""
        if "access_token" in query:
            return 400, _error(100, "access_token must not be sent in the URL")
        match = _PATH.fullmatch(path)
        if not match:
            return 400, _error(100, f"Unknown path components: {path}", subcode=33)
        time.sleep(self.slow.get(match.group(2), 0.0))
        if match.group(2) in self.unavailable:
            return 500, _error(2, "An unexpected error has occurred. Please retry your request later.")
        if int(match.group(1)) < self.deprecated_before:
            return 400, _error(2635, "You are calling a deprecated version of the Graph API. Please update.")
        if self.datasets is not None and match.group(2) not in self.datasets:
            # Meta's own wording for an id that is not there, or not this token's.
            message = (
                f"Unsupported post request. Object with ID '{match.group(2)}' does not exist, cannot be loaded due "
                "to missing permissions, or does not support this operation."
            )
            return 400, _error(100, message, subcode=33)
        if not isinstance(body, dict):
            return 400, _error(100, "the body is not a JSON object")
        if body.get("access_token") != self.tokens.get(match.group(2), self.access_token):
            return 400, _error(190, "Invalid OAuth access token - Cannot parse access token")
        data = body.get("data")
        if not isinstance(data, list) or not data:
            return 400, _error(100, "param data must be a non-empty array")
        if len(data) > MAX_EVENTS[api]:
            return 400, _error(100, f"at most {MAX_EVENTS[api]} events per request")
        if self.reject_marked is not None:
            for index, event in enumerate(data):
                if isinstance(event, dict) and self.reject_marked in str(
                    event.get("event_id") or event.get("order_id")
                ):
                    named = len(data) - 1 if self.blame == "last" else index
                    where = f"data[{named}]: " if self.blame else ""
                    error = _error(
                        100, f"Invalid parameter: {where}the product id is not in the catalogue", subcode=2804050
                    )
                    error["error"]["error_user_title"] = "Invalid Product Id"
                    return 400, error
        if self.validate:
            for index, event in enumerate(data):
                if problem := event_problem(event, api):
                    return 400, _error(100, f"Invalid parameter: data[{index}]: {problem}")
        if api == "offline_conversions":
            return 200, {"id": "1234567890", "num_processed_entries": len(data)}
        return 200, {"events_received": len(data), "messages": [], "fbtrace_id": "StubTrace"}

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        with contextlib.suppress(ConnectionError):  # a client that stopped reading (an answer too big for it)
            request.send_response(status)
            request.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)


def _error(code: int, message: str, **extra: Any) -> dict[str, Any]:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "StubTrace"}
    if "subcode" in extra:
        error["error_subcode"] = extra["subcode"]
    return {"error": error}


def event_problem(event: Any, api: str) -> str | None:
    """Meta's per-event rules: the checks a real request would fail."""
    if not isinstance(event, dict):
        return "event must be an object"
    name = event.get("event_name")
    if api == "offline_conversions" and name not in META_STANDARD_EVENTS:
        return f"event_name {name!r} is not a standard event"
    if not isinstance(name, str) or not name.strip():
        return "event_name must be a standard or custom event name"
    if name not in META_STANDARD_EVENTS and len(name) > MAX_CUSTOM_EVENT_NAME:
        return f"custom event names are at most {MAX_CUSTOM_EVENT_NAME} characters"
    if unexpected := sorted(set(event) - EVENT_FIELDS[api]):
        return f'Unexpected key "{unexpected[0]}"'
    if problem := _server_event_problem(event):
        return problem
    max_age_days = OFFLINE_MAX_AGE_DAYS
    if api == "conversions_api":
        source = event.get("action_source")
        if source not in ACTION_SOURCE_MAX_AGE_DAYS:
            return f"action_source must be one of {', '.join(ACTION_SOURCE_MAX_AGE_DAYS)}"
        max_age_days = ACTION_SOURCE_MAX_AGE_DAYS[source]
    event_time = event.get("event_time")
    now = time.time()
    if not isinstance(event_time, int) or not now - max_age_days * 86400 <= event_time <= now + 3600:
        return f"event_time must be unix seconds within the last {max_age_days} days for this event"
    keys = event.get("match_keys") if api == "offline_conversions" else event.get("user_data")
    if not isinstance(keys, dict) or not keys:
        return "no match keys"
    for name, value in keys.items():
        if problem := _match_key_problem(name, value, api):
            return problem
    commerce = event if api == "offline_conversions" else event.get("custom_data", {})
    if ("value" in commerce) != ("currency" in commerce):
        return "value and currency must be sent together"
    if "value" in commerce and not commerce["value"] > 0:
        return "value must be greater than 0"
    if event["event_name"] == "Purchase" and "value" not in commerce:
        return "Purchase requires value and currency"
    return _content_problem(commerce)


def _server_event_problem(event: dict[str, Any]) -> str | None:
    """The Conversions API's event fields a forwarder of offline sales may send, as Meta types them."""
    if "opt_out" in event and type(event["opt_out"]) is not bool:
        return "opt_out must be a boolean"
    if event.get("action_source") == "app" and not isinstance(event.get("app_data"), dict):
        # Meta's answer to an app event without app_data (facebook-nodejs-business-sdk#233, #251).
        return (
            "Missing Advertiser Tracking Enabled Flag: The parameter 'advertiser_tracking_enabled' is required for "
            "the event with the action source 'app'"
        )
    if "original_event_data" in event:
        original = event["original_event_data"]
        if not isinstance(original, dict) or not original or not set(original) <= set(ORIGINAL_EVENT_FIELDS):
            return f"original_event_data must be an object of {', '.join(ORIGINAL_EVENT_FIELDS)}"
        for field_name, kind in ORIGINAL_EVENT_FIELDS.items():
            if field_name in original and type(original[field_name]) is not kind:
                return f"original_event_data.{field_name} must be a{'n integer' if kind is int else ' string'}"
    return None


def _content_problem(commerce: dict[str, Any]) -> str | None:
    """The types Meta gives the content fields (conversions-api/parameters/custom-data)."""
    for field_name in NUMBER_FIELDS:
        if field_name in commerce and (type(commerce[field_name]) not in (int, float)):
            return f"{field_name} must be a number"
    ids = commerce.get("content_ids", [])
    if not isinstance(ids, list) or not all(isinstance(item, str | int) for item in ids):
        return "content_ids must be an array of strings"
    if "num_items" in commerce and type(commerce["num_items"]) is not int:
        return "num_items must be an integer"
    if "delivery_category" in commerce and commerce["delivery_category"] not in DELIVERY_CATEGORIES:
        return f"delivery_category must be one of {', '.join(sorted(DELIVERY_CATEGORIES))}"
    for field_name in ("content_name", "content_category"):
        if field_name in commerce and not isinstance(commerce[field_name], str):
            return f"{field_name} must be a string"
    contents = commerce.get("contents", [])
    if not isinstance(contents, list) or not all(isinstance(item, dict) and "id" in item for item in contents):
        return "contents must be objects with an id"
    return None


def _match_key_problem(name: str, value: Any, api: str) -> str | None:
    """What Meta would refuse in one match key: an unknown field, an array where it takes one value, an empty
    array, or a value that is not what the field takes."""
    rule = MATCH_KEY_FIELDS[api].get(name)
    if rule is None:
        return f"{name} is not a match key parameter"
    kind, arrays = rule
    values = value if arrays and isinstance(value, list) else [value]
    if not values:
        return f"match key {name} must not be an empty array"
    for item in values:
        if kind == FBID:
            # Meta's page types lead_id as an integer, its SDK sends the id as a string: either, unhashed.
            digits = str(item) if type(item) is int else item
            if not isinstance(digits, str) or not _FBID.fullmatch(digits) or int(digits) >= 2**64:
                return f"match key {name} must be {kind}"
        elif not isinstance(item, str) or not item or (kind == HEX and not _HEX64.fullmatch(item)):
            return f"match key {name} must be {kind}" + (" or an array of them" if arrays else "")
    return None
