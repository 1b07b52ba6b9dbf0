"""Probe fixtures: the integration layer's own (moto server, Graph stand-in, the real handler), reused as is."""

from tests.integration.conftest import aws, captured, function_env, graph, invoke, moto_endpoint  # noqa: F401
