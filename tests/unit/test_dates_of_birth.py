"""Dates of birth as Meta takes `db`: YYYYMMDD, hashed.

Meta (customer-information-parameters, `db`): "We accept the YYYYMMDD format accommodating a range of month,
day and year combinations, with or without punctuation"; year "from 1900 to current year", month 01 to 12,
day 01 to 31; its example is the input 2/16/1997, normalised 19970216, SHA-256 01acdbf6...f40f0c. Meta's SDK
(serverside `user_data.py`) takes a date of birth "given as YYYYMMDD" and only trims and lower-cases it before
hashing: it is asked here for the hash of every value sent. Impossible dates are the Gregorian calendar's.
"""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from forwarder.dates_of_birth import normalize_date_of_birth

# The caller's today (or the conversion's day): injected, never the wall clock.
LATEST = date(2026, 3, 1)

# (as written, Meta's YYYYMMDD)
READ = [
    # Meta's example, and Meta's own form.
    ("2/16/1997", "19970216"),
    ("19970216", "19970216"),
    # Year first (ISO 8601's order), any punctuation, one- or two-digit month and day.
    ("1997-02-16", "19970216"),
    ("1997/02/16", "19970216"),
    ("1997.02.16", "19970216"),
    ("1997 02 16", "19970216"),
    ("1997-2-16", "19970216"),
    ("1990-7-4", "19900704"),  # year first: no doubt about the order
    (" 1997-02-16 ", "19970216"),
    ("\uff11\uff19\uff19\uff17\uff0d\uff10\uff12\uff0d\uff11\uff16", "19970216"),  # fullwidth
    # A midnight time, as JSON, JavaScript's toISOString and databases write a date.
    ("1997-02-16T00:00:00Z", "19970216"),
    ("1997-02-16T00:00:00.000Z", "19970216"),
    ("1997-02-16T00:00:00+00:00", "19970216"),
    ("1997-02-16T00:00:00+02:00", "19970216"),  # midnight where it was written: that day
    ("1997-02-16T00:00", "19970216"),
    ("1997-02-16 00:00:00", "19970216"),
    ("1997-02-16 00:00:00 UTC", "19970216"),
    # Year last: the order of day and month cannot matter.
    ("02/16/1997", "19970216"),  # the US order, 16 cannot be a month
    ("16/02/1997", "19970216"),  # most of the world's
    ("16.02.1997", "19970216"),
    ("16-02-1997", "19970216"),
    ("07/07/1990", "19900707"),  # either order: the same day
    # The month by its English name or abbreviation.
    ("16 February 1997", "19970216"),
    ("February 16, 1997", "19970216"),
    ("16-Feb-1997", "19970216"),
    ("Feb 16th 1997", "19970216"),
    ("1st Sept 1990", "19900901"),
    ("MAY 5 1990", "19900505"),
    # The calendar's edges.
    ("2000-02-29", "20000229"),  # 2000 is a leap year
    ("1900-01-01", "19000101"),  # Meta's first year
    ("2026-03-01", "20260301"),  # the latest day itself
]


def metas_sdk_db_hash(normalised: str) -> str:
    sdk = pytest.importorskip("facebook_business.adobjects.serverside.user_data")
    return str(sdk.UserData(date_of_birth=normalised).normalize()["db"][0])


@pytest.mark.parametrize(("written", "normalised"), READ)
def test_a_date_of_birth_is_metas_yyyymmdd(written: str, normalised: str) -> None:
    assert normalize_date_of_birth(written, LATEST) == normalised


def test_metas_example_hashes_as_meta_lists_it() -> None:
    normalised = normalize_date_of_birth("2/16/1997", LATEST)
    assert normalised is not None
    expected = "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"  # Meta's page
    assert hashlib.sha256(normalised.encode()).hexdigest() == expected
    assert metas_sdk_db_hash(normalised) == expected


@pytest.mark.parametrize("normalised", sorted({normalised for _, normalised in READ}))
def test_metas_sdk_hashes_what_is_sent_as_it_is(normalised: str) -> None:
    assert metas_sdk_db_hash(normalised) == hashlib.sha256(normalised.encode()).hexdigest()


OMITTED = [
    # The order of day and month is unsure: 4 July in the US, 7 April elsewhere.
    "07/04/1990",
    "7/4/1990",
    "04.07.1990",
    # Two-digit years: which century?
    "07/14/90",
    "90-07-14",
    "5 May 90",
    # Unix timestamps, in seconds or milliseconds: an instant, whose day depends on a time zone.
    "647913600",
    "647913600000",
    "-647913600",
    # A time other than midnight: often a local midnight written in UTC (this is midnight in UTC+2).
    "1997-02-15T22:00:00.000Z",
    "1997-02-16T12:30:00Z",
    "1997-02-16T00:00:01",
    "1997-02-16T00:00:00.5Z",
    "1997-02-16T00:00:00Z trailing",
    # Impossible dates.
    "1997-02-29",
    "1900-02-29",  # 1900 is no leap year
    "1997-13-01",
    "1997-00-10",
    "1997-04-31",
    "13/13/1997",
    "32/01/1997",
    "00000000",
    "19971302",
    # Before 1900 (Meta's first year) or after the latest day.
    "1899-12-31",
    "18991231",
    "2026-03-02",
    "2099-01-01",
    # Partial dates, other languages, and no date at all.
    "1997-02",
    "1997",
    "Feb 1997",
    "16 Februar 1997",
    "16 février 1997",
    "1997年2月16日",
    "February 16",
    "Feb Mar 16 1997",
    "16 17 Feb 1997",
    "",
    "n/a",
    "unknown",
    "1997-02-16-01",
    "1" * 65,
]


@pytest.mark.parametrize("written", OMITTED)
def test_what_cannot_be_read_for_sure_is_omitted(written: str) -> None:
    assert normalize_date_of_birth(written, LATEST) is None
