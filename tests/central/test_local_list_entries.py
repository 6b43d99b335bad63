"""The local list Voltaro computes and the SendLocalList messages that bring a charger to it:
a Differential update applied to the charger's list gives the list Voltaro computed, however
it is split; the payloads keep the schema's key order and validate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from voltaro.central.local_list_entries import (
    apply_update,
    differential_update,
    full_update,
    next_change,
    wanted_list,
)
from voltaro.ocppj.actions import Direction
from voltaro.ocppj.validation import SchemaRegistry
from voltaro.store.list_digests import digest
from voltaro.store.records import IdTagRecord

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SCHEMAS = SchemaRegistry.load()

tags = st.text(alphabet="ABCDEF123", min_size=1, max_size=4)
infos = st.fixed_dictionaries(
    {"status": st.sampled_from(["Accepted", "Blocked", "Expired", "Invalid"])},
    optional={"parentIdTag": tags, "expiryDate": st.just("2027-01-01T00:00:00.000Z")},
)
lists = st.dictionaries(tags, infos, max_size=25)


def charger_applies(held: dict[str, Any], version: int, messages: list[dict[str, Any]]) -> Any:
    """What a charger does with the messages, one after the other: each one's version must
    be newer (a Differential's, as the spec says), and its list follows; it never holds
    more entries than the larger of where it starts and where it ends."""
    start, sizes = len(held), []
    for message in messages:
        assert SCHEMAS.validate("SendLocalList", Direction.REQUEST, message) is None
        assert list(message) == ["listVersion", "localAuthorizationList", "updateType"]
        if message["updateType"] == "Differential":
            assert message["listVersion"] > version
        held, version = apply_update(held, message), message["listVersion"]
        sizes.append(len(held))
    assert all(size <= max(start, len(held)) for size in sizes)
    return held, version


@given(held=lists, wanted=lists, version=st.integers(0, 1000), send_max=st.integers(1, 30))
def test_a_differential_update_applied_gives_the_computed_list(
    held: dict[str, Any], wanted: dict[str, Any], version: int, send_max: int
) -> None:
    update = differential_update(held, wanted, version, send_max)
    result, final = charger_applies(held, version, update.messages)
    assert result == wanted and digest(result) == digest(wanted)
    assert final == update.version == version + len(update.messages)
    assert all(len(m["localAuthorizationList"]) <= send_max for m in update.messages)
    assert (update.messages == []) == (held == wanted)


@given(held=lists, wanted=lists, version=st.integers(0, 1000), send_max=st.integers(1, 30))
def test_a_full_update_split_in_messages_gives_the_computed_list(
    held: dict[str, Any], wanted: dict[str, Any], version: int, send_max: int
) -> None:
    update = full_update(wanted, version, send_max)
    assert update.messages[0]["updateType"] == "Full"
    assert all(m["updateType"] == "Differential" for m in update.messages[1:])
    result, final = charger_applies(held, version, update.messages)
    assert result == wanted and final == update.version


def test_the_wanted_list_follows_the_tag_table() -> None:
    records = [
        IdTagRecord("ZED", "Accepted", None, None),
        IdTagRecord("BLOCKED", "Blocked", None, "PARENT"),
        IdTagRecord("PAST", "Accepted", NOW - timedelta(days=1), None),
        IdTagRecord("SOON", "Accepted", NOW + timedelta(hours=1), None),
        IdTagRecord("X" * 21, "Accepted", None, None),  # too long for a list
    ]
    wanted = wanted_list(records, NOW)
    assert list(wanted) == ["BLOCKED", "PAST", "SOON", "ZED"]
    assert wanted["BLOCKED"] == {"parentIdTag": "PARENT", "status": "Blocked"}
    assert wanted["PAST"] == {"expiryDate": "2026-11-30T12:00:00.000Z", "status": "Expired"}
    assert list(wanted["SOON"]) == ["expiryDate", "status"]  # the schema's order
    assert list(wanted_list(records, NOW, max_length=2)) == ["BLOCKED", "PAST"]
    assert next_change(records, NOW) == NOW + timedelta(hours=1)  # SOON turns Expired
    assert wanted_list(records, NOW + timedelta(hours=2))["SOON"]["status"] == "Expired"


def test_the_wire_form_keeps_the_schema_order() -> None:
    update = full_update({"A": {"status": "Accepted"}}, 4, 10)
    assert orjson.dumps(update.messages[0]) == (
        b'{"listVersion":5,"localAuthorizationList":[{"idTag":"A","idTagInfo":'
        b'{"status":"Accepted"}}],"updateType":"Full"}'
    )
    empty = full_update({}, 0, 10)
    assert empty.messages == [
        {"listVersion": 1, "localAuthorizationList": [], "updateType": "Full"}
    ]
