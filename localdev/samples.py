"""Sample API Gateway events from events/, with their timestamps moved to "now".

Facebook refuses offline events older than 62 days, so a sample recorded once would go stale; the
local run and the tests shift every `timestamp_unixtime_ms` by the same amount instead, and
`make -s event NAME=purchase` (`python -m localdev.samples purchase`) prints a sample so rebased, for
`sam local invoke -e -` or, with `--body`, for curl against a deployed webhook (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def _timestamps(node: Any) -> list[int]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "timestamp_unixtime_ms" and isinstance(v, int)]
        return found + [t for v in node.values() for t in _timestamps(v)]
    if isinstance(node, list):
        return [t for v in node for t in _timestamps(v)]
    return []


def _shift(node: Any, delta: int) -> Any:
    if isinstance(node, dict):
        return {
            k: v + delta if k == "timestamp_unixtime_ms" and isinstance(v, int) else _shift(v, delta)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_shift(v, delta) for v in node]
    return node


def rebase(batch: Any, now_ms: int | None = None) -> Any:
    """The batch with its newest timestamp one minute before `now_ms` and the others shifted alike."""
    stamps = _timestamps(batch)
    if not stamps:
        return batch
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return _shift(batch, now_ms - 60_000 - max(stamps))


def load_api_event(path: str | Path, now_ms: int | None = None, development: bool = False) -> dict[str, Any]:
    """An API Gateway proxy event from events/, its batch rebased to now (a non-JSON body is kept); with
    `development`, marked as mParticle marks test traffic (`environment: development`)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = EVENTS_DIR / path
    event: dict[str, Any] = json.loads(path.read_text())
    body = event.get("body")
    if not isinstance(body, str):
        return event
    encoded = event.get("isBase64Encoded", False)
    try:
        batch = json.loads(base64.b64decode(body) if encoded else body)
    except ValueError:
        return event
    batch = rebase(batch, now_ms)
    if development and isinstance(batch, dict):
        batch["environment"] = "development"
    text = json.dumps(batch)
    event["body"] = base64.b64encode(text.encode()).decode() if encoded else text
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make -s event NAME=...", description=__doc__)
    parser.add_argument("name", help="a sample in events/, with or without .json (e.g. purchase)")
    parser.add_argument("--body", action="store_true", help="print only the mParticle batch (the POST body)")
    parser.add_argument(
        "--development",
        action="store_true",
        help="mark the batch environment: development (sent with TEST_EVENT_CODE: docs/configuration.md)",
    )
    args = parser.parse_args(argv)
    path = EVENTS_DIR / (args.name if args.name.endswith(".json") else f"{args.name}.json")
    if not path.is_file():
        names = ", ".join(sorted(sample.stem for sample in EVENTS_DIR.glob("*.json")))
        parser.error(f"no sample {path.name} in events/; choose one of: {names}")
    event = load_api_event(path, development=args.development)
    if args.body:
        body = event["body"]
        print(base64.b64decode(body).decode() if event.get("isBase64Encoded") else body)
    else:
        print(json.dumps(event, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
