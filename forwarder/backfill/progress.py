"""Progress of a backfill: rows, rate and time left, from the share of the input's bytes read so far.

On a terminal, a bar redrawn in place on stderr at most five times a second; otherwise a plain line every
ten seconds (stderr for the command, the log in Lambda), and a last one at the end of each input unless the
line before it already said as many rows. The clock is injected, so tests need no waiting.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

TERMINAL_INTERVAL = 0.2
LOG_INTERVAL = 10.0
_BAR = 24


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass
class Progress:
    """`update` after each row or gathering; writes through `emit` no more often than `interval` seconds."""

    emit: Callable[[str, bool], None]  # (text, final)
    interval: float
    bar: bool = False
    clock: Callable[[], float] = time.monotonic
    name: str = ""
    size: int | None = None  # the input's bytes (compressed ones for a .gz)
    rows: int = 0
    _started: float = field(default=0.0)
    _last: float = field(default=float("-inf"))
    _base_rows: int = 0
    _said_rows: int | None = None  # the rows the last line written said

    def start(self, name: str, size: int | None) -> None:
        """A new input: rates and shares restart from here."""
        self.name, self.size, self._started, self._base_rows = name, size, self.clock(), self.rows

    def update(self, rows: int, bytes_read: int, final: bool = False) -> None:
        self.rows = rows
        now = self.clock()
        if not final and now - self._last < self.interval:
            return
        if final and not self.bar and rows == self._said_rows:
            return  # a line, not a bar to end: the last one said it
        self._last, self._said_rows = now, rows
        self.emit(self.text(bytes_read, now), final)

    def text(self, bytes_read: int, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = (self.rows - self._base_rows) / elapsed
        share = min(bytes_read / self.size, 1.0) if self.size else None
        parts = [f"{self.rows:,} rows", f"{rate:,.0f} rows/s"]
        if share is not None:
            parts.append(f"{share:.0%} of {self.name}")
            if 0 < share < 1:
                parts.append(f"about {_duration(elapsed * (1 - share) / share)} left")
        text = ", ".join(parts)
        if self.bar and share is not None:
            filled = int(share * _BAR)
            text = f"[{'#' * filled}{'-' * (_BAR - filled)}] {text}"
        return text


def for_terminal_or_log(err: TextIO | None = None) -> Progress:
    """A bar when `err` (stderr) is a terminal, else a line every LOG_INTERVAL seconds, both on it."""
    err = err or sys.stderr
    tty = err.isatty()

    def emit(text: str, final: bool) -> None:
        if tty:
            print(f"\r\x1b[2K{text}", end="\n" if final else "", file=err, flush=True)
        else:
            print(f"backfill: {text}", file=err, flush=True)

    return Progress(emit, TERMINAL_INTERVAL if tty else LOG_INTERVAL, bar=tty)
