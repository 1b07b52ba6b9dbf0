"""Dates of birth as Meta matches them (`db`): YYYYMMDD, then hashed like every other key.

Meta (conversions-api/parameters/customer-information-parameters, `db`): "We accept the YYYYMMDD format
accommodating a range of month, day and year combinations, with or without punctuation"; the year "from 1900
to current year", the month 01 to 12, the day 01 to 31. Meta's SDK (serverside `user_data.py`: "A date of
birth given as YYYYMMDD") only trims and lower-cases the value before hashing it, so what it hashes must
already be YYYYMMDD: every form read here is written that way.

mParticle reserves no user attribute for a birth date; a custom one holds what an app or a store system
wrote, so these forms are read:
- YYYYMMDD, Meta's own form: "19900714".
- Year first, ISO 8601's order, with any punctuation: "1990-07-14", "1990/7/14", "1990.07.14"; also with a
  midnight time, as JSON and databases write dates: "1990-07-14T00:00:00Z", "1990-07-14 00:00:00".
- Year last, in numbers: day and month in either order, but only where the order cannot matter, one of them
  over 12 ("07/14/1990" and "14/07/1990" are both 14 July) or both the same ("07/07/1990"). "07/04/1990" is
  4 July in the US and 7 April in most of the world: omitted.
- The month by its English name or abbreviation, in any order with the day and the year: "14 July 1990",
  "July 14, 1990", "14-Jul-1990", "Jul 14th 1990".
Omitted, never guessed: two-digit years ("07/14/90": which century?), Unix timestamps (an instant, not a day:
the day depends on a time zone the value does not carry, and seconds or milliseconds would be a guess too),
a time other than midnight ("1990-07-13T22:00:00Z" is often a midnight in UTC+2 written in UTC: which day?),
month names in other languages, impossible dates (30 February), years before 1900 and days after `latest`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

# The longest form read here ("September 14th, 1990T00:00:00.000000+00:00") is under 50 characters.
MAX_DATE_OF_BIRTH_LENGTH = 64
# Meta: "Year: Use the YYYY format from 1900 to current year."
FIRST_YEAR = 1900

_MONTH_NAMES = (
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
    ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
    ("november", "nov"), ("december", "dec"),
)  # fmt: skip
_MONTHS = {name: number for number, names in enumerate(_MONTH_NAMES, start=1) for name in names}
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})  # "14th", "1st": read as the number
# A time after the date: hours and minutes, optional seconds and fraction, an optional zone. Only a midnight
# keeps the date. No nested repetition, on at most MAX_DATE_OF_BIRTH_LENGTH characters.
_TIME = re.compile(r"(?:t|\s)\s*([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?\s*(?:z|utc|gmt|[+-][0-9:]+)?")
_TOKENS = re.compile(r"[0-9]+|[^\W\d_]+")


def normalize_date_of_birth(value: str, latest: date) -> str | None:
    """Meta's `db` (YYYYMMDD, 8 ASCII digits) for a date of birth written in one of the forms above; None for
    anything else, for an impossible date, a year before 1900 or a day after `latest` (the caller's today, or
    the conversion's day: nobody is born after buying)."""
    text = unicodedata.normalize("NFKC", value).strip().lower()  # fullwidth digits as ASCII
    if len(text) > MAX_DATE_OF_BIRTH_LENGTH:
        return None
    time = _TIME.search(text)
    if time is not None:
        if time.end() != len(text) or "".join(filter(None, time.groups())).strip("0"):
            return None  # something after the time, or a time other than midnight
        text = text[: time.start()]
    tokens = [token for token in _TOKENS.findall(text) if token not in _ORDINAL_SUFFIXES]
    numbers = [token for token in tokens if token.isascii() and token.isdigit()]
    words = [token for token in tokens if not (token.isascii() and token.isdigit())]
    if words:
        day_month_year = _with_month_name(words, numbers)
    elif len(numbers) == 1 and len(numbers[0]) == 8:
        digits = numbers[0]
        day_month_year = (int(digits[6:]), int(digits[4:6]), int(digits[:4]))
    else:
        day_month_year = _in_numbers(numbers)
    return _written(*day_month_year, latest) if day_month_year else None


def _with_month_name(words: list[str], numbers: list[str]) -> tuple[int, int, int] | None:
    """(day, month, year) from one English month name, a one- or two-digit day and a four-digit year."""
    if len(words) != 1 or words[0] not in _MONTHS or sorted(map(len, numbers)) not in ([1, 4], [2, 4]):
        return None
    day, year = sorted(numbers, key=len)
    return int(day), _MONTHS[words[0]], int(year)


def _in_numbers(numbers: list[str]) -> tuple[int, int, int] | None:
    """(day, month, year) from three numbers: year first (then month, day), or year last with the day and the
    month in an order that cannot matter; None when the year is not four digits or the order is unsure."""
    if len(numbers) != 3:
        return None
    if len(numbers[0]) == 4 and all(len(number) <= 2 for number in numbers[1:]):
        return int(numbers[2]), int(numbers[1]), int(numbers[0])
    if len(numbers[2]) != 4 or not all(len(number) <= 2 for number in numbers[:2]):
        return None
    first, second, year = map(int, numbers)
    if first == second:
        return first, second, year
    if first > 12 >= second:
        return first, second, year  # day first, as most of the world writes it
    if second > 12 >= first:
        return second, first, year  # month first, as the US writes it
    return None  # both 12 or under: 07/04 is 4 July or 7 April; both over 12: no month


def _written(day: int, month: int, year: int, latest: date) -> str | None:
    """YYYYMMDD for a day that exists, from 1900 to `latest`; else None."""
    if year < FIRST_YEAR:
        return None
    try:
        born = date(year, month, day)
    except ValueError:  # month 13, 30 February, day 0
        return None
    return born.strftime("%Y%m%d") if born <= latest else None
