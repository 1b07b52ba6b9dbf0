"""`python -m bench --profile`: where the handler's time goes on the 2000-event batch (cProfile)."""

from __future__ import annotations

import cProfile
import io
import pstats

from bench import workload
from bench.harness import Function
from bench.responder import Responder, success_body


def profile(function: Function, api: str = "offline_conversions", invocations: int = 20, top: int = 30) -> str:
    event = workload.api_event(workload.batch(2000))
    with Responder(success_body(2000 if api == "offline_conversions" else 1000)) as server:
        function.configure(server.url, api)
        function.invoke(event)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(invocations):
            function.invoke(event)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()
