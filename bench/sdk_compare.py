"""Measurement 2: Conversions API events built with Meta's SDK versus our map + render.

Both start from the same parsed batch and end with the list of event dicts that goes into `data`.
The SDK side is written the way its README shows (UserData, Content, CustomData, Event, then
`normalize()`), with the least field reading it can get away with and one UserData shared by every
event, so the comparison favours the SDK rather than us. Its `normalize()` still hashes the user's
keys on every event: that is how the SDK works.
"""

from __future__ import annotations

import json
import time
from typing import Any

from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.content import Content
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.delivery_category import DeliveryCategory
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.gender import Gender
from facebook_business.adobjects.serverside.user_data import UserData

from bench import workload
from bench.harness import EVENT_SET_ID, Row, interleaved, median_ms
from forwarder.batch import read_batch
from forwarder.event_names import DEFAULT_EVENT_NAMES
from forwarder.mapping import map_batch
from forwarder.match_keys import sha256_hex
from forwarder.render import NUM_ITEMS_EVENTS, render_events
from forwarder.settings import Settings, load_settings

EVENTS = 2000
TARGET = 3.0
_GENDERS = {"m": Gender.MALE, "f": Gender.FEMALE}


def _user_data(batch: dict[str, Any]) -> UserData:
    identities = {item["identity_type"]: item["identity"] for item in batch.get("user_identities", [])}
    attributes = batch.get("user_attributes", {})
    gender = _GENDERS.get(str(attributes.get("$gender", "")).lower())
    madid = batch.get("device_info", {}).get("ios_advertising_id")
    phones = [value for value in (identities.get("mobile_number"), attributes.get("$mobile")) if value]
    return UserData(
        emails=[identities["email"]] if "email" in identities else None,
        phones=phones or None,
        states=[attributes["$state"]] if "$state" in attributes else None,
        zip_codes=[attributes["$zip"]] if "$zip" in attributes else None,
        first_names=[attributes["$firstname"]] if "$firstname" in attributes else None,
        last_names=[attributes["$lastname"]] if "$lastname" in attributes else None,
        genders=[gender] if gender else None,
        cities=[attributes["$city"]] if "$city" in attributes else None,
        country_codes=[attributes["$country"]] if "$country" in attributes else None,
        external_ids=[identities["customer_id"]] if "customer_id" in identities else None,
        madid=madid.lower() if madid else None,
    )


def sdk_events(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The batch's events as Meta's SDK renders them for the Conversions API."""
    user_data = _user_data(batch)
    rendered = []
    for event in batch["events"]:
        data = event["data"]
        action = data["product_action"]
        products = action.get("products", [])
        value = action.get("total_amount") or sum(p["price"] * p.get("quantity", 1) for p in products)
        event_name = DEFAULT_EVENT_NAMES[action["action"]]
        one = products[0] if len(products) == 1 else {}
        custom_data = CustomData(
            value=value,
            currency=data.get("currency_code", "USD").lower(),
            contents=[
                Content(
                    product_id=p["id"],
                    quantity=p.get("quantity", 1),
                    item_price=p.get("price"),
                    brand=p.get("brand"),
                    category=p.get("category"),
                    title=p.get("name"),
                )
                for p in products
            ],
            content_type="product",
            order_id=action.get("transaction_id"),
            custom_properties=data.get("custom_attributes") or {},
            # The same content details as ours (README, "Other attributes").
            content_ids=[p["id"] for p in products],
            content_name=one.get("name"),
            content_category=one.get("category"),
            num_items=sum(p.get("quantity", 1) for p in products) if event_name in NUM_ITEMS_EVENTS else None,
            delivery_category=DeliveryCategory.IN_STORE if event_name == "Purchase" else None,
        )
        sdk_event = Event(
            event_name=event_name,
            event_time=data["timestamp_unixtime_ms"] // 1000,
            event_id=data["source_message_id"],
            user_data=user_data,
            custom_data=custom_data,
            action_source=ActionSource.PHYSICAL_STORE,
        )
        rendered.append(sdk_event.normalize())
    return rendered


def our_events(batch: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    sha256_hex.cache_clear()  # a new user every time, as for the SDK
    mapped = map_batch(read_batch(batch), settings, time.time())
    return render_events(mapped, settings)[0]


def _check_same_events(ours: list[dict[str, Any]], sdk: list[dict[str, Any]]) -> None:
    """Both sides must have built the same events, or the comparison means nothing."""
    assert len(ours) == len(sdk), (len(ours), len(sdk))
    for mine, theirs in zip(ours, sdk, strict=True):
        assert mine["event_id"] == theirs["event_id"] and mine["event_name"] == theirs["event_name"]
        assert mine["user_data"]["em"] in theirs["user_data"]["em"]
        assert mine["user_data"]["ph"] in theirs["user_data"]["ph"]  # the sample's two phones are one number
        assert len(mine["custom_data"].get("contents", [])) == len(theirs["custom_data"].get("contents", []))
        for field in ("content_ids", "content_name", "num_items", "delivery_category"):
            assert mine["custom_data"].get(field) == theirs["custom_data"].get(field), field


def measure(repeat: int, events: int = EVENTS) -> dict[str, float]:
    batch = json.loads(json.dumps(workload.batch(events)))
    env = {"SECRET_ID": "bench", "OFFLINE_EVENT_SET_ID": EVENT_SET_ID, "FACEBOOK_API": "conversions_api"}
    settings = load_settings({**env, "PARKING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/bench"})
    _check_same_events(our_events(batch, settings), sdk_events(batch))
    times = interleaved({"ours": lambda: our_events(batch, settings), "sdk": lambda: sdk_events(batch)}, repeat)
    return {"ours_ms": median_ms(times["ours"]), "sdk_ms": median_ms(times["sdk"]), "events": events}


def row(result: dict[str, float]) -> Row:
    speedup = result["sdk_ms"] / result["ours_ms"]
    return Row(
        metric=f"2. Conversions API events, {result['events']:.0f} events: our map + render vs Meta's SDK",
        measured=f"{result['ours_ms']:.1f} ms",
        reference=f"facebook_business SDK {result['sdk_ms']:.1f} ms",
        ratio=f"{speedup:.1f}x faster",
        target=f">= {TARGET:.0f}x faster",
        met=speedup >= TARGET,
    )
