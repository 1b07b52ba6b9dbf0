"""`make deploy ENV=staging|prod`: `sam deploy` with that section of samconfig.toml, guided the first time only.

samconfig.toml is committed with a section per environment. The first `make deploy ENV=<env>` runs
`sam deploy --guided --config-env <env>`, which asks for every parameter and saves the answers in
[<env>.deploy.parameters]. Once that section sets every parameter the template has no default for,
deploys run without questions (and, when no one can answer, such as in CI, never ask).

Every such deploy also sets ConfigurationDigest to a digest of the built code, the built template and
the parameter values given. SAM publishes a new version for the "live" alias only when the code
changes: a parameter change alone would reach the function's $LATEST but not the alias that API
Gateway calls (aws/serverless-application-model#1640). With the digest, any change publishes a
version, and CodeDeploy shifts traffic to it as DeploymentType says.

Only the standard library: deploying needs Python >= 3.11 and the SAM CLI, not the development venv.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMCONFIG = ROOT / "samconfig.toml"
BUILD_DIR = ROOT / ".aws-sam" / "build"
# template.yaml's parameters without a default (tests/infra/test_template.py keeps this list true).
REQUIRED_PARAMETERS = ("OfflineEventSetId", "CreateApiGatewayLoggingRole")
DIGEST_PARAMETER = "ConfigurationDigest"
DIGEST_LENGTH = 16  # SAM names the version after the first 10; the rest shows in the function's description
# SAM's forms: `Key=value`, `Key="quoted value"`, `ParameterKey=Key,ParameterValue=value`.
_KEY = re.compile(r"(?:^|\s)(?:ParameterKey=)?([A-Za-z0-9]+)(?:=|,ParameterValue=)")


class DeployError(Exception):
    """What stops a deploy before sam runs; the message says what to do."""


def load(path: Path = SAMCONFIG) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


def deploy_parameters(config: Mapping[str, Any], env: str) -> dict[str, Any]:
    section = config.get(env, {}).get("deploy", {}).get("parameters")
    if not isinstance(section, dict):
        raise DeployError(f"samconfig.toml has no [{env}.deploy.parameters] section (environments: staging, prod)")
    return section


def overrides(parameters: Mapping[str, Any]) -> list[str]:
    """parameter_overrides as sam takes them on its command line: a string, a list of strings or a table."""
    value = parameters.get("parameter_overrides", [])
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, dict):
        return [f"{key}={shlex.quote(str(item))}" for key, item in value.items()]
    raise DeployError("parameter_overrides in samconfig.toml must be a string, a list or a table")


def named(tokens: list[str]) -> set[str]:
    """The parameter names the override tokens set."""
    return {name for token in tokens for name in _KEY.findall(token)}


def needs_guided(parameters: Mapping[str, Any]) -> bool:
    return not set(REQUIRED_PARAMETERS) <= named(overrides(parameters))


def digest(build_dir: Path, tokens: list[str]) -> str:
    """A digest of what a deploy changes: every built file, the built template, the parameter values."""
    template = build_dir / "template.yaml"
    if not template.is_file():
        raise DeployError(f"no {template}: run sam build first (make deploy does)")
    unbuilt = unbuilt_code(build_dir, template.read_text())
    if unbuilt:
        raise DeployError(
            f"{template} has functions sam build did not build (CodeUri {', '.join(unbuilt)}; make local-invoke "
            "builds ForwarderFunction only), which sam deploy would package from the source tree: run sam build "
            "(make deploy does)"
        )
    sha = hashlib.sha256()
    for path in sorted(p for p in build_dir.rglob("*") if p.is_file()):
        sha.update(path.relative_to(build_dir).as_posix().encode() + b"\0")
        sha.update(hashlib.sha256(path.read_bytes()).digest())
    for token in tokens:
        sha.update(b"\0" + token.encode())
    return sha.hexdigest()[:DIGEST_LENGTH]


def unbuilt_code(build_dir: Path, template: str) -> list[str]:
    """The built template's CodeUri values outside the build directory: `sam build <LogicalId>` builds one
    function and points the others back at their source."""
    root = build_dir.resolve()
    uris = re.findall(r"^ +CodeUri: (\S+)$", template, re.M)
    return [uri for uri in uris if not (root / uri).resolve().is_relative_to(root)]


def deploy_command(
    config: Mapping[str, Any], env: str, extra: list[str], build_dir: Path = BUILD_DIR, interactive: bool = True
) -> list[str]:
    """The sam deploy command for `env`: guided while the section misses a required parameter."""
    parameters = deploy_parameters(config, env)
    extra = [token for token in extra if token.strip()]
    tokens = [*overrides(parameters), *extra]
    if needs_guided(parameters):
        if not interactive:
            missing = ", ".join(sorted(set(REQUIRED_PARAMETERS) - named(overrides(parameters))))
            raise DeployError(
                f"[{env}.deploy.parameters] in samconfig.toml does not set {missing}: run make deploy ENV={env} "
                "once where you can answer sam deploy --guided, then commit samconfig.toml"
            )
        # The section's own values are the prompts' defaults; one-off values are added to them.
        guided = ["sam", "deploy", "--guided", "--config-env", env]
        return [*guided, "--parameter-overrides", *extra] if extra else guided
    # sam gives the last value of a parameter precedence: the digest comes last and covers what comes before.
    command = ["sam", "deploy", "--config-env", env, "--parameter-overrides", *tokens]
    command.append(f"{DIGEST_PARAMETER}={digest(build_dir, tokens)}")
    if not interactive:
        command.append("--no-confirm-changeset")
    return command


def _interactive() -> bool:
    return sys.stdin.isatty() and not os.environ.get("CI")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.samconfig", description=__doc__)
    parser.add_argument("action", choices=["deploy"])
    parser.add_argument("env", help="a section of samconfig.toml: staging or prod")
    parser.add_argument("--overrides", default="", help='one-off parameter values, e.g. "TestEventCode=TEST123"')
    parser.add_argument("--print", action="store_true", help="print the sam command instead of running it")
    args = parser.parse_args(argv)
    try:
        command = deploy_command(load(), args.env, [args.overrides], interactive=_interactive())
    except DeployError as error:
        print(f"make deploy: {error}", file=sys.stderr)
        return 2
    print("$ " + shlex.join(command), flush=True)
    if args.print:
        return 0
    os.chdir(ROOT)
    os.execvp(command[0], command)  # noqa: S606 - the SAM CLI, with our arguments only


if __name__ == "__main__":
    sys.exit(main())
