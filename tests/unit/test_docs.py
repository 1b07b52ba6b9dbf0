"""The docs name everything an operator meets: every variable the template gives the functions
(docs/configuration.md), every metric the code sends (docs/observability.md), every parameter, alarm and
output of the template, and the buffered parameters' defaults as the template has them (docs/deploy.md,
sections 2 and 6). The files are read as text: no servers, no template parser.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
OBSERVABILITY = (ROOT / "docs" / "observability.md").read_text()
DEPLOY = (ROOT / "docs" / "deploy.md").read_text()
TEMPLATE = (ROOT / "template.yaml").read_text()
TELEMETRY = (ROOT / "forwarder" / "telemetry.py").read_text()

FUNCTIONS = ("ForwarderFunction", "SenderFunction")
# Sent by Powertools itself (capture_cold_start_metric), not by a call in telemetry.py.
POWERTOOLS_METRICS = {"ColdStart"}


def section(text: str, title: str) -> str:
    """From a heading to the next heading of level 2."""
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_rows(text: str) -> list[list[str]]:
    rows = [line.strip().strip("|") for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.split(" | ")] for row in rows]


def template_section(name: str) -> str:
    """A top-level section of template.yaml (Parameters, Resources, Outputs), up to the next one."""
    start = TEMPLATE.index(f"\n{name}:\n")
    following = re.compile(r"^[A-Za-z]", re.M).search(TEMPLATE, start + len(name) + 3)
    return TEMPLATE[start : following.start() if following else len(TEMPLATE)]


def template_keys(name: str) -> list[str]:
    """The names directly under a top-level section (two spaces in)."""
    return re.findall(r"^  (\w+):$", template_section(name), re.M)


def function_variables(function: str) -> set[str]:
    """The environment variables the template gives one function."""
    start = TEMPLATE.index(f"\n  {function}:\n")
    lines = TEMPLATE[TEMPLATE.index("\n        Variables:\n", start) :].splitlines()[2:]
    names: set[str] = set()
    for line in lines:
        if line.startswith(" " * 10 + "#"):
            continue
        variable = re.match(r" {10}([A-Z][A-Z0-9_]*):", line)
        if variable is None:
            break
        names.add(variable.group(1))
    return names


def parameter_default(name: str) -> str:
    found = re.search(rf"^  {name}:\n(?:    .*\n|      .*\n)*?    Default: (.*)$", template_section("Parameters"), re.M)
    assert found, name
    return found.group(1).strip().strip('"')


def metrics_sent() -> set[str]:
    return set(re.findall(r'name="(\w+)"', TELEMETRY)) | set(re.findall(r'_by_dimension\(\s*"(\w+)"', TELEMETRY))


def test_the_readers_of_this_file_find_what_they_read() -> None:
    assert {"SECRET_ID", "DELIVERY_MODE", "INGEST_QUEUE_URL"} <= function_variables("SenderFunction")
    assert {"EventsQueued", "IngestMessagesRetried", "EventsWithMatchKey"} <= metrics_sent()
    assert {"DeliveryMode", "SenderBatchSize", "ConfigurationDigest"} <= set(template_keys("Parameters"))
    assert {"IngestQueueUrl", "ReplayEnvironment"} <= set(template_keys("Outputs"))
    assert parameter_default("SenderMaximumConcurrency") == "2"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_configuration_page_has_a_row_for_every_variable_of_the_functions(function: str) -> None:
    rows = table_rows(section(CONFIGURATION, "## Variables"))
    documented = {name for cells in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0])}
    assert function_variables(function) - documented == set()


@pytest.mark.parametrize(
    ("variable", "default"),
    [("DELIVERY_MODE", "`direct`"), ("INGEST_QUEUE_URL", "required when `DELIVERY_MODE=buffered`")],
)
def test_configuration_gives_the_delivery_variables_their_contract_defaults(variable: str, default: str) -> None:
    [row] = [cells for cells in table_rows(section(CONFIGURATION, "## Variables")) if cells[0] == f"`{variable}`"]
    assert row[-1] == default


def test_the_observability_page_names_every_metric_the_code_sends() -> None:
    observability = section(OBSERVABILITY, "## Logs, metrics and traces")
    assert sorted(name for name in metrics_sent() | POWERTOOLS_METRICS if f"`{name}`" not in observability) == []


def test_deploy_guide_alarm_table_has_a_row_for_every_alarm() -> None:
    alarms = [name for name in template_keys("Resources") if name.endswith("Alarm")]
    table = table_rows(section(DEPLOY, "## 6. Alarms: what they mean and what to do"))
    rows = {cells[0].split("**")[1] for cells in table if "**" in cells[0]}
    assert len(alarms) >= 13 and sorted(set(alarms) - rows) == []


def test_deploy_guide_section_2_names_every_parameter() -> None:
    deploy = section(DEPLOY, "## 2. Deploy: staging, then production")
    assert [name for name in template_keys("Parameters") if not re.search(rf"\b{name}\b", deploy)] == []


def test_deploy_guide_outputs_table_names_every_output() -> None:
    deploy = section(DEPLOY, "## 2. Deploy: staging, then production")
    outputs = {name for cells in table_rows(deploy) for name in re.findall(r"`(\w+)`", cells[0])}
    assert sorted(set(template_keys("Outputs")) - outputs) == []


def test_deploy_guide_gives_the_buffered_parameters_the_templates_defaults() -> None:
    table = section(DEPLOY, "### Direct or buffered")
    rows = {cells[0].strip("*"): cells[1] for cells in table_rows(table) if cells[0].startswith("**")}
    names = ["SenderBatchSize", "SenderMaximumBatchingWindowInSeconds", "SenderMaximumConcurrency"]
    names += ["IngestMaxReceiveCount", "IngestOldestMessageAlarmSeconds"]
    assert {name: rows.get(name) for name in names} == {name: parameter_default(name) for name in names}
