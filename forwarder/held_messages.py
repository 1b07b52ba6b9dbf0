"""Messages replay holds: invisible to every other consumer for as long as it works on them.

A heartbeat thread extends the visibility timeout of every held message until it is deleted or released,
so a replay slower than the timeout never lets another one receive the same message. Every SQS call made
here is bounded in total (on the main thread; the heartbeat's own calls have per-read timeouts and are
not waited for past AWS_CALL_SECONDS when replay ends).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from forwarder.deadline import OutOfTime, bounded

VISIBILITY_TIMEOUT = 120
HEARTBEAT_SECONDS = 30  # well inside the visibility timeout, so a held message never reappears
AWS_CALL_SECONDS = 15.0  # per SQS or Secrets Manager call, its SDK retry included


class ReplayFailed(RuntimeError):
    """SQS or Secrets Manager could not be used; the message says which, never any data."""


class HeldMessages:
    """Receipt handles this run holds: kept invisible by a heartbeat until deleted or released."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs, self._queue_url = sqs, queue_url
        self._handles: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="replay-heartbeat", daemon=True)

    def __enter__(self) -> HeldMessages:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(AWS_CALL_SECONDS)  # a heartbeat stuck in a call is left behind (daemon), not waited for
        self.set_visibility(list(self._handles), 0)  # what is kept is visible to the next run at once

    def hold(self, handle: str) -> None:
        with self._lock:
            self._handles.add(handle)

    def count(self) -> int:
        with self._lock:
            return len(self._handles)

    def delete(self, handles: list[str]) -> None:
        for batch in _tens(handles):
            entries = [{"Id": str(index), "ReceiptHandle": handle} for index, handle in enumerate(batch)]
            sqs_call(self._sqs.delete_message_batch, QueueUrl=self._queue_url, Entries=entries)
        with self._lock:
            self._handles.difference_update(handles)

    def set_visibility(self, handles: list[str], seconds: int) -> None:
        for batch in _tens(handles):
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for index, handle in enumerate(batch)
            ]
            sqs_call(self._sqs.change_message_visibility_batch, QueueUrl=self._queue_url, Entries=entries)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                handles = list(self._handles)
            try:
                self.set_visibility(handles, VISIBILITY_TIMEOUT)
            except Exception as error:
                print(f"replay: could not extend the visibility timeout ({type(error).__name__})", file=sys.stderr)


def _tens(items: list[str]) -> Iterator[list[str]]:
    """SQS batch calls take at most ten entries."""
    for start in range(0, len(items), 10):
        yield items[start : start + 10]


def sqs_call(call: Callable[..., Any], **arguments: Any) -> Any:
    """One SQS call, bounded in total (on the main thread); raises ReplayFailed."""
    try:
        with bounded(AWS_CALL_SECONDS):
            return call(**arguments)
    except OutOfTime:
        raise ReplayFailed("SQS did not answer in time") from None
    except Exception as error:  # botocore's ClientError/BotoCoreError: name the kind, not the text
        raise ReplayFailed(f"SQS refused or could not be reached ({type(error).__name__})") from None
