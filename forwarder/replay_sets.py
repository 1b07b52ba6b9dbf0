"""What a replay run holds and tells: the parked sets it has received so far, and its report
(forwarder/replay.py; docs/delivery.md, "Parking and replay")."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from forwarder.parked_messages import ParkedPart


@dataclass
class ReplayReport:
    messages: int = 0  # received in this run
    delivered_events: int = 0
    deleted: int = 0
    duplicates: int = 0  # copies of a part already handled (deleted with their set)
    duplicate_events: int = 0  # events of a set that another set of this run also held (sent once)
    incomplete_discarded: int = 0  # parts of sets that can never be completed (deleted)
    reparked_events: int = 0  # undelivered rest of a set Facebook took in part, parked again as a new set
    isolation_requests: int = 0  # extra requests spent isolating the events Facebook rejects
    kept: Counter[str] = field(default_factory=Counter)  # reason -> messages left in the queue
    malformed: Counter[str] = field(default_factory=Counter)  # what is wrong -> messages left, never sent
    waiting: int | None = None  # visible messages left when the run ended
    in_flight: int | None = None  # messages other consumers were holding when the run ended

    @property
    def finished(self) -> bool:
        return not (self.kept or self.malformed or self.waiting or self.in_flight)

    def as_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["kept"], fields["malformed"] = dict(self.kept), dict(self.malformed)
        return fields


@dataclass
class ParkedSet:
    """The parts of one parked set seen so far, and the receipt handles of every copy of them."""

    parts: dict[int, ParkedPart] = field(default_factory=dict)
    handles: list[str] = field(default_factory=list)
    kept: str | None = None  # why it stays in the queue, once a send was tried and did not finish it

    @property
    def complete(self) -> bool:
        first = next(iter(self.parts.values()))
        return len(self.parts) == first.parts

    def first(self) -> ParkedPart:
        return self.parts[min(self.parts)]
