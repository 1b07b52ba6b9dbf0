"""The dependencies: pyproject.toml declares them, uv.lock pins them, the requirements files are exports.

`sam build` installs requirements.txt and `make test` installs requirements-dev.txt, both with plain pip in
hash-checking mode, so what ships is exactly what uv.lock says. These tests fail when someone edits
pyproject.toml without re-locking, or the lock (or a requirements file) without re-exporting: run
`make lock` (CONTRIBUTING.md, "Dependencies").
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# The Makefile's `lock` target writes each file with these arguments after `uv export`.
EXPORTS = {
    "requirements.txt": ["--no-dev"],
    "requirements-dev.txt": ["--all-groups"],
}


def uv(*args: str) -> str:
    uv_module = pytest.importorskip("uv", reason="uv is a dev dependency: make test installs it")
    done = subprocess.run(  # noqa: S603 - the locked uv, fixed arguments
        [uv_module.find_uv_bin(), *args],
        cwd=ROOT,
        env={**os.environ, "UV_OFFLINE": "1", "UV_NO_PROGRESS": "1"},  # not arguments: uv writes those into the header
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"uv {' '.join(args)}: {done.stderr}\nRun `make lock`."
    return done.stdout


def test_the_lock_matches_pyproject() -> None:
    uv("lock", "--check")


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_each_requirements_file_is_the_export_of_the_lock(name: str) -> None:
    exported = uv("export", "--quiet", "--frozen", "--no-emit-project", *EXPORTS[name])
    assert (ROOT / name).read_text() == exported, f"{name} is not what uv.lock exports: run `make lock`"


def requirement_lines(name: str) -> list[str]:
    return [line for line in (ROOT / name).read_text().splitlines() if line and not line.startswith((" ", "#"))]


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_every_requirement_is_pinned_with_hashes(name: str) -> None:
    """Hash-checking mode: pip installs nothing else, and nothing whose bytes differ from the lock's."""
    lines = requirement_lines(name)
    assert lines
    assert all("==" in line and line.endswith("\\") for line in lines), lines  # a --hash line follows each


def declared(table: dict[str, Any]) -> set[str]:
    return {canonicalize_name(Requirement(spec).name) for spec in table}


def test_the_artifact_ships_the_runtime_dependencies_and_no_dev_tool() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = {canonicalize_name(line.split("==")[0]) for line in requirement_lines("requirements.txt")}
    assert shipped >= declared(pyproject["project"]["dependencies"])
    assert not shipped & declared(pyproject["dependency-groups"]["dev"])
