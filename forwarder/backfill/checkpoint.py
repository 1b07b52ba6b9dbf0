"""The checkpoint: which rows of one input an earlier run settled, so that a rerun sends none of them again.

Meta's de-duplication is not enough: the Offline Conversions API has none, and the Conversions API's lasts
48 hours. One small JSON document per input and connection, beside the input (`<input>.<connection>.
checkpoint.json`, an object beside it for `s3://`) or in `--checkpoint-dir`, written after each gathering
of rows is settled (`format` 1):

- `fingerprint`, `destination`: the version of the input and where its rows went; a checkpoint of another
  version or another dataset is refused rather than guessed at.
- `next_row`: every row before this line was settled (forwarded, skipped or parked) and reported.
- `held`: rows after `next_row` that were settled in the gathering where the run stopped (it stops at the
  first row it could not settle), with their report lines, written again as they were.
- `sending`: the rows of a gathering being sent when the run was cut off. On an API that de-duplicates they
  are sent again (Meta counts each once); on the Offline Conversions API they are reported failed and
  never sent again, since nobody can know whether Facebook took them.
- `report`: the report these rows were written to and how much of it they fill (its `mark`), so a rerun
  into the same report goes on from there and the report has one line per row.
- `finished`: every row was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from forwarder.backfill.files import InputError, Location, read_document, write_document
from forwarder.backfill.readers import RowFilter

FORMAT_VERSION = 1
SUFFIX = ".checkpoint.json"


class CheckpointMismatch(InputError):
    """The checkpoint belongs to another version of the input or another destination."""


@dataclass(slots=True)
class Checkpoint:
    location: Location
    fingerprint: dict[str, Any]
    destination: dict[str, Any]
    next_row: int = 1
    held: dict[int, dict[str, Any]] = field(default_factory=dict)
    sending: tuple[int, int] | None = None
    report: dict[str, Any] | None = None  # {"location": str, "mark": int}
    finished: bool = False

    @classmethod
    def place(cls, source: Location, connection: str, directory: str | None) -> Location:
        """Where the checkpoint of `source` for `connection` is kept."""
        if directory is None:
            return source.beside(f".{connection}{SUFFIX}")
        name = str(source).replace("://", "_").replace("/", "_")
        return Location(f"{directory.rstrip('/')}/{name}.{connection}{SUFFIX}")

    @classmethod
    def load(cls, location: Location, fingerprint: dict[str, Any], destination: dict[str, Any]) -> Checkpoint:
        """The checkpoint kept at `location`, or a fresh one. Raises CheckpointMismatch or InputError."""
        raw = read_document(location)
        fresh = cls(location, fingerprint, destination)
        if raw is None:
            return fresh
        try:
            stored = orjson.loads(raw)
            if stored.get("format") != FORMAT_VERSION:
                raise ValueError("format")
            kept = cls(
                location,
                stored["fingerprint"],
                stored["destination"],
                int(stored["next_row"]),
                {int(row): line for row, line in stored["held"].items()},
                tuple(stored["sending"]) if stored.get("sending") else None,
                stored.get("report"),
                bool(stored.get("finished")),
            )
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            raise CheckpointMismatch(f"{location}: not a checkpoint of this version: remove it to start over") from None
        if kept.fingerprint != fingerprint:
            raise CheckpointMismatch(
                f"{location} was written for another version of the input: remove it to send this one from the start"
            )
        if kept.destination != destination:
            raise CheckpointMismatch(
                f"{location} was written for another dataset or API: remove it to send the input to this one"
            )
        return kept

    def rows_to_read(self) -> RowFilter:
        return RowFilter(self.next_row, frozenset(self.held))

    def report_mark(self, report: Location | None) -> int | None:
        """How much of `report` the settled rows fill, when it is the report they were written to."""
        if report is None or self.report is None or self.report.get("location") != str(report):
            return None
        mark = self.report.get("mark")
        return mark if isinstance(mark, int) else None

    def save(self) -> None:
        document = {
            "format": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "destination": self.destination,
            "next_row": self.next_row,
            "held": {str(row): line for row, line in self.held.items()},
            "sending": list(self.sending) if self.sending else None,
            "report": self.report,
            "finished": self.finished,
        }
        write_document(self.location, orjson.dumps(document))
