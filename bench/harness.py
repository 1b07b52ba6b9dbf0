"""The function under test, configured like `make run` configures it, plus timing helpers.

The environment is set before `handler.app` is imported, because Powertools reads its log level at
import. Logs at WARNING and metrics off keep stdout printing out of the numbers; the metrics-on
variant runs in a child process (see `bench.child`).
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from localdev.lambda_context import LocalContext

if TYPE_CHECKING:
    from forwarder.settings import Settings

EVENT_SET_ID = "1234567890"
QUIET_ENV = {
    "POWERTOOLS_SERVICE_NAME": "facebook-offline-forwarder",
    "POWERTOOLS_METRICS_NAMESPACE": "MParticleFacebookForwarder",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
# What Lambda runs with (template.yaml: LogLevel defaults to INFO, metrics on).
LAMBDA_ENV = {**QUIET_ENV, "POWERTOOLS_METRICS_DISABLED": "false", "POWERTOOLS_LOG_LEVEL": "INFO"}


@dataclass
class Row:
    """One line of the results table; `ratio` and `met` are already phrased for the target."""

    metric: str
    measured: str
    reference: str
    ratio: str
    target: str
    met: bool | None
    notes: list[str] = field(default_factory=list)


def function_env(aws_env: dict[str, str], graph_url: str, api: str) -> dict[str, str]:
    return {**aws_env, "OFFLINE_EVENT_SET_ID": EVENT_SET_ID, "FACEBOOK_GRAPH_URL": graph_url, "FACEBOOK_API": api}


class Function:
    """The real `lambda_handler`, pointed at a Graph URL and API by its environment variables."""

    def __init__(self, aws_env: dict[str, str], telemetry: dict[str, str] | None = QUIET_ENV) -> None:
        """`telemetry=None` keeps the Powertools settings already in the environment."""
        self.aws_env = aws_env
        os.environ.update(telemetry or {})
        os.environ.update(aws_env)
        import handler.app

        self._app = handler.app

    def configure(self, graph_url: str, api: str) -> None:
        os.environ.update(function_env(self.aws_env, graph_url, api))
        self._app._settings = None  # settings are parsed once per container; a new "container" here

    def use(self, settings: Settings) -> None:
        """Settings parsed beforehand, as a warm container holds them: switching costs nothing."""
        self._app._settings = settings

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        response = self._app.lambda_handler(event, LocalContext())
        if response["statusCode"] != 200:
            raise RuntimeError(f"the handler answered {response['statusCode']}: {response.get('body')}")
        return response


def timed(call: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def interleaved(calls: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Seconds per call, alternating the candidates so drift in the machine hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            times[name].append(timed(call))
    return times


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def percentile_ms(seconds: list[float], percent: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(seconds)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1] * 1000
