"""Contents: an event's products as Meta's `contents` (id, quantity, unit price, brand, category, title),
and what they add up to.

mParticle's `product_action.products` (id, price, quantity, brand, category, name) become one content
each (conversions-api/parameters/custom-data, `contents`); a product without an id or with a quantity
outside 1..MAX_QUANTITY is left out of both the contents and their total, so the two always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import isfinite
from typing import Any, Literal, Required, TypedDict

from forwarder.batch import number, text
from forwarder.limits import (
    CONTENT_OVERHEAD_BYTES,
    JSON_BYTES_PER_CHAR,
    MAX_PRODUCTS_PER_EVENT,
    MAX_QUANTITY,
    MAX_TEXT_LENGTH,
    TooLong,
)

# The product texts a content carries besides its id, as (mParticle product field, Meta content field):
# contents[].brand and .category on both APIs, and the product's name as .title on the Conversions API.
_CONTENT_TEXTS = (("brand", "brand"), ("category", "category"))
_DETAILED_CONTENT_TEXTS = (*_CONTENT_TEXTS, ("name", "title"))


class TooManyProducts(ValueError):
    """More than MAX_PRODUCTS_PER_EVENT products."""


class Content(TypedDict, total=False):
    """One product as the chosen API describes it: the unit price is `price` on the Offline
    Conversions API and `item_price` on the Conversions API, never both."""

    id: Required[str]
    quantity: Required[int]
    price: float
    item_price: float
    brand: str
    category: str
    title: str


def products(
    action: Mapping[str, Any], price_key: Literal["price", "item_price"], detailed: bool
) -> tuple[list[Content], float | None, int]:
    """The contents, the sum of price x quantity (None when no product has a price), and an upper bound
    in bytes of the contents' JSON (and, `detailed`, of the content_ids repeating their ids), in one pass.

    The hottest loop of the mapping (every product of every event): exact-type fast paths come first and
    fall back to the lenient `number`/`text` readers for anything unusual, and the length checks are
    inlined rather than calls. Raises TooManyProducts or TooLong.
    """
    given = action.get("products")
    if type(given) is not list:
        return [], None, 0
    if len(given) > MAX_PRODUCTS_PER_EVENT:
        raise TooManyProducts
    contents: list[Content] = []
    total: float | None = None
    chars = id_chars = 0
    texts = _DETAILED_CONTENT_TEXTS if detailed else _CONTENT_TEXTS
    for product in given:
        if type(product) is not dict:
            continue
        price = product.get("price")
        if type(price) is not float or not isfinite(price):
            price = number(price)
        quantity = product.get("quantity", 1.0)
        if type(quantity) is not int or not -1_000_000 < quantity < 1_000_000:  # huge ints overflow floats
            quantity = number(quantity)
            if quantity is None:
                quantity = 1.0
        if not 0 < quantity <= MAX_QUANTITY:
            continue  # neither in the value nor in the contents: the two must agree
        if price is not None:
            total = price * quantity if total is None else total + price * quantity
        product_id = product.get("id")
        product_id = product_id.strip() if type(product_id) is str else text(product_id)
        if not product_id:
            continue
        length = len(product_id)
        if length > MAX_TEXT_LENGTH:
            raise TooLong
        id_chars += length
        # Meta wants whole quantities; mParticle allows decimals (0.5 kg), so round, at least 1.
        whole = quantity if type(quantity) is int else max(1, round(quantity))
        content: Content = {"id": product_id, "quantity": whole}
        if price is not None:
            content[price_key] = price  # "price" or "item_price"
        for name, field_name in texts:
            if (value := product.get(name)) is None:
                continue
            if value := value.strip() if type(value) is str else text(value):
                length = len(value)
                if length > MAX_TEXT_LENGTH:
                    raise TooLong
                chars += length
                content[field_name] = value  # type: ignore[literal-required]
        contents.append(content)
    chars += 2 * id_chars if detailed else id_chars
    return contents, total, JSON_BYTES_PER_CHAR * chars + CONTENT_OVERHEAD_BYTES * len(contents)
