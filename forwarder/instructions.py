"""Instructions an event carries for Facebook: the `Facebook.*` custom flags, or custom attributes of those names.

mParticle's Facebook integration reads an event's action source from its `Facebook.ActionSource` custom flag
(docs.mparticle.com/integrations/facebook/event/); this forwarder reads every name here the same way: the
custom flag first (a string, or a list of strings of which the first counts), else a custom attribute of that
name (exact spelling, as mParticle's flags are). An instruction says how to send the event, so it is never
sent on as custom data (custom_data.py leaves every name here out), whichever API is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ACTION_SOURCE = "Facebook.ActionSource"  # Meta's action_source (action_source.py)
LEAD_ID = "Facebook.LeadId"  # Meta's user_data.lead_id (event_user_data.py)
CTWA_CLID = "Facebook.CtwaClid"  # Meta's user_data.ctwa_clid
PAGE_ID = "Facebook.PageId"  # Meta's user_data.page_id
INSTRUCTIONS = frozenset({ACTION_SOURCE, LEAD_ID, CTWA_CLID, PAGE_ID})


def instruction(data: Mapping[str, Any], name: str) -> Any:
    """The value the event's `data` gives `name` (one of INSTRUCTIONS): its custom flag, else its custom
    attribute; the first item of a list; None when neither is there (or the list is empty)."""
    given = None
    flags = data.get("custom_flags")
    if type(flags) is dict:
        given = flags.get(name)
    if given is None and type(attributes := data.get("custom_attributes")) is dict:
        given = attributes.get(name)
    if type(given) is list:
        given = given[0] if given else None
    return given
