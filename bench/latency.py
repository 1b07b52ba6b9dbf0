"""Measurement 6: warm latency of a 100-event batch against the loopback responder, p50 and p99.

The reference is the floor of measurement 1 on the same 100-event body, timed the same way.
"""

from __future__ import annotations

from bench import workload
from bench.harness import Function, Row, interleaved, percentile_ms
from bench.throughput import Floor

EVENTS = 100


def measure(function: Function, graph_url: str, invocations: int) -> dict[str, float]:
    batch = workload.batch(EVENTS)
    event = workload.api_event(batch)
    function.configure(graph_url, "offline_conversions")
    floor = Floor(event, batch)
    function.invoke(event)
    floor()
    times = interleaved({"handler": lambda: function.invoke(event), "floor": floor}, invocations)
    return {
        "p50_ms": percentile_ms(times["handler"], 50),
        "p99_ms": percentile_ms(times["handler"], 99),
        "floor_p50_ms": percentile_ms(times["floor"], 50),
        "floor_p99_ms": percentile_ms(times["floor"], 99),
        "invocations": invocations,
    }


def row(result: dict[str, float]) -> Row:
    return Row(
        metric=f"6. Warm latency, {EVENTS}-event batch, loopback Graph ({result['invocations']:.0f} invocations)",
        measured=f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms",
        reference=f"floor p50 {result['floor_p50_ms']:.2f} ms, p99 {result['floor_p99_ms']:.2f} ms",
        ratio=f"p50 {result['p50_ms'] / result['floor_p50_ms']:.2f}x floor",
        target="reported (no threshold)",
        met=None,
    )
