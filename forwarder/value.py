"""Value and currency: the amount an event is worth to Meta and the ISO 4217 code it is in.

Meta refuses a value of 0 or less, and a purchase without a value and currency
(conversions-api/parameters/custom-data); an event other than a purchase is sent without a value instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import isfinite
from typing import Any

from forwarder.batch import number
from forwarder.currencies import currency_code
from forwarder.skip_reasons import Skip


def positive(total: float | None) -> float | None:
    """Only a finite positive value is sent: Meta refuses <= 0, and a sum of huge prices can overflow."""
    if total is None or not isfinite(total):
        return None
    total = round(total, 6)  # rounded before the check: a tiny amount must not become a value of 0
    return total if total > 0 else None


def attribute_value(
    data: Mapping[str, Any], value_attributes: tuple[str, ...], currency_attribute: str
) -> tuple[float | None, Any]:
    """A custom event's value (the first of `value_attributes` that is a positive amount) and its
    `currency_attribute` as given; names (case-folded in the settings) matched case-insensitively."""
    attributes = data.get("custom_attributes")
    if type(attributes) is not dict or not attributes:
        return None, None
    by_name = {key.casefold(): item for key, item in attributes.items() if type(key) is str}
    currency = by_name.get(currency_attribute)
    for name in value_attributes:
        if (value := positive(number(by_name.get(name)))) is not None:
            return value, currency
    return None, currency


def price(
    stated: float | None, total: float | None, given_currency: Any, default_currency: str, purchase: bool
) -> tuple[float, str] | tuple[None, None] | Skip:
    """The event's value and currency, both or neither, or the reason a purchase is skipped.

    The value is the one `stated` (a commerce event's total_amount, a custom event's value attribute), else
    the products' `total`; the currency the one given, else `default_currency` (DEFAULT_CURRENCY) when none is.
    A value in a currency that is not ISO 4217 is dropped, except from a purchase, which is skipped.
    """
    value = positive(total if stated is None else stated)
    absent = given_currency is None or (type(given_currency) is str and not given_currency.strip())
    currency = default_currency if absent else currency_code(given_currency)
    if value is not None and currency is not None:
        return value, currency
    if purchase:
        return Skip.PURCHASE_WITHOUT_VALUE if value is None else Skip.INVALID_CURRENCY
    return None, None
