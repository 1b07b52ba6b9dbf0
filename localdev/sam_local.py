"""`make local-invoke`, `make local-api`, `make local-invoke-buffered`: the built functions in `sam local`'s
Lambda container, against local stand-ins of AWS and the Graph API (localdev/sam_inputs.py).

    python -m localdev.sam_local ACTION [SAMPLE ...] [OPTIONS] [-- SAM_ARGS ...]

- `invoke [SAMPLE]`: `sam local invoke ForwarderFunction` with the sample (events/, default purchase)
  dated now; prints the function's answer and what the Graph stand-in received.
- `start-api`: `sam local start-api` on port 3000, until Ctrl-C.
- `invoke-buffered [SAMPLE ...]`: DELIVERY_MODE=buffered. ForwarderFunction is invoked with each sample
  (default purchase and add_to_cart) and queues its events in the ingest queue; then the queued messages
  are read here and SenderFunction is invoked with them as the standard SQS event Lambda's event source
  sends (localdev/event_source.py); the messages it does not return in `batchItemFailures` are deleted.

Everything after `--` goes to `sam local` as it is (SAM_ARGS: `--skip-pull-image`, `--invoke-image ...`,
`--debug`). Exit code: sam's own when sam fails; otherwise 0 when every answer was below 500 and, buffered,
the sender returned no `batchItemFailures`; 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from localdev.aws import REGION, WEBHOOK_AUTHORIZATION
from localdev.event_source import Invocation, poll_once
from localdev.graph_stub import GraphStub
from localdev.sam_inputs import (
    API_PORT,
    BUFFERED_PARAMETERS,
    DEFAULT_WORKDIR,
    FUNCTION_ID,
    PARAMETER_OVERRIDES,
    SENDER_ID,
    StandIns,
    bind_address,
    env_vars,
    interface_ipv4,
    sam_command,
    sam_environment,
    stand_ins,
    write_env_file,
    write_json,
    write_local_template,
    write_sample,
)

BUFFERED_SAMPLES = ["purchase", "add_to_cart"]
LAMBDA_MAX_TIMEOUT = 900  # seconds (Lambda quotas)


@dataclass(frozen=True)
class Invoked:
    returncode: int
    answer: Any  # the function's response, parsed; None when sam printed none
    stdout: str


@dataclass(frozen=True)
class Sam:
    """How sam runs here: the env file, how the container reaches the stand-ins, the parameters, SAM_ARGS."""

    env_file: Path
    bind: str
    add_host: bool
    environment: dict[str, str]
    parameters: Mapping[str, str]
    template: Path | None
    sam_args: tuple[str, ...]

    def command(
        self, action: str, event_file: Path | None = None, port: int = API_PORT, function: str = FUNCTION_ID
    ) -> list[str]:
        return sam_command(
            action,
            self.env_file,
            self.bind,
            self.add_host,
            event_file,
            port,
            function=function,
            parameters=self.parameters,
            template=self.template,
            sam_args=self.sam_args,
        )

    def invoke(self, function: str, event_file: Path) -> Invoked:
        command = self.command("invoke", event_file, function=function)
        print(f"\n$ {shlex.join(command)}", flush=True)
        run = subprocess.run(command, env=self.environment, stdout=subprocess.PIPE, text=True, check=False)  # noqa: S603
        return Invoked(run.returncode, _answer(run.stdout), run.stdout)


class SamFailed(Exception):
    """sam itself failed (no Docker, no image, a bad SAM_ARGS): its exit code is ours."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"sam exited {returncode}")
        self.returncode = returncode


def split_sam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Our own arguments, and what follows `--`: SAM_ARGS, passed on to `sam local` as they are."""
    if "--" not in argv:
        return list(argv), []
    at = list(argv).index("--")
    return list(argv[:at]), list(argv[at + 1 :])


def sqs_event_answer(answer: Any, event: Mapping[str, Any]) -> dict[str, Any]:
    """The sender's answer as the SQS event source reads it: a function error (sam prints Lambda's
    `errorType`/`errorMessage`, or nothing) returns every message of the event, as Lambda does."""
    if isinstance(answer, dict) and "errorType" not in answer and "errorMessage" not in answer:
        return answer
    return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in event["Records"]]}


def exit_code(answers: Sequence[Any], invocations: Sequence[Invocation] = ()) -> int:
    """0 when every function answered below 500 and no sender invocation returned a message, else 1."""
    statuses = [answer.get("statusCode") if isinstance(answer, dict) else None for answer in answers]
    below_500 = all(isinstance(status, int) and status < 500 for status in statuses)
    return 0 if below_500 and not any(invocation.failures for invocation in invocations) else 1


def send_queued(sam: Sam, local: StandIns, workdir: Path) -> list[Invocation]:
    """SenderFunction over what the webhook queued, as the SQS event source invokes it (up to 1000 messages a
    time), until the queue is empty or an invocation returns messages (Lambda would redeliver them only after
    the visibility timeout)."""
    sqs = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    ).client("sqs", endpoint_url=local.aws_endpoint)
    invocations: list[Invocation] = []

    def sender(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        event_file = write_json(workdir / f"sqs-event-{len(invocations) + 1}.json", event)
        invoked = sam.invoke(SENDER_ID, event_file)
        _print(f"{event_file.name} ({len(event['Records'])} messages): what SenderFunction answers", invoked.answer)
        if invoked.returncode:
            raise SamFailed(invoked.returncode)
        return sqs_event_answer(invoked.answer, event)

    while (invocation := poll_once(sqs, local.ingest_queue_url, sender)) is not None:
        invocations.append(invocation)
        if invocation.failures:
            break
    if not invocations:
        print("\n== the ingest queue is empty: nothing for SenderFunction")
    return invocations


def _invoke(sam: Sam, event_file: Path, graph: GraphStub) -> int:
    invoked = sam.invoke(FUNCTION_ID, event_file)
    _show(event_file, invoked)
    _received(graph)
    return invoked.returncode or exit_code([invoked.answer])


def _invoke_buffered(sam: Sam, event_files: list[Path], local: StandIns, workdir: Path) -> int:
    answers = []
    for event_file in event_files:
        invoked = sam.invoke(FUNCTION_ID, event_file)
        _show(event_file, invoked)
        if invoked.returncode:
            return invoked.returncode
        answers.append(invoked.answer)
    try:
        invocations = send_queued(sam, local, workdir)
    except SamFailed as failed:
        return failed.returncode
    _received(local.graph)
    return exit_code(answers, invocations)


def _start_api(sam: Sam, port: int, graph: GraphStub) -> int:
    command = sam.command("start-api", port=port)
    print(
        f"$ {shlex.join(command)}\n\nThen, in another terminal:\n"
        f"  make -s event NAME=purchase ARGS=--body | curl -sS -X POST http://127.0.0.1:{port}/events"
        f" -H 'Authorization: {WEBHOOK_AUTHORIZATION}' -H 'Content-Type: application/json' --data @-\n"
        "Ctrl-C stops sam and the stand-ins.",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(command, env=sam.environment, check=False)  # noqa: S603 - the SAM CLI
    _received(graph)
    return 0


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localdev.sam_local", description=__doc__)
    parser.add_argument("action", choices=["invoke", "start-api", "invoke-buffered"])
    parser.add_argument("samples", nargs="*", help="samples in events/ (invoke: one; invoke-buffered: several)")
    parser.add_argument("--api", choices=["conversions_api", "offline_conversions"], default="conversions_api")
    parser.add_argument("--bind", help="address the stand-ins listen on (default: see localdev/sam_inputs.py)")
    parser.add_argument("--no-add-host", action="store_true", help="do not map host.docker.internal for sam")
    parser.add_argument("--port", type=int, default=API_PORT, help="start-api's port")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where the env file and samples go")
    parser.add_argument(
        "--timeout",
        type=int,
        help="the functions' timeout in seconds under sam local (template.yaml's otherwise: 25 and 60), for a "
        "slow machine such as an x86_64 one emulating arm64",
    )
    args = parser.parse_args(argv)
    if args.action == "invoke" and len(args.samples) > 1:
        parser.error("invoke takes one sample (invoke-buffered takes several)")
    if args.action == "invoke-buffered" and args.api != "conversions_api":
        parser.error("invoke-buffered runs on the Conversions API, the only API a queue may feed")
    if args.timeout is not None and not 1 <= args.timeout <= LAMBDA_MAX_TIMEOUT:
        parser.error(f"--timeout must be 1 to {LAMBDA_MAX_TIMEOUT} seconds, Lambda's range")
    args.samples = args.samples or (BUFFERED_SAMPLES if args.action == "invoke-buffered" else ["purchase"])
    return args


def main(argv: list[str] | None = None) -> int:
    own, sam_args = split_sam_args(sys.argv[1:] if argv is None else argv)
    args = _arguments(own)
    if shutil.which("sam") is None:
        raise SystemExit("the SAM CLI is not on PATH: pip install aws-sam-cli, or AWS's installer (docs/deploy.md)")
    if args.bind:
        bind, add_host = args.bind, args.bind not in ("127.0.0.1", "localhost")
    else:
        bind, add_host = bind_address(platform.system(), interface_ipv4("docker0"))
    buffered = args.action == "invoke-buffered"
    with stand_ins(bind) as local:
        env_file = write_env_file(args.workdir, local, args.api, buffered)
        event_files = [write_sample(args.workdir, sample) for sample in args.samples]
        names = {name for values in env_vars(local, args.api, buffered).values() for name in values}
        sam = Sam(
            env_file=env_file,
            bind=bind,
            add_host=add_host and not args.no_add_host,
            environment=sam_environment(names),
            parameters=BUFFERED_PARAMETERS if buffered else PARAMETER_OVERRIDES,
            template=write_local_template(args.workdir, args.timeout) if args.timeout else None,
            sam_args=tuple(sam_args),
        )
        print(f"stand-ins on {bind}: AWS {local.aws_endpoint}, Graph API port {local.graph.port}")
        print(f"the functions call {local.container_aws_endpoint} and {local.container_graph_url}; env file {env_file}")
        if args.action == "start-api":
            return _start_api(sam, args.port, local.graph)
        if buffered:
            return _invoke_buffered(sam, event_files, local, args.workdir)
        return _invoke(sam, event_files[0], local.graph)


def _print(title: str, payload: Any) -> None:
    print(f"\n== {title}")
    print(json.dumps(payload, indent=2, sort_keys=True))


def _show(event_file: Path, invoked: Invoked) -> None:
    answer = invoked.answer
    shown = dict(answer, body=_json_or_text(answer.get("body"))) if isinstance(answer, dict) else invoked.stdout
    _print(f"{event_file.name}: what mParticle gets back", shown)


def _received(graph: GraphStub) -> None:
    if not graph.received:
        print("\n== the Graph API stand-in received nothing")
    for request in graph.received:
        shown = {k: v for k, v in request.body.items() if k not in ("access_token", "appsecret_proof")}
        _print(f"POST {request.path} as the Graph API stand-in received it (answered {request.status})", shown)


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
