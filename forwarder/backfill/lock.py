"""One run at a time per input and connection: a lock beside the input's checkpoint (`<input>.<connection>.lock`).

Two runs of one file at once would each read the checkpoint the other writes and send the rows after it, and
the Offline Conversions API would count them twice: S3 delivers its event notifications at least once (so
one put may start two executions), and an operator may start `make backfill` again in a second terminal. The
second run is refused (`Locked`) before it reads a row.

- Beside a local checkpoint: a file locked with flock(2), held while the run lasts. The kernel releases it
  when the process ends, however it ends, so a crashed run never leaves it held.
- Beside an S3 checkpoint: an object created only if there is none (PutObject `If-None-Match: *`, S3's
  conditional writes) holding a lease, `expires` in Unix seconds, which its run renews while it runs
  (PutObject `If-Match` its ETag) and deletes when it ends (DeleteObject `If-Match`). The lease always covers
  the gathering being sent (`renew(for_seconds)`), so it cannot lapse mid-request; a lock whose lease has
  expired belongs to a run that died, and the next run takes it over (`If-Match` the ETag it read: of two
  runs trying, one wins). A run whose lock was taken over stops before writing its checkpoint (`LockLost`).
  Leases compare clocks of different machines: they are minutes long, clocks seconds apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from forwarder.backfill.files import InputError, Location, aws_problem, s3_client

SUFFIX = ".lock"
LEASE_SECONDS = 600.0  # how long an S3 lock stays held without a renewal
WRITE_MARGIN_SECONDS = 120.0  # after a gathering is sent: its report part and checkpoint are written
_TAKEN = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class Locked(InputError):
    """Another run is sending this input to this connection now."""


class LockLost(InputError):
    """This run's lock lapsed and another run took it over: it must write nothing more."""


class Lock(Protocol):
    def renew(self, for_seconds: float = 0.0) -> None:
        """Make sure the lock stays held for `for_seconds` more (and then some); raises LockLost."""

    def release(self) -> None: ...


def place(checkpoint: Location, checkpoint_suffix: str) -> Location:
    """The lock beside a checkpoint (named without the checkpoint's suffix: the backfill bucket's rule ignores it)."""
    return Location(checkpoint.path.removesuffix(checkpoint_suffix) + SUFFIX, checkpoint.bucket)


def acquire(location: Location, input_name: str, clock: Callable[[], float] = time.time) -> Lock:
    """Hold the lock at `location` for the run of `input_name`; raises Locked, or InputError when it cannot be
    written."""
    if location.bucket is None:
        return LocalLock.acquire(location, input_name)
    return S3Lock.acquire(location, input_name, clock)


def _refusal(input_name: str, holder: str) -> Locked:
    return Locked(
        f"{input_name}: another backfill run is sending it now ({holder}); wait for it to end, then run again to go "
        "on from its checkpoint. Two runs at once would send the same rows twice"
    )


@dataclass
class LocalLock:
    location: Location
    descriptor: int

    @classmethod
    def acquire(cls, location: Location, input_name: str) -> LocalLock:
        path = location.path
        for _ in range(3):  # the holder may remove the file between our open and our lock: lock the new one
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise InputError(f"{location}: {error.strerror or type(error).__name__}") from None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                raise _refusal(input_name, f"its lock: {location}") from None
            try:
                if os.path.samestat(os.fstat(descriptor), os.stat(path)):
                    return cls(location, descriptor)
            except FileNotFoundError:
                pass
            os.close(descriptor)
        raise _refusal(input_name, f"its lock: {location}")

    def renew(self, for_seconds: float = 0.0) -> None:
        """Held until released: nothing to renew."""

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.location.path)  # while still locked: a run waiting for it then locks a new file
        os.close(self.descriptor)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@dataclass
class S3Lock:
    location: Location
    owner: dict[str, Any]
    clock: Callable[[], float]
    etag: str = ""
    expires: float = 0.0

    @classmethod
    def acquire(cls, location: Location, input_name: str, clock: Callable[[], float]) -> S3Lock:
        owner = {"run": uuid.uuid4().hex, "host": socket.gethostname()[:64], "pid": os.getpid()}
        lock = cls(location, owner, clock)
        try:
            lock._write(0.0, IfNoneMatch="*")
            return lock
        except ClientError as error:
            if _code(error) not in _TAKEN:
                raise aws_problem(location, error) from None
        held, etag = lock._read()
        expires = held.get("expires") if held else None
        if held and isinstance(expires, int | float) and expires > clock():
            until = datetime.fromtimestamp(expires, UTC).strftime("%H:%M:%S UTC")
            holder = f"a run on {held.get('host')}, pid {held.get('pid')}, holds {location} until {until}"
            raise _refusal(input_name, holder)
        try:  # its run died: take it over, unless another run just did
            lock._write(0.0, **({"IfMatch": etag} if held is not None else {"IfNoneMatch": "*"}))
        except ClientError as error:
            if _code(error) in _TAKEN:
                raise _refusal(input_name, f"it took over {location} just now") from None
            raise aws_problem(location, error) from None
        return lock

    def _write(self, for_seconds: float, **condition: str) -> None:
        """Write the lock with a lease of LEASE_SECONDS, or long enough for `for_seconds` more; raises ClientError
        when `condition` does not hold."""
        expires = self.clock() + max(LEASE_SECONDS, for_seconds + WRITE_MARGIN_SECONDS)
        body = orjson.dumps({**self.owner, "expires": expires})
        try:
            answer = s3_client().put_object(Bucket=self.location.bucket, Key=self.location.path, Body=body, **condition)
        except BotoCoreError as error:
            raise aws_problem(self.location, error) from None
        self.etag, self.expires = str(answer["ETag"]), expires

    def _read(self) -> tuple[dict[str, Any] | None, str]:
        """The lock held now and its ETag (None: there is none); a document this code did not write has no lease."""
        try:
            answer = s3_client().get_object(Bucket=self.location.bucket, Key=self.location.path)
            raw, etag = answer["Body"].read(), str(answer["ETag"])
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404"):
                return None, ""
            raise aws_problem(self.location, error) from None
        except BotoCoreError as error:
            raise aws_problem(self.location, error) from None
        try:
            held = orjson.loads(raw)
        except orjson.JSONDecodeError:
            held = None
        return (held if isinstance(held, dict) else {}), etag

    def renew(self, for_seconds: float = 0.0) -> None:
        if self.expires - self.clock() > max(for_seconds + WRITE_MARGIN_SECONDS, LEASE_SECONDS / 2):
            return  # nobody can have taken it over, and it lasts long enough
        try:
            self._write(for_seconds, IfMatch=self.etag)
        except ClientError as error:
            if _code(error) in (*_TAKEN, "NoSuchKey", "404"):
                raise LockLost(
                    f"{self.location}: this run's lock lapsed and another run took it over; this run stopped "
                    "before writing its checkpoint (the other run goes on from it)"
                ) from None
            raise aws_problem(self.location, error) from None

    def release(self) -> None:
        """Delete the lock if it is still this run's (a lock another run took over is left to it)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            s3_client().delete_object(Bucket=self.location.bucket, Key=self.location.path, IfMatch=self.etag)
