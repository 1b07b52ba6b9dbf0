"""Measurement 5: requests per batch and connection reuse, counted at the responder.

Requests per batch must be ceil(events / limit) for each API (Meta: 2000 per Offline Conversions
request, 1000 per Conversions API request); sequential warm invocations must share one connection.
"""

from __future__ import annotations

import math

from bench import workload
from bench.harness import Function, Row
from bench.responder import Responder
from forwarder.facebook_api import PROFILES, FacebookApi

SIZES = (1, 999, 1000, 1001, 2000, 2001, 4500)
WARM_INVOCATIONS = 20


def measure(function: Function) -> dict[str, object]:
    checks = []
    for api in FacebookApi:
        limit = PROFILES[api].max_events_per_request
        with Responder() as server:
            function.configure(server.url, api.value)
            for events in SIZES:
                before = server.requests
                function.invoke(workload.api_event(workload.batch(events)))
                checks.append((api.value, events, server.requests - before, math.ceil(events / limit)))
    event = workload.api_event(workload.batch(10))
    with Responder() as server:
        function.configure(server.url, "offline_conversions")
        for _ in range(WARM_INVOCATIONS):
            function.invoke(event)
        connections, requests = server.connections, server.requests
    return {"checks": checks, "connections": connections, "requests": requests}


def row(result: dict[str, object]) -> Row:
    checks: list[tuple[str, int, int, int]] = result["checks"]  # type: ignore[assignment]
    wrong = [check for check in checks if check[2] != check[3]]
    per_api = "; ".join(
        f"{api}: " + ", ".join(f"{events}->{sent}" for name, events, sent, _ in checks if name == api)
        for api in dict.fromkeys(check[0] for check in checks)
    )
    exact = not wrong and result["connections"] == 1
    return Row(
        metric="5. Wire efficiency: requests per batch; connections for sequential warm invocations",
        measured=f"{len(checks) - len(wrong)}/{len(checks)} batch sizes exact; "
        f"{result['requests']} requests over {result['connections']} connection(s)",
        reference="ceil(events / 2000 or 1000); 1 connection",
        ratio="exact" if exact else "not exact",
        target="exact",
        met=exact,
        notes=[f"events->requests per batch size, {per_api}."],
    )
