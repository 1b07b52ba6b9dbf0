"""The connection a backfill sends to: its settings, from which its destination and token come.

Only the default connection exists here (the one the environment variables describe, as `POST /events`);
`--connection NAME` resolves through this one function, so connections beside it plug in here.
"""

from __future__ import annotations

from collections.abc import Mapping

from forwarder.destination import DEFAULT_CONNECTION, connection_name
from forwarder.settings import Settings, SettingsError, load_settings


def connection_settings(name: str = DEFAULT_CONNECTION, env: Mapping[str, str] | None = None) -> Settings:
    """The settings of connection `name` (each batch's destination is `settings.destination(development)`).
    Raises SettingsError for an invalid environment or a connection that does not exist."""
    try:
        connection_name(name, "--connection")
    except ValueError as problem:
        raise SettingsError(str(problem)) from None
    if name != DEFAULT_CONNECTION:
        raise SettingsError(f"unknown connection {name}: this deployment has only the {DEFAULT_CONNECTION} connection")
    return load_settings(env)
