"""CSV rows in the columns of Meta's offline event uploads, made into the mParticle batches the webhook maps.

Why a batch: every rule the webhook applies (event names, Meta's time window per action source, value and
currency, match keys normalised and hashed, consent, LDU) is the mapping of an mParticle batch
(forwarder/mapping.py), and isolation and parking come after it. A row made into a one-event batch goes
through exactly that, and a fix there reaches the backfill at once. What a row cannot say the way a batch
says it is handed over in three ways:

- its event: a name some product action is sent as (Purchase, AddToCart... as EVENT_NAME_OVERRIDES has
  them, any case) becomes that commerce event, with `value` as its total and `order_id` as its transaction
  id; any other name a custom event of that name, sent under it (`CSV_SETTINGS`: the file names Meta's
  event already; CUSTOM_EVENT_MAPPING still renames it, and the Offline Conversions API still takes only
  Meta's standard names). Its value and currency then go in the custom attributes the settings read them
  from (CUSTOM_EVENT_VALUE_ATTRIBUTES, CUSTOM_EVENT_CURRENCY_ATTRIBUTE).
- its match keys: several values each (the column repeated, or values separated by `|`), which a batch's
  one identity per type cannot hold: each value is an identity of its own, and the keys read them
  (`KeySettings.sources`) in place of the identity types and attributes the webhook reads. `country`
  and `st` also give the user's `$country` and `$state`, which phone numbers, ZIP codes and LDU depend on.
- its event id (Conversions API): a digest of the whole row, so a row sent again is counted once by Meta,
  and two customers' identical purchases are two events.

Columns (docs/backfill.md): event_name, event_time (ISO 8601, UTC when it gives no offset, or Unix seconds),
value, currency, order_id, action_source, and the keys email, phone, fn, ln, ct, st, zip, country, gen, db,
madid, external_id. Names are matched in any case; other columns are ignored and named in the summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from forwarder.batch import Batch, User
from forwarder.mapping import Skip
from forwarder.match_keys import MAX_VALUES_PER_KEY, KeySettings
from forwarder.settings import Settings
from forwarder.variables import date_of_birth_sources

# The CSV column of each match key, and the match key (forwarder/match_keys.py, KEYS) it feeds.
KEY_COLUMNS: Mapping[str, str] = {
    "email": "email", "phone": "phone", "fn": "fn", "ln": "ln", "ct": "ct", "st": "st", "zip": "zip",
    "country": "country", "gen": "gen", "madid": "madid", "external_id": "external_id",
}  # fmt: skip
EVENT_COLUMNS = ("event_name", "event_time", "value", "currency", "order_id", "action_source")
# Kept as the user attribute `db`, which the date-of-birth keys then read (as DATE_OF_BIRTH_ATTRIBUTE=db would).
DATE_OF_BIRTH = "db"
KNOWN_COLUMNS = frozenset({*KEY_COLUMNS, *EVENT_COLUMNS, DATE_OF_BIRTH})
REQUIRED_COLUMNS = ("event_name", "event_time")
VALUE_SEPARATOR = "|"
NO_EVENT_NAME = "no_event_name"  # a row without an event_name (skipped)
ACTION_SOURCE_KEY = "Facebook.ActionSource"  # the custom flag mapping reads an event's action source from
_SOURCE = "backfill.csv.{key}.{position}"  # the identity each value of a key is kept as
_FIELD_SEPARATOR = "\x1f"  # ASCII's unit separator: no two different rows join to the same text
MAX_IGNORED_NAMED = 20
MAX_KEPT_SETTINGS = 256  # settings kept per number of values of each key (CsvMapping)
MAX_UNIX_SECONDS = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


class HeaderError(ValueError):
    """The first row does not name the columns; the message says what is missing, never a value."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each known column is in a file's rows (a column may be repeated), read from its header."""

    positions: Mapping[str, tuple[int, ...]]
    ignored: tuple[str, ...]  # names of the columns no rule reads, for the summary

    @classmethod
    def from_header(cls, header: Sequence[str]) -> Layout:
        positions: dict[str, list[int]] = {}
        ignored: list[str] = []
        for position, raw in enumerate(header):
            name = raw.strip().lower()
            if name in KNOWN_COLUMNS:
                positions.setdefault(name, []).append(position)
            elif name and len(ignored) < MAX_IGNORED_NAMED:
                ignored.append(name[:64])
        missing = [name for name in REQUIRED_COLUMNS if name not in positions]
        if missing:
            raise HeaderError(
                f"the first row must name the columns (as Meta's offline event uploads do); {', '.join(missing)} "
                "is missing"
            )
        return cls({name: tuple(found) for name, found in positions.items()}, tuple(ignored))


def _first(row: Sequence[str], positions: tuple[int, ...]) -> str | None:
    for position in positions:
        if position < len(row) and (value := row[position].strip()):
            return value
    return None


def _values(row: Sequence[str], positions: tuple[int, ...]) -> list[str]:
    """The distinct values of a key column, in order: every repeat of the column, each split at `|`."""
    if len(positions) == 1:  # the usual case, one column of one value, read directly
        position = positions[0]
        text = row[position] if position < len(row) else ""
        if VALUE_SEPARATOR not in text:
            return [value] if (value := text.strip()) else []
    found: dict[str, None] = {}
    for position in positions:
        if position < len(row) and row[position]:
            for part in row[position].split(VALUE_SEPARATOR):
                if value := part.strip():
                    found[value] = None
    return list(found)[:MAX_VALUES_PER_KEY]


def unix_ms(text: str) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 time (UTC unless it gives an offset) or of Unix seconds;
    None for neither, or for a number of seconds past the last day ISO 8601 can write (9999-12-31)."""
    if text.replace(".", "", 1).isdigit() and text.isascii():
        seconds = float(text)  # digits only: never NaN, and inf beyond a float's range
        return int(seconds * 1000) if seconds <= MAX_UNIX_SECONDS else None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class CsvMapping:
    """How one file's rows become batches, and the settings each is mapped with: Meta's event names forwarded
    under their own name, and the match keys read from exactly the identities the row's values became (one
    settings value per number of values of each key, made once: most files have a handful)."""

    def __init__(self, layout: Layout, settings: Settings) -> None:
        self.layout, self.settings = layout, settings
        self._actions: dict[str, str] = {}
        for action, name in settings.event_names.items():
            self._actions.setdefault(name.casefold(), action)
        self._keys = [
            (key, positions, [_SOURCE.format(key=key, position=n) for n in range(MAX_VALUES_PER_KEY)])
            for column, key in KEY_COLUMNS.items()
            if (positions := layout.positions.get(column)) is not None
        ]
        self._attributes = [
            (name, positions)
            for name, column in (("$country", "country"), ("$state", "st"), (DATE_OF_BIRTH, DATE_OF_BIRTH))
            if (positions := layout.positions.get(column)) is not None
        ]
        self._by_counts: dict[tuple[int, ...], Settings] = {}

    def _user(self, row: Sequence[str]) -> tuple[User, Settings]:
        identities: dict[str, str] = {}
        counts = []
        for _key, columns, names in self._keys:
            values = _values(row, columns)
            if values:
                identities.update(zip(names, values, strict=False))
            counts.append(len(values))
        attributes = {}
        for name, columns in self._attributes:
            if (first := _first(row, columns)) is not None:
                attributes[name] = first
        return User(identities=identities, attributes=attributes), self._settings(tuple(counts))

    def _settings(self, counts: tuple[int, ...]) -> Settings:
        found = self._by_counts.get(counts)
        if found is None:
            sources = {key: tuple(names[:count]) for (key, _, names), count in zip(self._keys, counts, strict=True)}
            if any(name == DATE_OF_BIRTH for name, _ in self._attributes):
                sources.update(date_of_birth_sources(DATE_OF_BIRTH))
            keys = KeySettings(sources=sources, default_country=self.settings.key_settings.default_country)
            found = dataclasses.replace(self.settings, key_settings=keys, forward_unmapped_custom_events=True)
            if len(self._by_counts) < MAX_KEPT_SETTINGS:  # a file of ever new shapes must not grow memory
                self._by_counts[counts] = found
        return found

    def batch_of(self, row: Sequence[str]) -> tuple[Batch, Settings] | str:
        """The row as a one-event batch and the settings to map it with, or the reason it is skipped before
        mapping (no event name; no time or one that cannot be read: mapping's own reasons for those)."""
        positions = self.layout.positions

        def first(column: str) -> str | None:
            return _first(row, positions.get(column, ()))

        name = first("event_name")
        if name is None:
            return NO_EVENT_NAME
        when = first("event_time")
        if when is None:
            return str(Skip.NO_EVENT_TIME)
        millis = unix_ms(when)
        if millis is None:
            return str(Skip.INVALID_EVENT_TIME)
        value, currency, order_id = first("value"), first("currency"), first("order_id")
        digest = hashlib.sha256(_FIELD_SEPARATOR.join(row).encode("utf-8", "surrogatepass")).hexdigest()[:32]
        data: dict[str, object] = {"timestamp_unixtime_ms": millis, "source_message_id": digest}
        if (source := first("action_source")) is not None:
            data["custom_flags"] = {ACTION_SOURCE_KEY: source}
        action = self._actions.get(name.casefold())
        if action is not None:
            data["product_action"] = {"action": action, "total_amount": value, "transaction_id": order_id}
            data["currency_code"] = currency
            event = {"event_type": "commerce_event", "data": data}
        else:
            data["event_name"] = name
            attributes = {
                self.settings.custom_event_value_attributes[0]: value,
                self.settings.custom_event_currency_attribute: currency,
            }
            data["custom_attributes"] = {key: item for key, item in attributes.items() if item is not None}
            event = {"event_type": "custom_event", "data": data}
        user, settings = self._user(row)
        return Batch(user=user, events=[event]), settings
