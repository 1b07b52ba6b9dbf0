"""Child-process entry point for the timed measurements: a clean interpreter, like a Lambda container.

`python -m bench.child KIND OUT.json REPEAT [API GRAPH_URL]`, KIND one of throughput, latency, sdk, buffered
(REPEAT is then the number of webhook batches).
The parent keeps moto and the responder in its own process, so neither their threads nor their
heap (which every full garbage collection would walk) are in the numbers. The environment decides
the telemetry: the parent passes the quiet settings, or Lambda's with stdout sent to /dev/null.
"""

from __future__ import annotations

import json
import os
import sys


def main(kind: str, out: str, repeat: str, api: str = "offline_conversions", graph_url: str = "") -> None:
    # Imported here, after the parent has set the environment Powertools reads at import.
    from bench import buffered, latency, sdk_compare, throughput
    from bench.harness import Function

    if kind == "sdk":
        result = sdk_compare.measure(int(repeat))
    else:
        aws_env = {key: value for key, value in os.environ.items() if key.startswith("AWS_")}
        aws_env.update({key: os.environ[key] for key in ("SECRET_ID", "PARKING_QUEUE_URL", "INGEST_QUEUE_URL")})
        function = Function(aws_env, telemetry=None)
        if kind == "throughput":
            result = throughput.measure(function, graph_url, api, int(repeat))
        elif kind == "buffered":
            result = buffered.time_invocations(function, graph_url, int(repeat))
        else:
            result = latency.measure(function, graph_url, int(repeat))
    with open(out, "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main(*sys.argv[1:])
