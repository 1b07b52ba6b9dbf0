"""The backfill end to end: `python -m forwarder.backfill` (its `main`) over files of thousands of rows, against
a moto server (S3, SQS, Secrets Manager) and the Graph stand-in.

Every test counts, per input row, what Facebook acknowledged (by order id, which every row carries): each
row that should be forwarded exactly once, whatever interruptions and reruns came between; and every row
has one report line saying what became of it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from forwarder.backfill import __main__ as backfill_main
from forwarder.backfill.__main__ import main
from forwarder.backfill.progress import Progress
from forwarder.posting import Poster
from localdev.graph_stub import Fault, GraphStub
from tests.faulty_servers import parked_messages, reasons
from tests.support import NOW_MS, commerce_event, make_batch

NOW = NOW_MS // 1000
DAY = 86_400
CSV_HEADER = ["event_name", "event_time", "value", "currency", "order_id", "email", "phone", "country", "action_source"]


def csv_row(index: int, api: str) -> tuple[list[str], str | None]:
    """Row `index` of a test file, and the reason it is skipped (None: forwarded; "parked": rejected by Meta)."""
    order = f"o-{index}"
    email = f"user{index}@example.com"
    if index % 97 == 5:
        return ["Purchase", "last tuesday", "10", "USD", order, email, "", "US", ""], "invalid_event_time"
    if index % 89 == 6:
        return ["Purchase", str(NOW - 63 * DAY), "10", "USD", order, email, "", "US", ""], "too_old"
    if index % 83 == 7:
        # Meta: a website event up to 7 days old on the Conversions API; the Offline Conversions API has no
        # action source, and takes any event up to 62 days old.
        return ["Lead", str(NOW - 8 * DAY), "", "", order, email, "", "US", "website"], (
            "too_old" if api == "conversions_api" else None
        )
    if index % 79 == 8:
        return ["Purchase", str(NOW - 60), "10", "USD", order, "", "", "", ""], "no_match_key"
    if index % 501 == 9:  # the Graph stand-in refuses it (`reject_marked`) by its order id: the Offline Conversions
        # API's events carry one, the Conversions API's are known by event_id
        return ["Purchase", str(NOW - 60), "10", "USD", f"BAD-{index}", email, "", "US", ""], (
            "parked" if api == "offline_conversions" else None
        )
    name = ("Purchase", "AddToCart", "Lead")[index % 3]
    phone = f"+1 415 555 {index % 10000:04d}" if index % 2 else ""
    return [name, str(NOW - 3600 - index), f"{index % 40 + 1}.50", "USD", order, email, phone, "US", ""], None


def write_csv(
    path: Path, rows: int, bad_utf8: tuple[int, ...] = (), api: str = "conversions_api"
) -> dict[int, str | None]:
    """A CSV file (gzipped for .gz) of `rows` rows; returns each row's line and expected skip reason. Rows in
    `bad_utf8` get a byte that is not UTF-8 in their email."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    expected: dict[int, str | None] = {}
    for index in range(rows):
        cells, reason = csv_row(index, api)
        if index in bad_utf8:
            cells[5], reason = "\udcffbad@example.com", "malformed_row"
        writer.writerow(cells)
        expected[index + 2] = reason  # line 1 is the header
    data = text.getvalue().encode("utf-8", "surrogateescape")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return expected


def report_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


ROW_OF_EMAIL = {hashlib.sha256(f"user{index}@example.com".encode()).hexdigest(): index for index in range(6000)}


def acknowledged(graph: GraphStub) -> Counter[str]:
    """How many times Facebook acknowledged each row (its order id; a CSV row is known by its email's hash, as
    only product actions carry an order id), or each event of a JSON Lines batch (its order id)."""
    found: Counter[str] = Counter()
    for request in graph.received:
        if request.status == 200:
            for event in request.data:
                keys = event.get("user_data") or event.get("match_keys")
                email = keys.get("em") or keys.get("email")
                row = ROW_OF_EMAIL.get(email)
                found[f"o-{row}" if row is not None else event.get("order_id") or event["custom_data"]["order_id"]] += 1
    return found


def forwarded_orders(expected: dict[int, str | None]) -> Counter[str]:
    return Counter(f"o-{line - 2}" for line, reason in expected.items() if reason is None)


def statuses(lines: list[dict[str, Any]]) -> dict[int, str]:
    return {line["row"]: line["reason"] if line["status"] == "skipped" else line["status"] for line in lines}


def expected_statuses(expected: dict[int, str | None]) -> dict[int, str]:
    return {row: "forwarded" if reason is None else reason for row, reason in expected.items()}


def backfill(*args: str | Path) -> tuple[int, dict[str, Any]]:
    """Run the command; its exit status and the summary it printed."""
    output = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(output):
        status = main([str(arg) for arg in args])
    return status, json.loads(output.getvalue()) if output.getvalue() else {}


@pytest.fixture
def capi(function_env: Callable[..., None]) -> None:
    function_env(FACEBOOK_API="conversions_api")


def test_a_csv_file_of_thousands_of_rows_is_sent_once_each_with_a_line_per_row(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub, api: str
) -> None:
    function_env(FACEBOOK_API=api)
    graph.reject_marked = "BAD"
    source, report = tmp_path / "sales.csv.gz", tmp_path / "report.jsonl"
    expected = write_csv(source, 3000, bad_utf8=(42, 1500), api=api)

    status, summary = backfill("--report", report, source)

    assert status == 0
    assert acknowledged(graph) == forwarded_orders(expected)
    limit = 2000 if api == "offline_conversions" else 1000
    assert all(len(request.data) <= limit for request in graph.received)
    lines = report_lines(report)
    assert [line["row"] for line in lines] == sorted(expected)
    assert statuses(lines) == expected_statuses(expected)
    assert all(line["reason"] is None for line in lines if line["status"] == "forwarded")
    parked = [line for line in lines if line["status"] == "parked"]
    assert all("rejected by Facebook" in line["reason"] for line in parked)
    assert bool(parked) == (api == "offline_conversions")
    assert sum(len(reasons(message)) for message in parked_messages(aws)) == len(parked)
    reasons_seen = Counter(reason for reason in expected.values() if reason not in (None, "parked"))
    assert summary["by_reason"]["skipped"] == dict(reasons_seen)
    assert summary["forwarded"] == sum(reason is None for reason in expected.values())


def make_jsonl(path: Path, lines: int) -> tuple[dict[int, str | None], Counter[str]]:
    """JSON Lines of webhook batches (both shapes), with blank and malformed lines and too-old events;
    each line's expected skip reason (None: forwarded) and the order ids that should be forwarded."""
    expected: dict[int, str | None] = {}
    orders: Counter[str] = Counter()
    out = []
    for index in range(lines):
        number = index + 1
        if index % 211 == 3:
            out.append("")
            continue
        if index % 97 == 4:
            out.append('{"events": [')
            expected[number] = "malformed_line"
            continue
        ids = [f"o-{index}-{n}" for n in range(1 + index % 3)]
        events = [commerce_event("add_to_cart", source_message_id=i, product_action={"transaction_id": i}) for i in ids]
        if index % 89 == 5:  # one event too old among recent ones: the line is still forwarded
            events[0]["data"]["timestamp_unixtime_ms"] = NOW_MS - 70 * DAY * 1000
            ids = ids[1:]
        expected[number] = None if ids else "too_old"
        orders.update(ids)
        out.append(json.dumps(make_batch(events, batch_id=index)))
    path.write_text("\n".join(out) + "\n")
    return expected, orders


def test_json_lines_of_mparticle_batches_are_sent_like_the_webhooks(
    tmp_path: Path, aws: dict[str, str], capi: None, graph: GraphStub
) -> None:
    source, report = tmp_path / "batches.jsonl", tmp_path / "report.jsonl"
    expected, orders = make_jsonl(source, 2500)

    status, summary = backfill("--report", report, source)

    assert status == 0 and acknowledged(graph) == orders
    lines = report_lines(report)
    assert statuses(lines) == expected_statuses(expected)
    partly = [line for line in lines if line.get("skipped")]
    assert partly and all(line["status"] == "forwarded" and line["skipped"] == {"too_old": 1} for line in partly)
    assert all("problem" in line for line in lines if line["reason"] == "malformed_line")
    assert summary["events"]["forwarded"] == sum(orders.values())


def test_a_dry_run_sends_nothing_keeps_no_checkpoint_and_reports_what_would_happen(
    tmp_path: Path, aws: dict[str, str], capi: None, graph: GraphStub
) -> None:
    source, report = tmp_path / "sales.csv", tmp_path / "report.jsonl"
    expected = write_csv(source, 1200)

    status, summary = backfill("--dry-run", "--report", report, source)

    assert status == 0 and graph.received == [] and parked_messages(aws) == []
    assert sorted(tmp_path.iterdir()) == [report, source]
    dry = {row: "forwarded" if reason == "parked" else reason for row, reason in expected_statuses(expected).items()}
    assert statuses(report_lines(report)) == dry
    assert summary["dry_run"] is True and summary["requests"] == 0
    assert summary["by_reason"]["skipped"]["too_old"] == sum(reason == "too_old" for reason in expected.values())


# Meta counts an event_name + event_id once on the Conversions API (Meta, "Handling Duplicate Pixel and
# Conversions API Events"); the Offline Conversions API has no de-duplication and counts each copy.
SENT_TWICE = {
    "conversions_api": {"forwarded": 2, "duplicates": 1},
    "offline_conversions": {"forwarded": 3, "duplicates": 0},
}


def test_a_dry_run_counts_the_copies_a_real_run_would_leave_out(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub, api: str
) -> None:
    """Two identical rows are one event with one event_id: the dry run's summary is the real run's."""
    function_env(FACEBOOK_API=api)
    row = ["Purchase", str(NOW - 3600), "10.50", "USD", "o-1", "user1@example.com", "", "US", ""]
    other = ["Purchase", str(NOW - 3600), "12.50", "USD", "o-2", "user2@example.com", "", "US", ""]
    source = tmp_path / "sales.csv"
    source.write_text("\n".join(",".join(cells) for cells in (CSV_HEADER, row, row, other)) + "\n")

    _, dry = backfill("--dry-run", source)
    status, sent = backfill(source)

    assert status == 0
    wanted = SENT_TWICE[api]
    assert {key: dry["events"][key] for key in wanted} == wanted
    assert {key: sent["events"][key] for key in wanted} == wanted
    assert sum(len(request.data) for request in graph.received) == wanted["forwarded"]


class Interrupted(BaseException):
    """The process killed: neither caught nor cleaned up after by the code under test."""


def killed_after_gatherings(count: int) -> Callable[[], Progress]:
    """Progress whose `count`th report kills the run: after that many gatherings were reported and checkpointed."""
    calls = {"n": 0}

    def progress(text: str, final: bool) -> None:
        calls["n"] += 1
        if calls["n"] == count:
            raise Interrupted

    return lambda: Progress(progress, interval=0.0)


def test_a_run_killed_between_gatherings_then_rerun_sends_each_row_once_into_one_report(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub, api: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    function_env(FACEBOOK_API=api)
    graph.reject_marked = "BAD"
    source, report = tmp_path / "sales.csv", tmp_path / "report.jsonl"
    expected = write_csv(source, 5000, api=api)
    quiet = backfill_main.for_terminal_or_log
    monkeypatch.setattr(backfill_main, "for_terminal_or_log", killed_after_gatherings(2))
    with pytest.raises(Interrupted):
        backfill("--report", report, source)
    monkeypatch.setattr(backfill_main, "for_terminal_or_log", quiet)
    first = acknowledged(graph)
    assert 0 < sum(first.values()) < sum(forwarded_orders(expected).values())

    status, summary = backfill("--report", report, source)

    assert status == 0 and acknowledged(graph) == forwarded_orders(expected)
    assert summary["settled_earlier"] > 0
    lines = report_lines(report)
    assert [line["row"] for line in lines] == sorted(expected)
    assert statuses(lines) == expected_statuses(expected)


def test_a_row_facebook_refuses_for_want_of_permission_stops_the_run_and_a_rerun_goes_on_from_it(
    tmp_path: Path, aws: dict[str, str], capi: None, graph: GraphStub
) -> None:
    source, report = tmp_path / "sales.csv", tmp_path / "report.jsonl"
    expected = write_csv(source, 3500)
    graph.script(Fault(), Fault.graph_error(200, message="Permissions error"))  # the second request

    status, summary = backfill("--report", report, source)

    assert status == 1 and summary["state"] == "stopped" and summary["failed"] > 0
    assert "permission" in summary["stopped"]
    stopped = report_lines(report)
    assert stopped[-1]["row"] < max(expected)  # nothing after the gathering that failed was read
    assert {line["status"] for line in stopped[-summary["failed"] :]} <= {"failed", "skipped"}

    status, summary = backfill("--report", report, source)

    assert status == 0 and acknowledged(graph) == forwarded_orders(expected)
    lines = report_lines(report)
    assert [line["row"] for line in lines] == sorted(expected)
    assert statuses(lines) == {
        row: "forwarded" if s == "parked" else s for row, s in expected_statuses(expected).items()
    }


def test_a_run_killed_while_sending_to_the_offline_conversions_api_never_sends_that_gathering_again(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Nobody can know whether Facebook took a request whose answer was lost, and this API would count it twice."""
    function_env(FACEBOOK_API="offline_conversions")
    source, report = tmp_path / "sales.csv", tmp_path / "report.jsonl"
    expected = write_csv(source, 4500, api="offline_conversions")
    original = Poster.post

    def killed_after_sending(self: Poster, *args: Any) -> Any:
        outcome = original(self, *args)
        if len(graph.received) == 2:
            raise Interrupted
        return outcome

    monkeypatch.setattr(Poster, "post", killed_after_sending)
    with pytest.raises(Interrupted):
        backfill("--report", report, source)
    monkeypatch.setattr(Poster, "post", original)

    status, summary = backfill("--report", report, source)

    assert status == 1 and summary["state"] == "finished"
    assert max(acknowledged(graph).values()) == 1  # no row twice
    lines = report_lines(report)
    assert [line["row"] for line in lines] == sorted(expected)
    cut = [line for line in lines if line["status"] == "failed"]
    assert cut and all(line["reason"].startswith("interrupted_while_sending") for line in cut)
    forwarded = {f"o-{line['row'] - 2}" for line in lines if line["status"] == "forwarded"}
    assert forwarded <= set(acknowledged(graph)) <= forwarded | {f"o-{line['row'] - 2}" for line in cut}


def test_an_s3_object_is_read_like_a_local_file_and_its_checkpoint_kept_beside_it(
    tmp_path: Path, aws: dict[str, str], capi: None, graph: GraphStub
) -> None:
    s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    s3.create_bucket(Bucket="sales-exports")
    local = tmp_path / "sales.csv.gz"
    expected = write_csv(local, 2200)
    s3.put_object(Bucket="sales-exports", Key="2026/sales.csv.gz", Body=local.read_bytes())
    report = tmp_path / "report.jsonl"

    status, _ = backfill("--report", report, "s3://sales-exports/2026/sales.csv.gz")

    assert status == 0 and acknowledged(graph) == forwarded_orders(expected)
    assert statuses(report_lines(report)) == {
        row: "forwarded" if s == "parked" else s for row, s in expected_statuses(expected).items()
    }
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="sales-exports")["Contents"]]
    assert keys == ["2026/sales.csv.gz", "2026/sales.csv.gz.default.checkpoint.json"]

    requests = len(graph.received)
    status, summary = backfill("s3://sales-exports/2026/sales.csv.gz")
    assert status == 0 and len(graph.received) == requests and summary["rows"] == 0
    assert summary["inputs_sent_earlier"] == ["s3://sales-exports/2026/sales.csv.gz"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sales.txt"], "must end in"),
        (["s3://bucket-only"], "s3://bucket/key"),
        (["--connection", "eu-stores", "sales.csv"], "unknown connection"),
        (["missing.csv"], "No such file"),
    ],
)
def test_unusable_arguments_exit_2_naming_the_problem(
    args: list[str], message: str, aws: dict[str, str], capi: None, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_rows_are_gathered_into_full_requests(
    tmp_path: Path, aws: dict[str, str], capi: None, graph: GraphStub
) -> None:
    source = tmp_path / "sales.csv"
    expected = write_csv(source, 2600)
    assert backfill(source)[0] == 0
    forwarded = sum(reason is None for reason in expected.values())
    assert [len(request.data) for request in graph.received] == [1000, 1000, forwarded - 2000]
