"""What `sam local` is given by `make local-invoke`, `make local-api` and `make local-invoke-buffered`.

The stand-ins (a moto server with the secret the samples authenticate with, the parking and ingest
queues; the Graph API stand-in) listen where the container can reach them; SAM's `--env-vars` file points
the functions at them; samples from events/ are written dated now; the `sam local` command line and the
environment it runs in are built here, and, when asked, a copy of the built template with a longer
function timeout.

How the container reaches this machine: as `host.docker.internal`. Docker Desktop (macOS, Windows)
defines that name and forwards it to the host's loopback, so the stand-ins listen on 127.0.0.1. A
Docker engine on Linux defines nothing: the stand-ins listen on the docker0 bridge's address (reachable
from containers and this machine, not from the network) and `--add-host` maps the name to it.

SAM sets only the variables the template declares from the `--env-vars` file (FACEBOOK_GRAPH_URL and
AWS_ENDPOINT_URL are declared, empty, for this), and passes the AWS credentials of its own session:
`sam` runs here with placeholder credentials, so no real ones reach the container or the stand-ins.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from localdev.aws import FAKE_CREDENTIALS, moto_server, provision
from localdev.graph_stub import GraphStub
from localdev.samples import EVENTS_DIR, load_api_event

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_ID = "ForwarderFunction"
SENDER_ID = "SenderFunction"
CONTAINER_HOST = "host.docker.internal"  # the name forwarder/graph_url.py allows http:// to under sam local
LOCAL_EVENT_SET_ID = "1234567890"
LOCAL_STACK_NAME = "local"  # what SAM resolves AWS::StackName to
DEFAULT_WORKDIR = ROOT / ".aws-sam" / "local"
BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"
# Parameters without a default in template.yaml: sam local needs a value to resolve the template.
PARAMETER_OVERRIDES = {"OfflineEventSetId": LOCAL_EVENT_SET_ID, "CreateApiGatewayLoggingRole": "false"}
BUFFERED_PARAMETERS = {**PARAMETER_OVERRIDES, "DeliveryMode": "buffered"}
API_PORT = 3000
# A function's own properties in the template `sam build` writes (two spaces per level, one per line).
_FUNCTION_TIMEOUT = re.compile(r"^(      Timeout: )\d+$", re.M)
_CODE_URI = re.compile(r"^(      CodeUri: )(\S+)$", re.M)


@dataclass(frozen=True)
class StandIns:
    """Where the stand-ins are: as this machine reaches them, and as the container does."""

    aws_endpoint: str  # from here
    graph: GraphStub
    ingest_queue_url: str  # from here: where the buffered path reads what the webhook queued
    container_aws_endpoint: str
    container_graph_url: str
    container_queue_url: str
    container_ingest_queue_url: str
    secret_id: str
    settled_events_table: str


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
    """moto (secret, parking and ingest queues, settled-events table) and the Graph stand-in, listening on
    `bind`, until the block ends."""
    with moto_server(bind) as endpoint, GraphStub(host=bind) as graph:
        env = provision(endpoint)
        yield StandIns(
            aws_endpoint=endpoint,
            graph=graph,
            ingest_queue_url=env["INGEST_QUEUE_URL"],
            container_aws_endpoint=container_url(endpoint),
            container_graph_url=f"http://{CONTAINER_HOST}:{graph.port}",
            # moto names a queue after the host the request came from; the container calls another.
            container_queue_url=container_url(env["PARKING_QUEUE_URL"]),
            container_ingest_queue_url=container_url(env["INGEST_QUEUE_URL"]),
            secret_id=env["SECRET_ID"],
            settled_events_table=env["SETTLED_EVENTS_TABLE"],
        )


def env_vars(local: StandIns, api: str, buffered: bool = False) -> dict[str, dict[str, str]]:
    """SAM's --env-vars file: values for variables the template declares (the others are ignored); buffered,
    for both functions, which template.yaml gives the same variables."""
    values = {
        "AWS_ENDPOINT_URL": local.container_aws_endpoint,
        "FACEBOOK_GRAPH_URL": local.container_graph_url,
        "SECRET_ID": local.secret_id,
        "PARKING_QUEUE_URL": local.container_queue_url,
        "SETTLED_EVENTS_TABLE": local.settled_events_table,
        "OFFLINE_EVENT_SET_ID": LOCAL_EVENT_SET_ID,
        "FACEBOOK_API": api,
        "POWERTOOLS_SERVICE_NAME": LOCAL_STACK_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": f"MParticleFacebookForwarder/{LOCAL_STACK_NAME}",
    }
    if not buffered:
        return {FUNCTION_ID: values}
    values |= {"DELIVERY_MODE": "buffered", "INGEST_QUEUE_URL": local.container_ingest_queue_url}
    return {FUNCTION_ID: values, SENDER_ID: dict(values)}


def write_files(workdir: Path, local: StandIns, api: str, sample: str, buffered: bool = False) -> tuple[Path, Path]:
    """The env file and the sample (dated now) for sam; returns their paths."""
    return write_env_file(workdir, local, api, buffered), write_sample(workdir, sample)


def write_env_file(workdir: Path, local: StandIns, api: str, buffered: bool = False) -> Path:
    return write_json(workdir / "env.json", env_vars(local, api, buffered))


def write_sample(workdir: Path, sample: str) -> Path:
    """A sample from events/, dated now, as an event file for `sam local invoke --event`."""
    return write_json(workdir / f"event-{Path(sample).stem}.json", load_api_event(sample_path(sample)))


def write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def sample_path(name: str) -> Path:
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in EVENTS_DIR.glob("*.json")))
        raise SystemExit(f"no sample {path.name} in events/; choose one of: {names}")
    return path


def local_template(built: str, built_dir: Path, timeout: int) -> str:
    """The template `sam build` wrote, for `sam local` only: every function's Timeout set to `timeout` seconds
    and its CodeUri made absolute (the copy lives elsewhere). The artifacts and the deployed stack keep
    template.yaml's timeouts; this is for slow machines, such as an x86_64 one emulating arm64."""
    text, timeouts = _FUNCTION_TIMEOUT.subn(rf"\g<1>{timeout}", built)
    text, code_uris = _CODE_URI.subn(lambda found: found[1] + str((built_dir / found[2]).resolve()), text)
    if not timeouts or not code_uris:
        raise SystemExit("the built template has no function Timeout or CodeUri where sam build writes them")
    return text


def write_local_template(workdir: Path, timeout: int, built: Path = BUILT_TEMPLATE) -> Path:
    if not built.is_file():
        raise SystemExit(f"no {built}: run sam build first (make local-invoke does)")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "template.yaml"
    path.write_text(local_template(built.read_text(), built.parent, timeout))
    return path


def sam_command(
    action: str,
    env_file: Path,
    bind: str,
    add_host: bool,
    event_file: Path | None = None,
    port: int = API_PORT,
    *,
    function: str = FUNCTION_ID,
    parameters: Mapping[str, str] = PARAMETER_OVERRIDES,
    template: Path | None = None,
    sam_args: Sequence[str] = (),
) -> list[str]:
    """The `sam local` command line (`sam` is looked up on PATH when it runs); `sam_args` (SAM_ARGS) last, as
    given, so any of sam's own options can be added."""
    overrides = [f"{key}={value}" for key, value in parameters.items()]
    common = ["--env-vars", str(env_file), "--parameter-overrides", *overrides]
    if add_host:
        common += ["--add-host", f"{CONTAINER_HOST}:{bind}"]
    if template is not None:
        common += ["--template", str(template)]
    if action == "invoke":
        return ["sam", "local", "invoke", function, "--event", str(event_file), *common, *sam_args]
    return ["sam", "local", "start-api", "--port", str(port), *common, *sam_args]


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
