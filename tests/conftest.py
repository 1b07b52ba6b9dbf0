"""Fixtures for every layer; none starts a server (tests/integration/conftest.py has those).

Layers: tests/unit (no servers, seconds: `make unit`), tests/integration (the real handler against a moto
server and the Graph stand-in), tests/infra (template.yaml, samconfig, the built artifact, the dependency
lock). `make test` runs all three.
"""

from __future__ import annotations

import os

import pytest

from tests.support import BOTH_APIS

# Powertools needs these before the handler is imported; tracing is a no-op outside Lambda.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "facebook-offline-forwarder")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MParticleFacebookForwarder")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")


@pytest.fixture(params=BOTH_APIS)
def api(request: pytest.FixtureRequest) -> str:
    return request.param
