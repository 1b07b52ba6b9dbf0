"""`make local-invoke` and `make local-api`: the built function in `sam local`'s Lambda container, fully local.

Starts a moto server (Secrets Manager with the secret the samples authenticate with, SQS with the
parking queue) and the Graph API stand-in where the container can reach them, writes SAM's
`--env-vars` file pointing the function at them, and a sample from events/ dated now; then runs
`sam local invoke` (or `sam local start-api`) and prints what the Graph stand-in received.

How the container reaches this machine: as `host.docker.internal`. Docker Desktop (macOS, Windows)
defines that name and forwards it to the host's loopback, so the stand-ins listen on 127.0.0.1. A
Docker engine on Linux defines nothing: the stand-ins listen on the docker0 bridge's address (reachable
from containers and this machine, not from the network) and `--add-host` maps the name to it. Other
setups: `--bind ADDRESS` (and `--no-add-host`).

SAM sets only the variables the template declares from the `--env-vars` file (FACEBOOK_GRAPH_URL and
AWS_ENDPOINT_URL are declared, empty, for this), and passes the AWS credentials of its own session:
`sam` runs here with placeholder credentials, so no real ones reach the container or the stand-ins.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from localdev.aws import FAKE_CREDENTIALS, WEBHOOK_AUTHORIZATION, moto_server, provision
from localdev.graph_stub import GraphStub
from localdev.samples import EVENTS_DIR, load_api_event

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_ID = "ForwarderFunction"
CONTAINER_HOST = "host.docker.internal"  # the name forwarder/graph_url.py allows http:// to under sam local
LOCAL_EVENT_SET_ID = "1234567890"
LOCAL_STACK_NAME = "local"  # what SAM resolves AWS::StackName to
DEFAULT_WORKDIR = ROOT / ".aws-sam" / "local"
# Parameters without a default in template.yaml: sam local needs a value to resolve the template.
PARAMETER_OVERRIDES = {"OfflineEventSetId": LOCAL_EVENT_SET_ID, "CreateApiGatewayLoggingRole": "false"}
API_PORT = 3000


@dataclass(frozen=True)
class StandIns:
    """Where the stand-ins are: as this machine reaches them, and as the container does."""

    aws_endpoint: str  # from here
    graph: GraphStub
    container_aws_endpoint: str
    container_graph_url: str
    container_queue_url: str
    secret_id: str


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of a network interface (Linux), or None when there is no such interface."""
    if not hasattr(socket, "if_nameindex") or name not in {n for _, n in socket.if_nameindex()}:
        return None
    import fcntl  # Linux/macOS only; imported here so the module loads everywhere

    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), siocgifaddr, struct.pack("256s", name.encode()[:15]))
        except OSError:  # the interface has no IPv4 address
            return None
    return socket.inet_ntoa(packed[20:24])


def bind_address(system: str, docker0: str | None) -> tuple[str, bool]:
    """(address the stand-ins listen on, whether sam must map host.docker.internal to it).

    A Docker engine on Linux has the docker0 bridge on this machine: listen there and map the name.
    Anything else (Docker Desktop, whose engine runs in a VM) forwards host.docker.internal to loopback.
    """
    if system == "Linux" and docker0:
        return docker0, True
    return "127.0.0.1", False


def container_url(url: str, host: str = CONTAINER_HOST) -> str:
    """The same URL with the host replaced: what the container must call to reach it."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{host}:{parts.port}").geturl()


@contextmanager
def stand_ins(bind: str) -> Iterator[StandIns]:
    """moto (secret + parking queue) and the Graph stand-in, listening on `bind`, until the block ends."""
    with moto_server(bind) as endpoint, GraphStub(host=bind) as graph:
        env = provision(endpoint)
        container_aws = container_url(endpoint)
        yield StandIns(
            aws_endpoint=endpoint,
            graph=graph,
            container_aws_endpoint=container_aws,
            container_graph_url=f"http://{CONTAINER_HOST}:{graph.port}",
            # moto names the queue after the host the request came from; the container calls another.
            container_queue_url=container_url(env["PARKING_QUEUE_URL"]),
            secret_id=env["SECRET_ID"],
        )


def env_vars(local: StandIns, api: str) -> dict[str, dict[str, str]]:
    """SAM's --env-vars file: values for variables the template declares (the others are ignored)."""
    return {
        FUNCTION_ID: {
            "AWS_ENDPOINT_URL": local.container_aws_endpoint,
            "FACEBOOK_GRAPH_URL": local.container_graph_url,
            "SECRET_ID": local.secret_id,
            "PARKING_QUEUE_URL": local.container_queue_url,
            "OFFLINE_EVENT_SET_ID": LOCAL_EVENT_SET_ID,
            "FACEBOOK_API": api,
            "POWERTOOLS_SERVICE_NAME": LOCAL_STACK_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": f"MParticleFacebookForwarder/{LOCAL_STACK_NAME}",
        }
    }


def write_files(workdir: Path, local: StandIns, api: str, sample: str) -> tuple[Path, Path]:
    """The env file and the sample (dated now) for sam; returns their paths."""
    workdir.mkdir(parents=True, exist_ok=True)
    env_file = workdir / "env.json"
    env_file.write_text(json.dumps(env_vars(local, api), indent=2) + "\n")
    event_file = workdir / f"event-{Path(sample).stem}.json"
    event_file.write_text(json.dumps(load_api_event(sample_path(sample)), indent=2) + "\n")
    return env_file, event_file


def sample_path(name: str) -> Path:
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in EVENTS_DIR.glob("*.json")))
        raise SystemExit(f"no sample {path.name} in events/; choose one of: {names}")
    return path


def sam_command(
    action: str, env_file: Path, bind: str, add_host: bool, event_file: Path | None = None, port: int = API_PORT
) -> list[str]:
    """The `sam local` command line (`sam` is looked up on PATH when it runs)."""
    overrides = [f"{key}={value}" for key, value in PARAMETER_OVERRIDES.items()]
    common = ["--env-vars", str(env_file), "--parameter-overrides", *overrides]
    if add_host:
        common += ["--add-host", f"{CONTAINER_HOST}:{bind}"]
    if action == "invoke":
        return ["sam", "local", "invoke", FUNCTION_ID, "--event", str(event_file), *common]
    return ["sam", "local", "start-api", "--port", str(port), *common]


def sam_environment(env_file_names: set[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for sam, with placeholder AWS credentials and without the variables the
    env file sets (SAM would otherwise pass a shell value of a declared variable the file does not set)."""
    environ = os.environ if environ is None else environ
    kept = {k: v for k, v in environ.items() if not k.startswith("AWS_") and k not in env_file_names}
    return {
        **kept,
        **FAKE_CREDENTIALS,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "SAM_CLI_TELEMETRY": environ.get("SAM_CLI_TELEMETRY", "0"),
    }


def _print(title: str, payload: Any) -> None:
    print(f"\n== {title}")
    print(json.dumps(payload, indent=2, sort_keys=True))


def _received(graph: GraphStub) -> None:
    if not graph.received:
        print("\n== the Graph API stand-in received nothing")
    for request in graph.received:
        shown = {k: v for k, v in request.body.items() if k not in ("access_token", "appsecret_proof")}
        _print(f"POST {request.path} as the Graph API stand-in received it (answered {request.status})", shown)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localdev.sam_local", description=__doc__)
    parser.add_argument("action", choices=["invoke", "start-api"])
    parser.add_argument("sample", nargs="?", default="purchase", help="a sample in events/ (invoke only)")
    parser.add_argument("--api", choices=["conversions_api", "offline_conversions"], default="conversions_api")
    parser.add_argument("--bind", help="address the stand-ins listen on (default: see above)")
    parser.add_argument("--no-add-host", action="store_true", help=f"do not map {CONTAINER_HOST} for sam")
    parser.add_argument("--port", type=int, default=API_PORT, help="start-api's port")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where the env file and sample go")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if shutil.which("sam") is None:
        raise SystemExit("the SAM CLI is not on PATH: pip install aws-sam-cli, or AWS's installer (docs/deploy.md)")
    if args.bind:
        bind, add_host = args.bind, args.bind not in ("127.0.0.1", "localhost")
    else:
        bind, add_host = bind_address(platform.system(), interface_ipv4("docker0"))
    add_host = add_host and not args.no_add_host
    with stand_ins(bind) as local:
        env_file, event_file = write_files(args.workdir, local, args.api, args.sample)
        command = sam_command(args.action, env_file, bind, add_host, event_file, args.port)
        environment = sam_environment(set(env_vars(local, args.api)[FUNCTION_ID]))
        print(f"stand-ins on {bind}: AWS {local.aws_endpoint}, Graph API port {local.graph.port}")
        print(f"the function calls {local.container_aws_endpoint} and {local.container_graph_url}")
        print(f"env file {env_file}\n$ {' '.join(command)}", flush=True)
        if args.action == "start-api":
            print(
                "\nThen, in another terminal:\n"
                f"  make -s event NAME=purchase ARGS=--body | curl -sS -X POST http://127.0.0.1:{args.port}/events"
                f" -H 'Authorization: {WEBHOOK_AUTHORIZATION}' -H 'Content-Type: application/json' --data @-\n"
                "Ctrl-C stops sam and the stand-ins.",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                subprocess.run(command, env=environment, check=False)  # noqa: S603 - the SAM CLI
            _received(local.graph)
            return 0
        run = subprocess.run(command, env=environment, stdout=subprocess.PIPE, text=True, check=False)  # noqa: S603
        answer = _answer(run.stdout)
        shown = dict(answer, body=_json_or_text(answer.get("body"))) if isinstance(answer, dict) else run.stdout
        _print(f"{event_file.name}: what mParticle gets back", shown)
        _received(local.graph)
        if run.returncode != 0:
            return run.returncode
        status = answer.get("statusCode") if isinstance(answer, dict) else None
        return 0 if isinstance(status, int) and status < 500 else 1


def _json_or_text(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _answer(stdout: str) -> Any:
    """sam local invoke prints the function's response as the last line of its standard output."""
    for line in reversed(stdout.strip().splitlines()):
        with contextlib.suppress(ValueError):
            return json.loads(line)
    return None


if __name__ == "__main__":
    sys.exit(main())
