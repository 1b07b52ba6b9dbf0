"""The Secrets Manager secret: Facebook's access token and the webhook's Authorization value.

Read through Powertools parameters, cached for the container (warm invocations do not call AWS);
re-read with `force=True` when Facebook says the token is invalid, since it may have been rotated.
Nothing here ever puts a secret value in a message, a repr or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any, cast

from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from forwarder.deadline import OutOfTime, bounded
from forwarder.telemetry import logger, traced

CACHE_SECONDS = 300
# Per attempt; the whole read, retry included, is also bounded by the invocation's time (`get_credentials`).
# botocore's `max_attempts` counts retries only; `total_max_attempts` counts every attempt.
_SECRETS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"})
# Errors that retrying cannot fix: a wrong SECRET_ID, a missing permission or KMS key access.
_OPERATOR_MUST_ACT = {
    "ResourceNotFoundException",
    "AccessDeniedException",
    "DecryptionFailure",
    "InvalidRequestException",
}
_AWS_ERROR_CODE = re.compile(r"An error occurred \((\w+)\)")


class SecretUnavailable(RuntimeError):
    """Secrets Manager could not be read (throttled, unreachable, denied): worth retrying later."""


class SecretInvalid(RuntimeError):
    """The secret is missing, not readable by the function, or not the documented JSON: an operator must act."""


@dataclass(frozen=True, slots=True)
class Credentials:
    access_token: str = field(repr=False)
    # The Authorization values mParticle may send: one, or two while it is being changed (README).
    webhook_authorizations: tuple[str, ...] = field(default=(), repr=False)
    app_secret: str | None = field(default=None, repr=False)

    def appsecret_proof(self) -> str | None:
        """Meta's optional proof that the caller holds the app secret (graph-api/securing-requests)."""
        if not self.app_secret:
            return None
        return hmac.new(self.app_secret.encode(), self.access_token.encode(), hashlib.sha256).hexdigest()

    def secret_values(self) -> list[str]:
        """Everything secret here, for redacting text from outside that might quote one."""
        values = [self.access_token, *self.webhook_authorizations, self.app_secret, self.appsecret_proof()]
        return [value for value in values if value]


def _optional_text(value: Any, key: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SecretInvalid(f"the secret's '{key}' must be a string")
    return value


MAX_WEBHOOK_AUTHORIZATIONS = 2  # the value in use and its successor, while mParticle's setting changes


def _authorizations(value: Any) -> tuple[str, ...]:
    """`webhook_authorization` as a string, or a list of at most two strings (rotation without a 401)."""
    values = value if isinstance(value, list) else [value]
    if len(values) > MAX_WEBHOOK_AUTHORIZATIONS:
        raise SecretInvalid("the secret's 'webhook_authorization' may list at most 2 values (old and new)")
    return tuple(text for item in values if (text := _optional_text(item, "webhook_authorization")))


def _secret_json(value: str | bytes) -> Any:
    """The secret's JSON value, from SecretString (str) or SecretBinary (bytes, read as UTF-8 text).

    Parsed here rather than by Powertools' `transform="json"`, which decodes SecretBinary before its
    own error handling, so a binary that is not UTF-8 escaped as a UnicodeDecodeError (a 500, not the
    operator's 502). Raises SecretInvalid; no message quotes the value.
    """
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else value
    except UnicodeDecodeError:
        raise SecretInvalid("the secret's binary value is not UTF-8 text: store the JSON as SecretString") from None
    try:
        return json.loads(text)
    except ValueError:
        raise SecretInvalid("the secret is not valid JSON") from None


def parse_credentials(value: Any) -> Credentials:
    if not isinstance(value, dict):
        raise SecretInvalid("the secret must be a JSON object with 'access_token' and 'webhook_authorization'")
    token = _optional_text(value.get("access_token"), "access_token")
    if not token:
        raise SecretInvalid("the secret has no 'access_token'")
    return Credentials(
        access_token=token,
        webhook_authorizations=_authorizations(value.get("webhook_authorization")),
        app_secret=_optional_text(value.get("app_secret"), "app_secret"),
    )


@cache
def provider() -> parameters.SecretsProvider:
    """One provider (client and cache) per container, with timeouts that fit inside the invocation."""
    return parameters.SecretsProvider(boto_config=_SECRETS_CONFIG)


def get_credentials(secret_id: str, time_limit: float, force: bool = False, setting: str = "SECRET_ID") -> Credentials:
    """The cached credentials, read from Secrets Manager in at most `time_limit` seconds when not cached;
    `force` bypasses the cache after a token error; `setting` names where the id comes from in messages.
    Raises SecretUnavailable (retry later) or SecretInvalid."""
    try:
        with traced("Secrets Manager GetSecretValue"), bounded(time_limit):
            value = provider().get(secret_id, max_age=CACHE_SECONDS, force_fetch=force)
    except OutOfTime:
        raise SecretUnavailable("could not read the secret from Secrets Manager in time") from None
    except parameters.exceptions.GetParameterError as error:
        # The answer goes to callers not yet authenticated: the AWS error code only (no ARN, account or
        # role); the full text, which never holds the secret's value, goes to the operator's log.
        logger.warning("could not read the secret", extra={"aws_error": str(error)})
        code = match.group(1) if (match := _AWS_ERROR_CODE.search(str(error))) else "connection failed"
        if code in _OPERATOR_MUST_ACT:
            message = f"Secrets Manager refused the secret ({code}): check {setting} and its policy"
            raise SecretInvalid(message) from None
        raise SecretUnavailable(f"could not read the secret from Secrets Manager ({code})") from None
    try:
        return parse_credentials(_secret_json(cast("str | bytes", value)))  # no transform: the raw value
    except SecretInvalid:
        provider().clear_cache()  # the operator's fix must count from the next invocation, not in 5 minutes
        raise
