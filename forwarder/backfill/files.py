"""Where a backfill reads and writes: local paths and `s3://bucket/key` objects, alike.

An input is read as a stream (a local file, or S3's streaming body), so memory does not grow with the
file; it is gzip-decompressed when its name ends in `.gz`, and the bytes read are counted for the progress
line's share done. Its fingerprint (size and SHA-256 of its bytes; for S3 the size and ETag) ties a
checkpoint to one version of its content, however it was copied. Its `identity` is the place itself,
however it was named (a local path resolved), so a checkpoint or report named another way is still the
same one. Small documents (checkpoints, report parts) are written whole: a local file replaced atomically,
or one PutObject. Errors name the place and AWS's error code, never the content.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import IO, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

S3_SCHEME = "s3://"
READ_BUFFER_BYTES = 1024 * 1024
# Reads stream for minutes: a generous read timeout, and the SDK's standard retries for each call.
_S3_CONFIG = Config(connect_timeout=5, read_timeout=60, retries={"total_max_attempts": 4, "mode": "standard"})


class InputError(RuntimeError):
    """A file or object cannot be read or written; the message names it and the cause, never its content."""


class Kind(StrEnum):
    """What an input holds, from its name (docs/backfill.md, "Files")."""

    JSONL = "jsonl"  # one mParticle batch per line
    CSV = "csv"  # one conversion per row, in the columns of Meta's offline event uploads


_SUFFIXES = {".jsonl": Kind.JSONL, ".jsonl.gz": Kind.JSONL, ".csv": Kind.CSV, ".csv.gz": Kind.CSV}


@dataclass(frozen=True, slots=True)
class Location:
    """A local path (`bucket` None) or an S3 object."""

    path: str  # the local path, or the object's key
    bucket: str | None = None

    @classmethod
    def parse(cls, text: str) -> Location:
        if not text.startswith(S3_SCHEME):
            return cls(text)
        bucket, _, key = text[len(S3_SCHEME) :].partition("/")
        if not bucket or not key:
            raise InputError(f"{text}: an S3 location is s3://bucket/key")
        return cls(key, bucket)

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.path}" if self.bucket is not None else self.path

    @property
    def identity(self) -> str:
        """The place itself, however it was named: a local path made absolute, its links resolved."""
        return os.path.realpath(self.path) if self.bucket is None else str(self)

    def beside(self, suffix: str) -> Location:
        """The place next to this one whose name adds `suffix` (the checkpoint, the report)."""
        return Location(self.path + suffix, self.bucket)

    @property
    def gzipped(self) -> bool:
        return self.path.lower().endswith(".gz")

    @property
    def kind(self) -> Kind:
        """Raises InputError for a name that is none of .jsonl, .jsonl.gz, .csv, .csv.gz."""
        lowered = self.path.lower()
        for suffix, kind in _SUFFIXES.items():
            if lowered.endswith(suffix):
                return kind
        raise InputError(f"{self}: the name must end in {', '.join(_SUFFIXES)}")


@cache
def s3_client() -> Any:
    """One client per process; boto3 honours AWS_ENDPOINT_URL (tests point it at a local moto server)."""
    import boto3

    return boto3.client("s3", config=_S3_CONFIG)


def aws_problem(location: Location, error: Exception) -> InputError:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "unknown")
        return InputError(f"{location}: S3 answered {code}")
    return InputError(f"{location}: S3 could not be reached ({type(error).__name__})")


def fingerprint(location: Location) -> dict[str, Any]:
    """What identifies this version of the input: its size and the SHA-256 of its bytes (read once, streamed),
    or S3's size and ETag (S3's own digest of the content)."""
    try:
        if location.bucket is None:
            with open(location.path, "rb") as content:
                digest = hashlib.file_digest(content, "sha256").hexdigest()
                return {"size": os.fstat(content.fileno()).st_size, "sha256": digest}
        head = s3_client().head_object(Bucket=location.bucket, Key=location.path)
        return {"size": head["ContentLength"], "etag": head["ETag"]}
    except OSError as error:
        raise InputError(f"{location}: {error.strerror or type(error).__name__}") from None
    except (ClientError, BotoCoreError) as error:
        raise aws_problem(location, error) from None


def size_of(location: Location) -> int | None:
    """The input's size in bytes, or None when it cannot be known (the progress line then shows no share)."""
    try:
        if location.bucket is None:
            return os.stat(location.path).st_size
        return int(s3_client().head_object(Bucket=location.bucket, Key=location.path)["ContentLength"])
    except (OSError, ClientError, BotoCoreError):
        return None


class CountingReader(io.RawIOBase):
    """A raw stream over anything with `read(size)`, counting the bytes read (the compressed ones, for gzip)."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()


@contextmanager
def open_input(location: Location) -> Iterator[tuple[IO[bytes], CountingReader]]:
    """The input as a buffered binary stream (decompressed if gzipped) and its byte counter. Raises InputError
    when it cannot be opened; a failure while reading it raises OSError or botocore's errors."""
    try:
        if location.bucket is None:
            source: Any = open(location.path, "rb")  # noqa: SIM115 (closed by the CountingReader)
        else:
            source = s3_client().get_object(Bucket=location.bucket, Key=location.path)["Body"]
    except OSError as error:
        raise InputError(f"{location}: {error.strerror or type(error).__name__}") from None
    except (ClientError, BotoCoreError) as error:
        raise aws_problem(location, error) from None
    counter = CountingReader(source)
    stream: IO[bytes] = io.BufferedReader(counter, READ_BUFFER_BYTES)
    try:
        if location.gzipped:
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
        yield stream, counter
    finally:
        stream.close()
        counter.close()


def read_document(location: Location, first_bytes: int | None = None) -> bytes | None:
    """A small document's bytes (or its first `first_bytes`), or None when there is none. Raises InputError."""
    try:
        if location.bucket is None:
            with open(location.path, "rb") as document:
                return document.read(-1 if first_bytes is None else first_bytes)
        ranged = {} if first_bytes is None else {"Range": f"bytes=0-{first_bytes - 1}"}
        answer = s3_client().get_object(Bucket=location.bucket, Key=location.path, **ranged)
        return bytes(answer["Body"].read())
    except FileNotFoundError:
        return None
    except OSError as error:
        raise InputError(f"{location}: {error.strerror or type(error).__name__}") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404"):
            return None
        if code == "InvalidRange":  # an empty object
            return b""
        raise aws_problem(location, error) from None
    except BotoCoreError as error:
        raise aws_problem(location, error) from None


def write_document(location: Location, data: bytes) -> None:
    """Write a small document whole: a reader sees the old one or the new one, never a part. Raises InputError."""
    try:
        if location.bucket is None:
            temporary = f"{location.path}.tmp"
            with open(temporary, "wb") as document:
                document.write(data)
                document.flush()
                os.fsync(document.fileno())
            os.replace(temporary, location.path)
            return
        s3_client().put_object(Bucket=location.bucket, Key=location.path, Body=data)
    except OSError as error:
        raise InputError(f"{location}: {error.strerror or type(error).__name__}") from None
    except (ClientError, BotoCoreError) as error:
        raise aws_problem(location, error) from None


def delete_documents(locations: list[Location]) -> None:
    """Delete documents that may not exist (local files, or S3 objects of one bucket, 1000 a call)."""
    try:
        local = [location for location in locations if location.bucket is None]
        for location in local:
            if os.path.exists(location.path):
                os.remove(location.path)
        remote = [location for location in locations if location.bucket is not None]
        for start in range(0, len(remote), 1000):
            chunk = remote[start : start + 1000]
            objects = [{"Key": location.path} for location in chunk]
            s3_client().delete_objects(Bucket=chunk[0].bucket, Delete={"Objects": objects, "Quiet": True})
    except OSError as error:
        raise InputError(f"{locations[0]}: {error.strerror or type(error).__name__}") from None
    except (ClientError, BotoCoreError) as error:
        raise aws_problem(locations[0], error) from None
