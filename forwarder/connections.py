"""Connections: one deployment serving several mParticle connections, each to its own Meta datasets.

mParticle's Facebook Offline Conversions integration keeps the access token in the configuration and the
Offline Event Set Id and the CCPA setting in each connection (one per feed). Here the variables describe
the default connection (`POST /events`); `CONNECTIONS` (a JSON object) or the SSM parameter that
`CONNECTIONS_PARAMETER` names adds the others (`POST /events/{connection}`):

    {"stores-de": {"offline_event_set_id": ["111", "222"], "secret_id": "forwarder/connections/stores-de",
                   "send_ccpa_limited_data_use": "never", "event_datasets": {"Purchase": ["333"]}}}

A connection's settings are the variables' names in lower case; what it leaves out comes from the
variables. Its `secret_id` (default SECRET_ID) holds its own `webhook_authorization`, the only one its
route accepts, and its own `access_token`. `offline_event_set_id` may list several datasets (every event
goes to each); `event_datasets` sends events of a Facebook event name to other datasets instead. The
deployment's own variables (the Graph URL, the queues, the delivery mode, the table) are not per connection.

An invalid connection keeps its error (SettingsError naming the connection and the field, never a value)
and fails only its own route; a document that is not a JSON object fails every route.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from botocore.config import Config

from forwarder.deadline import OutOfTime, bounded
from forwarder.destination import CONNECTION_NAME, DEFAULT_CONNECTION, Destination, DestinationError, dataset_id
from forwarder.event_names import CUSTOM_EVENT_NAME
from forwarder.settings import Settings, SettingsError, load_settings

# The variables a connection may set (in lower case), besides its own `event_datasets`.
CONNECTION_VARIABLES = frozenset(
    {
        "SECRET_ID", "OFFLINE_EVENT_SET_ID", "FACEBOOK_API", "FACEBOOK_API_VERSION", "SEND_CCPA_LIMITED_DATA_USE",
        "UPLOAD_TAG", "TEST_EVENT_CODE", "DEFAULT_CURRENCY", "EVENT_NAME_OVERRIDES", "EMAIL_IDENTITY_TYPES",
        "EXTERNAL_ID_IDENTITY_TYPE", "DEFAULT_COUNTRY", "CUSTOM_EVENT_MAPPING", "FORWARD_UNMAPPED_CUSTOM_EVENTS",
        "CUSTOM_EVENT_VALUE_ATTRIBUTES", "CUSTOM_EVENT_CURRENCY_ATTRIBUTE", "DEFAULT_ACTION_SOURCE",
        "DEVELOPMENT_BATCHES", "REQUIRED_GDPR_PURPOSES", "DATE_OF_BIRTH_ATTRIBUTE",
    }
)  # fmt: skip
EVENT_DATASETS = "event_datasets"
MAX_CONNECTIONS = 1000  # an SSM parameter holds 4 KB (8 KB in the advanced tier): far fewer fit
_AWS_ERROR_CODE = re.compile(r"An error occurred \((\w+)\)")


class UnknownConnection(LookupError):
    """No connection of that name (answered 404 before the body or a secret is read)."""


@dataclass(frozen=True, slots=True)
class Connections:
    """The default connection's settings and every named connection's, or the error that makes it invalid."""

    default: Settings
    named: Mapping[str, Settings | SettingsError]

    def get(self, name: str | None) -> Settings:
        """The settings of `name` (None or "default": the default connection). Raises UnknownConnection, or
        SettingsError when that connection is invalid."""
        if name is None or name == DEFAULT_CONNECTION:
            return self.default
        found = self.named.get(name)
        if found is None:
            raise UnknownConnection(name)
        if isinstance(found, SettingsError):
            raise found
        return found

    def valid(self) -> list[Settings]:
        return [self.default, *(found for found in self.named.values() if isinstance(found, Settings))]

    def current(self, recorded: Destination, as_recorded: bool = False) -> Destination:
        """Where events recorded for `recorded` go now (replay): their connection's dataset as configured now
        (the recorded one if the connection still sends there, else the connection's one dataset: a corrected
        id is the usual cure), with the connection's version and upload tag, for the API they were rendered
        for; with `as_recorded`, the recorded destination itself (checked when it was read back:
        forwarder/parked_messages.py), unless its dataset is another connection's. Either way their
        connection's token sends them, and they keep the `test_event_code` they were sent with (none for
        production events, whatever TEST_EVENT_CODE says now): a parked production event is never replayed
        as a test event. Raises ValueError naming what does not fit.
        """
        try:
            settings = self.get(recorded.connection)
        except UnknownConnection:
            raise ValueError(f"connection '{recorded.connection}' is not configured now") from None
        except SettingsError as problem:
            raise ValueError(str(problem)) from None
        if as_recorded:
            owners = {other.connection for other in self.valid() if recorded.dataset_id in other.all_datasets}
            if owners and settings.connection not in owners:  # one connection's token never goes to another's
                raise ValueError(
                    f"dataset {recorded.dataset_id} is another connection's, not '{settings.connection}''s"
                )
            return recorded
        if recorded.api != settings.api:
            raise ValueError(f"rendered for {recorded.api.value}, but the connection's API is {settings.api.value}")
        datasets = settings.all_datasets
        if recorded.dataset_id in datasets:
            dataset = recorded.dataset_id
        elif len(datasets) == 1:
            [dataset] = datasets
        else:
            raise ValueError(
                f"dataset {recorded.dataset_id} is not one of connection '{settings.connection}''s datasets now: "
                "fix them, or replay with --parked-destination"
            )
        return dataclasses.replace(settings.destination(dataset), test_event_code=recorded.test_event_code)

    @property
    def secret_ids(self) -> dict[str, str]:
        """Each valid connection's secret: whose token sends its events."""
        return {settings.connection: settings.secret_id for settings in self.valid()}


def _text(value: Any) -> str:
    """A JSON value as the variable's text: strings as they are, booleans as true/false, numbers in decimal, a
    list as its comma-separated items (OFFLINE_EVENT_SET_ID's several datasets)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and value and all(isinstance(item, str | int) for item in value):
        return ",".join(str(item) for item in value)
    raise ValueError


def _event_datasets(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise SettingsError("event_datasets must be an object of Facebook event names to lists of dataset ids")
    found: dict[str, tuple[str, ...]] = {}
    for name, datasets in value.items():
        if not CUSTOM_EVENT_NAME.fullmatch(name) or not isinstance(datasets, list) or not datasets:
            raise SettingsError(
                "event_datasets must map Facebook event names (1 to 50 letters, digits, spaces, '_' or '-') to "
                "non-empty lists of dataset ids"
            )
        try:
            found[name] = tuple(dict.fromkeys(dataset_id(_text(item), "event_datasets") for item in datasets))
        except (ValueError, DestinationError):
            raise SettingsError("event_datasets lists must hold numeric dataset ids") from None
    return found


def _connection(name: str, fields: Any, env: Mapping[str, str]) -> Settings:
    """One named connection's settings: its fields over the variables. Raises SettingsError naming the field."""
    if not isinstance(fields, dict):
        raise SettingsError("must be an object of settings")
    overrides: dict[str, str] = {}
    for key, value in fields.items():
        if key == EVENT_DATASETS:
            continue
        variable = key.upper()
        if key != key.lower() or variable not in CONNECTION_VARIABLES:
            raise SettingsError(f"'{key[:64]}' is not a setting a connection may have (see docs/configuration.md)")
        try:
            overrides[variable] = _text(value)
        except ValueError:
            raise SettingsError(f"{key} must be a string, a number or true/false") from None
    settings = load_settings(ChainMap(overrides, dict(env)))
    extra = _event_datasets(fields[EVENT_DATASETS]) if EVENT_DATASETS in fields else {}
    return settings.with_connection(name, extra)


def _named(error: SettingsError, name: str, fields: Any) -> SettingsError:
    """The error with the connection's name, and its fields named as the document names them."""
    message = str(error)
    if isinstance(fields, dict):
        for key in fields:
            if isinstance(key, str) and key.upper() in CONNECTION_VARIABLES:
                message = message.replace(key.upper(), key)
    return SettingsError(f"connection '{name}': {message}")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members, a name given twice marked so (json.loads would keep the last silently)."""
    found: dict[str, Any] = {}
    for name, value in pairs:
        found[name] = _TWICE if name in found else value
    return found


_TWICE = object()  # a connection named twice in a document: invalid, whichever one was meant


def parse_connections(text: str, env: Mapping[str, str], default: Settings) -> Connections:
    """The connections a document describes; raises SettingsError when it is not a JSON object of them (every
    route fails). An invalid connection, an invalid name included, is kept with its error (only its route
    fails, and no route can name an invalid name)."""
    try:
        document = json.loads(text, object_pairs_hook=_unique)
    except (ValueError, RecursionError):
        raise SettingsError("the connections document is not JSON (or nested too deep)") from None
    if not isinstance(document, dict):
        raise SettingsError("the connections document must be a JSON object of connection names to settings")
    if len(document) > MAX_CONNECTIONS:
        raise SettingsError(f"the connections document may name at most {MAX_CONNECTIONS} connections")
    named: dict[str, Settings | SettingsError] = {}
    for name, fields in document.items():
        shown = name if CONNECTION_NAME.fullmatch(name) else f"#{len(named) + 1}"
        if shown != name or name == DEFAULT_CONNECTION:
            named[shown] = SettingsError(
                f"connection {shown}: a name must be 1 to 64 letters, digits, '_' or '-', other than 'default'"
            )
        elif fields is _TWICE:
            named[name] = SettingsError(f"connection '{name}': named twice in the document")
        else:
            try:
                named[name] = _connection(name, fields, env)
            except SettingsError as problem:
                named[name] = _named(problem, name, fields)
    return Connections(default, named)


class ConnectionsUnavailable(RuntimeError):
    """The SSM parameter could not be read in time or was throttled: worth retrying (503)."""


PARAMETER_MAX_AGE = 300  # seconds: a changed parameter takes effect within 5 minutes
# Per attempt; the whole read is also bounded by the invocation's time (`load_connections`).
_SSM_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"})
_OPERATOR_MUST_ACT = {"ParameterNotFound", "AccessDeniedException", "ParameterVersionNotFound", "ValidationException"}
# The document in force and the variables' settings it was parsed over (the same object for the life of a
# container; a test that changes the variables makes new ones), and its connections.
_parsed: list[tuple[Settings, str, Connections]] = []


@cache
def _ssm() -> Any:
    from aws_lambda_powertools.utilities import parameters

    return parameters.SSMProvider(boto_config=_SSM_CONFIG)


def _parameter(name: str, time_limit: float) -> str:
    """The SSM parameter's text, cached PARAMETER_MAX_AGE seconds per container. Raises SettingsError (it does
    not exist or the function may not read it) or ConnectionsUnavailable."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        with bounded(time_limit):
            return str(_ssm().get(name, max_age=PARAMETER_MAX_AGE))
    except OutOfTime:
        raise ConnectionsUnavailable("could not read CONNECTIONS_PARAMETER from SSM in time") from None
    except GetParameterError as error:
        code = match.group(1) if (match := _AWS_ERROR_CODE.search(str(error))) else "connection failed"
        if code in _OPERATOR_MUST_ACT:
            raise SettingsError(f"CONNECTIONS_PARAMETER cannot be read ({code}): check its name and policy") from None
        raise ConnectionsUnavailable(f"could not read CONNECTIONS_PARAMETER from SSM ({code})") from None


def load_connections(default: Settings, env: Mapping[str, str] | None = None, time_limit: float = 5.0) -> Connections:
    """The connections: `default` (the variables' settings) and those CONNECTIONS or CONNECTIONS_PARAMETER
    describe, parsed once per document. Raises SettingsError or ConnectionsUnavailable."""
    env = os.environ if env is None else env
    inline, parameter = env.get("CONNECTIONS", "").strip(), env.get("CONNECTIONS_PARAMETER", "").strip()
    if inline and parameter:
        raise SettingsError("set CONNECTIONS or CONNECTIONS_PARAMETER, not both")
    text = _parameter(parameter, time_limit) if parameter else inline
    if not text:
        return Connections(default, {})
    if not _parsed or _parsed[0][0] is not default or _parsed[0][1] != text:
        _parsed[:] = [(default, text, parse_connections(text, env, default))]
    return _parsed[0][2]


def main(argv: list[str] | None = None) -> int:
    """`python -m forwarder.connections --check FILE` (`make check-connections FILE=...`): check a connections
    document against the variables of this environment before it is deployed; exit 1 naming every problem."""
    import argparse  # the command line only: not at the function's import

    parser = argparse.ArgumentParser(prog="python -m forwarder.connections", description=main.__doc__)
    parser.add_argument("--check", metavar="FILE", required=True, help="the connections document (JSON)")
    args = parser.parse_args(argv)
    env = {"SECRET_ID": "check", "OFFLINE_EVENT_SET_ID": "0", "PARKING_QUEUE_URL": "https://check", **os.environ}
    try:
        with open(args.check, encoding="utf-8") as document:
            connections = parse_connections(document.read(), env, load_settings(env))
    except (OSError, UnicodeDecodeError, SettingsError) as problem:
        print(f"invalid: {problem}", file=sys.stderr)
        return 1
    problems = [str(found) for found in connections.named.values() if isinstance(found, SettingsError)]
    for text in problems:
        print(f"invalid: {text}", file=sys.stderr)
    for settings in connections.valid()[1:]:
        print(f"{settings.connection}: {settings.api.value}, datasets {', '.join(sorted(settings.all_datasets))}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
