"""The connection a backfill sends to: its settings, from which its destinations and token come.

`--connection NAME` names one of the deployment's connections (docs/configuration.md, "Connections"): the
default one the environment variables describe (`POST /events`), or one CONNECTIONS or the SSM parameter
CONNECTIONS_PARAMETER adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forwarder.connections import ConnectionsUnavailable, UnknownConnection, load_connections
from forwarder.destination import DEFAULT_CONNECTION, connection_name
from forwarder.settings import Settings, SettingsError, load_settings

READ_SECONDS = 15.0  # the connections' SSM parameter, read once before the first row


def connection_settings(name: str = DEFAULT_CONNECTION, env: Mapping[str, str] | None = None) -> Settings:
    """The settings of connection `name` (each event's destinations are `settings.destinations(...)`).
    Raises SettingsError for an invalid environment or document, or a connection that does not exist."""
    try:
        connection_name(name, "--connection")
    except ValueError as problem:
        raise SettingsError(str(problem)) from None
    try:
        return load_connections(load_settings(env), env, READ_SECONDS).get(name)
    except UnknownConnection:
        raise SettingsError(f"unknown connection {name}: see CONNECTIONS or CONNECTIONS_PARAMETER") from None
    except ConnectionsUnavailable as problem:
        raise SettingsError(str(problem)) from None


def destinations_record(settings: Settings) -> dict[str, Any]:
    """What a checkpoint keeps of where its rows go, to refuse a rerun sending them elsewhere."""
    return {
        "connection": settings.connection,
        "api": settings.api.value,
        "api_version": settings.api_version,
        "datasets": sorted(settings.all_datasets),
    }
