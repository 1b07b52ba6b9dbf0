"""What one event may carry: an event over a limit is skipped with a counted reason, not the batch.

Batch-wide limits (answered 413) are with the batch reader (`forwarder/batch.py`). Both bound the
time and memory of an invocation for any body up to the handler's 6 MiB; `make bench` measures it.
"""

from __future__ import annotations

MAX_PRODUCTS_PER_EVENT = 1000
# mParticle's own default limit (docs.mparticle.com/guides/default-service-limits: "max unique
# attributes per event: 100"); it also bounds the memory custom attributes take (bench/memory.py).
MAX_ATTRIBUTES_PER_EVENT = 100
MAX_TEXT_LENGTH = 1000  # ids, brands, categories, order ids, event ids, custom attribute names and values
MAX_QUANTITY = 2**31 - 1  # Meta's quantity is a 32-bit int; a product outside 1..this is left out

# An upper bound of the JSON of each event's contents and custom data (the parts without a fixed bound)
# is kept while mapping, so that render.py serialises an event to measure it exactly only when it might
# be over render.MAX_EVENT_BYTES. orjson writes one character in at most 6 bytes (a control character
# as \u00XX, any other in 1 to 4 bytes of UTF-8).
JSON_BYTES_PER_CHAR = 6
# per content: keys, quotes, commas, a quantity (10 digits), a price (24), and on the Conversions API a title
# key and the quotes and comma of its id in content_ids (109 in all)
CONTENT_OVERHEAD_BYTES = 120
ATTRIBUTE_OVERHEAD_BYTES = 32  # per custom attribute: quotes, colon, comma, a number or boolean (24)


class TooLong(ValueError):
    """A text an event would forward (an id, brand, category, order id, attribute name or value) is over
    MAX_TEXT_LENGTH: the event is skipped as `value_too_long`."""
