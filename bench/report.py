"""The results table: printed, and written to bench/RESULTS.md with the machine it ran on."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

from bench.harness import Row

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_HEADER = ("metric", "measured", "floor / reference", "ratio", "target", "met?")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), {date}; "
        f"load average at the end {load} (other work on the machine skews the numbers)"
    )


def _met(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "**no**")


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for row in rows:
        cells = (row.metric, row.measured, row.reference, row.ratio, row.target, _met(row.met))
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def markdown(rows: list[Row], notes: list[str], command: str) -> str:
    met = [row for row in rows if row.met is not None]
    passed = sum(1 for row in met if row.met)
    all_notes = [note for row in rows for note in row.notes] + notes
    return "\n".join(
        [
            "# Benchmark results",
            "",
            f"Machine: {machine()}.",
            f"Rerun: `make bench` (or `{command}`); it rewrites this file. Targets met: {passed} of {len(met)}.",
            "",
            table(rows),
            "",
            "## Notes",
            "",
            *(f"- {note}" for note in all_notes),
            "",
        ]
    )
