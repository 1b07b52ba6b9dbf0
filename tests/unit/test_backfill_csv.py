"""CSV rows in the columns of Meta's offline event uploads, through the webhook's own mapping and rendering.

Each row is read by the backfill's CSV reader and mapped and rendered by `webhook.prepare`; expectations
come from Meta's docs (offline event uploads' columns; customer information parameters' normalisation;
the time window per action source; event names), never from the code. Every event rendered must also pass
the Graph stand-in's per-event rules (localdev/graph_stub.py, `event_problem`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from forwarder.backfill import readers
from forwarder.backfill.csv_rows import HeaderError, unix_ms
from forwarder.backfill.readers import MALFORMED_ROW, CutShort, Row, RowFilter, csv_rows
from forwarder.settings import Settings, load_settings
from forwarder.webhook import prepare
from localdev.graph_stub import event_problem
from tests.support import NOW_MS

NOW = NOW_MS // 1000
DAY = 86_400
BASE_ENV = {
    "OFFLINE_EVENT_SET_ID": "1234567890",
    "SECRET_ID": "facebook-offline-forwarder",
    "PARKING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/parked-batches",
}
HEADER = "event_name,event_time,value,currency,order_id,email,phone,fn,ln,ct,st,zip,country,gen,madid,external_id"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def settings(api: str = "conversions_api", **env: str) -> Settings:
    return load_settings({**BASE_ENV, "FACEBOOK_API": api, **env})


def read(text: str | bytes, config: Settings) -> list[Row]:
    raw = text if isinstance(text, bytes) else text.encode()
    _, rows = csv_rows(io.BytesIO(raw), RowFilter(), config)
    return [row for row in rows if isinstance(row, Row)]


def mapped(text: str, api: str = "conversions_api", **env: str) -> list[tuple[list[dict[str, Any]], Counter[str]]]:
    """(rendered events, skipped) per row of `text`; rows skipped before mapping give ([], {reason: 1})."""
    config = settings(api, **env)
    results = []
    for row in read(text, config):
        if row.batch is None:
            results.append(([], Counter({row.skip: 1})))
            continue
        events, outcome = prepare(row.batch, row.settings or config, NOW)
        for event in events:
            assert event_problem(event, api) is None
        results.append((events, outcome.skipped))
    return results


def one(row: str, api: str = "conversions_api", header: str = HEADER, **env: str) -> dict[str, Any]:
    [(events, skipped)] = mapped(f"{header}\n{row}\n", api, **env)
    assert not skipped and len(events) == 1
    return events[0]


def reason(row: str, api: str = "conversions_api", header: str = HEADER) -> str:
    [(events, skipped)] = mapped(f"{header}\n{row}\n", api)
    assert events == []
    [(only, _)] = skipped.items()
    return only


def test_a_purchase_row_is_metas_purchase_with_its_keys_normalised_and_hashed() -> None:
    event = one(
        f"Purchase,{NOW - 3600},42.50,EUR,order-7, Jane.Doe@Example.com ,(415) 555-0100,Jane,Doe,San Francisco,CA,"
        "94107-1234,US,Female,6D92078A-8246-4BA4-AE5B-76104861E7DC,cust-9"
    )
    assert event["event_name"] == "Purchase" and event["event_time"] == NOW - 3600
    assert event["action_source"] == "physical_store"
    custom_data = event["custom_data"]
    assert (custom_data["value"], custom_data["currency"], custom_data["order_id"]) == (42.5, "EUR", "order-7")
    assert custom_data["delivery_category"] == "in_store"  # a purchase in the store
    # Meta's normalisation (customer information parameters): trimmed and lower-cased email; phone digits
    # with the country code; names, city and state lower-cased without spaces; US ZIP's first five digits;
    # country alpha-2 lower case; gender m/f; madid lower-cased, unhashed on the Conversions API.
    assert event["user_data"] == {
        "em": sha("jane.doe@example.com"),
        "ph": sha("14155550100"),
        "fn": sha("jane"),
        "ln": sha("doe"),
        "ge": sha("f"),
        "ct": sha("sanfrancisco"),
        "st": sha("ca"),
        "zp": sha("94107"),
        "country": sha("us"),
        "external_id": sha("cust-9"),
        "madid": "6d92078a-8246-4ba4-ae5b-76104861e7dc",
    }


def test_the_offline_conversions_api_gets_the_same_row_as_its_match_keys() -> None:
    event = one(f"Purchase,{NOW - 3600},10,USD,o-1,jane@example.com,,,,,,,,,,cust-9", api="offline_conversions")
    assert event["match_keys"] == {"email": sha("jane@example.com"), "extern_id": "cust-9"}
    assert (event["value"], event["currency"], event["order_id"]) == (10.0, "USD", "o-1")


# Meta's example (customer-information-parameters, `db`): 2/16/1997 is written 19970216, then hashed.
@pytest.mark.parametrize(
    ("api", "cell", "expected"),
    [
        ("conversions_api", "1997-02-16", {"db": sha("19970216")}),
        ("conversions_api", "19970216", {"db": sha("19970216")}),
        ("offline_conversions", "1997-02-16", {"doby": sha("1997"), "dobm": sha("02"), "dobd": sha("16")}),
        ("conversions_api", "02/03/1997", {}),  # day and month order unknown: not guessed
    ],
)
def test_the_db_column_is_the_date_of_birth_key(api: str, cell: str, expected: dict[str, str]) -> None:
    event = one(
        f"Purchase,{NOW - 3600},10,USD,o-1,jane@example.com,{cell}",
        api,
        header="event_name,event_time,value,currency,order_id,email,db",
    )
    keys = event["user_data" if api == "conversions_api" else "match_keys"]
    assert {name: keys[name] for name in ("db", "doby", "dobm", "dobd") if name in keys} == expected


TWO = ["a@example.com", "b@example.com"]


@pytest.mark.parametrize(
    ("header", "cells", "expected"),
    [
        ("event_name,event_time,email", "Lead,{t},a@example.com|b@example.com", TWO),
        ("event_name,event_time,email,email", "Lead,{t},a@example.com,b@example.com", TWO),
        ("event_name,event_time,email,email", "Lead,{t},a@example.com| b@example.com ,a@example.com", TWO),
        ("event_name,event_time,EMAIL", "Lead,{t}, A@Example.com ", ["a@example.com"]),
    ],
)
def test_several_values_of_a_key_are_the_column_repeated_or_separated_by_a_bar(
    header: str, cells: str, expected: list[str]
) -> None:
    event = one(cells.format(t=NOW - 60), header=header)
    hashes = [sha(value) for value in expected]
    assert event["user_data"]["em"] == (hashes if len(hashes) > 1 else hashes[0])


@pytest.mark.parametrize(
    ("name", "api", "sent_as"),
    [
        ("Purchase", "conversions_api", "Purchase"),
        ("purchase", "conversions_api", "Purchase"),  # Meta's names, in any case
        ("AddToCart", "conversions_api", "AddToCart"),
        ("InitiateCheckout", "offline_conversions", "InitiateCheckout"),
        ("Lead", "conversions_api", "Lead"),
        ("Lead", "offline_conversions", "Lead"),
        ("CompleteRegistration", "offline_conversions", "CompleteRegistration"),
        ("Store Visit", "conversions_api", "Store Visit"),  # a custom event: the Conversions API takes it
    ],
)
def test_the_event_name_is_metas(name: str, api: str, sent_as: str) -> None:
    header = "event_name,event_time,value,currency,email"
    assert one(f"{name},{NOW - 60},9.99,USD,a@example.com", api=api, header=header)["event_name"] == sent_as


def test_a_custom_event_mapping_still_renames_a_files_event() -> None:
    event = one(f"Store Visit,{NOW - 60},a@example.com", header="event_name,event_time,email",
                CUSTOM_EVENT_MAPPING="Store Visit=FindLocation")  # fmt: skip
    assert event["event_name"] == "FindLocation"


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00+00:00"),
        ("2026-03-01T12:00:00+02:00", "2026-03-01T10:00:00+00:00"),
        ("2026-03-01T12:00:00", "2026-03-01T12:00:00+00:00"),  # no offset: UTC
        ("2026-03-01 12:00:00", "2026-03-01T12:00:00+00:00"),
        ("1772366400", "2026-03-01T12:00:00+00:00"),  # Unix seconds
        ("1772366400.75", "2026-03-01T12:00:00.750000+00:00"),
    ],
)
def test_event_time_is_iso_8601_or_unix_seconds(when: str, expected: str) -> None:
    millis = unix_ms(when)
    assert millis is not None and datetime.fromtimestamp(millis / 1000, UTC).isoformat() == expected


@pytest.mark.parametrize(
    ("row", "api", "expected"),
    [
        # Meta: physical_store events up to 62 days old; other sources 7 days; the Offline Conversions API 62.
        (f"Purchase,{NOW - 61 * DAY},1,USD,,a@example.com,", "conversions_api", None),
        (f"Purchase,{NOW - 63 * DAY},1,USD,,a@example.com,", "conversions_api", "too_old"),
        (f"Purchase,{NOW - 8 * DAY},1,USD,,a@example.com,website", "conversions_api", "too_old"),
        (f"Purchase,{NOW - 6 * DAY},1,USD,,a@example.com,website", "conversions_api", None),
        (f"Purchase,{NOW - 8 * DAY},1,USD,,a@example.com,phone_call", "conversions_api", "too_old"),
        (f"Purchase,{NOW - 61 * DAY},1,USD,,a@example.com,", "offline_conversions", None),
        (f"Purchase,{NOW - 63 * DAY},1,USD,,a@example.com,", "offline_conversions", "too_old"),
        (f"Purchase,{NOW + 2 * 3600},1,USD,,a@example.com,", "conversions_api", "in_future"),
    ],
)
def test_each_action_sources_window_is_applied_before_sending(row: str, api: str, expected: str | None) -> None:
    header = "event_name,event_time,value,currency,order_id,email,action_source"
    if expected is None:
        one(row, api=api, header=header)
    else:
        assert reason(row, api=api, header=header) == expected


def test_the_action_source_column_is_sent() -> None:
    event = one(f"Lead,{NOW - 60},a@example.com,phone_call", header="event_name,event_time,email,action_source")
    assert event["action_source"] == "phone_call"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (f",{NOW},1,USD,a@example.com", "no_event_name"),
        ("Purchase,,1,USD,a@example.com", "no_event_time"),
        ("Purchase,yesterday,1,USD,a@example.com", "invalid_event_time"),
        (f"Purchase,{NOW - 60},,USD,a@example.com", "purchase_without_value"),
        (f"Purchase,{NOW - 60},1,XYZ,a@example.com", "invalid_currency"),
        (f"Purchase,{NOW - 60},1,USD,not-an-email", "no_match_key"),
        (f"Store Visit,{NOW - 60},,,a@example.com", None),
    ],
)
def test_rows_meta_would_refuse_are_skipped_with_a_reason(row: str, expected: str | None) -> None:
    header = "event_name,event_time,value,currency,email"
    if expected is None:
        one(row, header=header)
    else:
        assert reason(row, header=header) == expected


def test_a_custom_name_the_offline_conversions_api_does_not_take_is_skipped() -> None:
    header = "event_name,event_time,email"
    assert reason(f"Store Visit,{NOW - 60},a@example.com", api="offline_conversions", header=header) == (
        "custom_name_unsupported"
    )


def test_identical_rows_are_one_event_and_different_customers_two() -> None:
    header = "event_name,event_time,value,currency,email"
    rows = [f"Purchase,{NOW - 60},5,USD,{email}" for email in ("a@example.com", "a@example.com", "b@example.com")]
    ids = [events[0]["event_id"] for events, _ in mapped("\n".join([header, *rows]) + "\n")]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize(
    "content",
    [
        b"event_name,event_time,email\nPurchase,1,\xff\xfe@example.com\nLead,%d,a@example.com\n",
        b'event_name,event_time,email\nPurchase,1,"' + b"x" * 200_000 + b'"\nLead,%d,a@example.com\n',
    ],
)
def test_a_row_that_cannot_be_read_is_reported_with_its_line_and_the_next_rows_are_read(content: bytes) -> None:
    rows = read(content % (NOW - 60), settings())
    assert [(row.number, row.skip) for row in rows] == [(2, MALFORMED_ROW), (3, None)]
    assert rows[0].problem and "@" not in rows[0].problem


def test_rows_are_numbered_by_their_line_whatever_the_line_ending() -> None:
    rows = [f"Lead,{NOW - 60},a@example.com", "", f"Lead,{NOW - 60},b@example.com"]
    for ending in ("\n", "\r\n", "\r"):  # Unix, Windows, and old Macintosh spreadsheets
        text = ending.join(["\ufeffEvent_Name,event_time,email", *rows]) + ending
        assert [(row.number, row.skip) for row in read(text, settings())] == [(2, None), (4, None)], repr(ending)


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ('"Bob', "not closed on its line"),  # a quote opened and never closed: a truncated or hand-edited export
        ('"two\nlines"', "not closed on its line"),  # a line break in a quoted field: its first line
        ('"Bob"x', "expected after"),  # text after a closing quote
    ],
)
def test_a_row_that_is_no_csv_record_is_malformed_alone_and_the_next_lines_are_rows_of_their_own(
    broken: str, problem: str
) -> None:
    """One line is one row: a stray quote never swallows the rows after it, however many."""
    lines = [f"Lead,{NOW - 60},a@example.com,{broken}", *(f"Lead,{NOW - 60},u{n}@example.com," for n in range(3))]
    rows = read("event_name,event_time,email,fn\n" + "\n".join(lines) + "\n", settings())
    assert rows[0].number == 2 and rows[0].skip == MALFORMED_ROW
    assert rows[0].problem and problem in rows[0].problem and "Bob" not in rows[0].problem
    read_on = [(row.number, row.skip) for row in rows[1:]]
    assert read_on[-3:] == [(n, None) for n in range(read_on[-1][0] - 2, read_on[-1][0] + 1)]
    assert all(row.batch is None or "Bob" not in str(row.batch) for row in rows[1:])


def test_a_line_over_the_limit_is_malformed_and_read_past_without_holding_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_CSV_LINE_CHARS", 100)
    text = f"event_name,event_time,email\nLead,{NOW - 60},{'x' * 1000}@example.com\nLead,{NOW - 60},a@example.com\n"
    rows = read(text, settings())
    assert [(row.number, row.skip) for row in rows] == [(2, MALFORMED_ROW), (3, None)]
    assert rows[0].problem == "the line is longer than 100 characters"


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_the_columns_may_be_separated_by_commas_semicolons_or_tabs(separator: str) -> None:
    """Excel writes ";" where the decimal mark is a comma, and tabs for "Text (Tab delimited)"."""
    header = separator.join(["event_name", "event_time", "value", "currency", "email"])
    row = separator.join(["Purchase", str(NOW - 60), "10.5", "USD", "jane@example.com"])
    [(events, skipped)] = mapped(f"{header}\n{row}\n")
    assert not skipped and events[0]["custom_data"]["value"] == 10.5
    assert events[0]["user_data"]["em"] == sha("jane@example.com")


def test_a_header_naming_no_columns_with_any_separator_says_which_separators_are_read() -> None:
    with pytest.raises(HeaderError, match="commas, semicolons or tabs"):
        read(f"event_name|event_time|email\nPurchase|{NOW}|a@example.com\n", settings())


@pytest.mark.parametrize("when", ["9" * 400, "1" + "0" * 20, "253402300800"])
def test_a_unix_time_past_the_last_day_iso_8601_can_write_is_no_time(when: str) -> None:
    assert unix_ms(when) is None
    assert reason(f"Purchase,{when},1,USD,,a@example.com,") == "invalid_event_time"


def test_a_file_cut_short_yields_its_rows_then_names_the_line_it_could_not_read() -> None:
    rows = "".join(f"Lead,{NOW - 60},u{n}@example.com\n" for n in range(2000))
    data = gzip.compress(f"event_name,event_time,email\n{rows}".encode())
    cut_short = gzip.GzipFile(fileobj=io.BytesIO(data[: len(data) // 2]))
    _, read_rows = csv_rows(cut_short, RowFilter(), settings())  # type: ignore[arg-type]
    numbers = []
    with pytest.raises(CutShort) as cut:
        for row in read_rows:
            assert isinstance(row, Row) and row.skip is None
            numbers.append(row.number)
    assert numbers == list(range(2, len(numbers) + 2)) and len(numbers) > 100
    assert cut.value.line == numbers[-1] + 1 and "EOFError" in str(cut.value)


@pytest.mark.parametrize(
    "header",
    ["email,phone", "event_name,email", "Purchase,1772366400,a@example.com", ""],
)
def test_a_file_without_a_header_naming_event_name_and_event_time_is_refused(header: str) -> None:
    with pytest.raises(HeaderError) as raised:
        read(f"{header}\nPurchase,{NOW},a@example.com\n", settings())
    assert "a@example.com" not in str(raised.value)
