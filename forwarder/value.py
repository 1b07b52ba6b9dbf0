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


# ---- net revenue and predicted lifetime value -----------------------------------------------------------
# Meta's custom_data fields (conversions-api/parameters/custom-data; Meta's SDK, serverside `custom_data.py`:
# `net_revenue` and `predicted_ltv`, both floats): the profit of a sale, in the event's currency ("There is no
# separate currency field for net_revenue. The currency you send on the Purchase event applies to both value
# and net_revenue", value optimization for profit), so it goes only with a value and a currency; a loss is a
# profit below 0. A predicted lifetime value is positive (Meta's pLTV guide: "All values must be positive").
NET_REVENUE, PREDICTED_LTV = "net_revenue", "predicted_ltv"  # the custom attributes, named as Meta's fields
VALUE_FIELDS = (NET_REVENUE, PREDICTED_LTV)
NET_REVENUE_WITHOUT_VALUE = "net_revenue_without_value"  # adjusted: no value and currency for it to be in


def _amount(given: Any, field: str) -> float | None:
    amount = number(given)
    if amount is None or (field == PREDICTED_LTV and amount <= 0):
        return None
    return round(amount, 6)


def value_fields(attributes: dict[str, Any], currency: str | None) -> tuple[dict[str, Any], list[str]]:
    """The event's custom data with the custom attributes `net_revenue` and `predicted_ltv` (spelled as Meta
    spells the fields) as Meta's numbers, and what was adjusted: a value that is no number (or, for
    predicted_ltv, not positive) is left out as `invalid_<field>`, a net revenue without `currency` as
    NET_REVENUE_WITHOUT_VALUE. The dict given is returned as it is when it has neither (the usual case)."""
    if NET_REVENUE not in attributes and PREDICTED_LTV not in attributes:
        return attributes, []
    kept = dict(attributes)
    adjusted: list[str] = []
    for field in VALUE_FIELDS:
        if field not in kept:
            continue
        amount = _amount(kept[field], field)
        if amount is None:
            adjusted.append(f"invalid_{field}")
        elif field == NET_REVENUE and currency is None:
            adjusted.append(NET_REVENUE_WITHOUT_VALUE)
        else:
            kept[field] = amount
            continue
        del kept[field]
    return kept, adjusted
