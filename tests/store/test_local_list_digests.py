"""A charger's recorded local list (migration 0018): an accepted SendLocalList is recorded
in SQL by what it changes, and the list's digest is moved by the changed entries alone, to
the value computed from the whole list, in Python (the wanted lists') as in SQL; digests of
the old form are recomputed at the upgrade, so no charger's list looks out of sync then.
Each distinct list is stored once (migration 0019)."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voltaro.central.local_list_entries import apply_update, full_update
from voltaro.central.timestamps import utc_now
from voltaro.store import Store, open_store
from voltaro.store.database import open_database
from voltaro.store.list_digests import DIGEST_MODULUS, INFO_KEYS, digest, entry_hash
from voltaro.store.local_lists import LocalListRepository
from voltaro.store.migrate import available_migrations, migrate
from voltaro.store.testing import TestPostgres

# the module, not the function voltaro.store exports under the same name
migrate_module = importlib.import_module("voltaro.store.migrate")

# Any text PostgreSQL stores as it is (jsonb turns U+0000 into U+FFFD), multi-byte too.
storable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
texts = st.text(storable, min_size=1, max_size=20)
tags = st.text(alphabet="ABCDEF123", min_size=1, max_size=3)
infos = st.fixed_dictionaries(
    {"status": st.sampled_from(["Accepted", "Blocked", "Expired", "Invalid"])},
    optional={"parentIdTag": tags, "expiryDate": st.just("2027-01-01T00:00:00.000Z")},
)
entries = st.lists(
    st.fixed_dictionaries({"idTag": tags}, optional={"idTagInfo": infos}), max_size=12
)
updates = st.fixed_dictionaries(
    {
        "listVersion": st.integers(1, 100),
        "localAuthorizationList": entries,
        "updateType": st.sampled_from(["Full", "Differential", "Differential"]),
    }
)
PATIENT = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


async def each_example(check: Callable[[Any], Awaitable[None]], strategy: Any) -> None:
    """Hypothesis runs ``check`` on its examples from a worker thread, each example back on
    this trio loop (where the store lives)."""

    @given(strategy)
    @PATIENT
    def example(drawn: Any) -> None:
        trio.from_thread.run(check, drawn)

    await trio.to_thread.run_sync(example)


def value(digest_text: str) -> int:
    assert digest_text.startswith("sum:")
    return int(digest_text[4:])


def legacy_digest(held: dict[str, Any]) -> str:
    """The digest before migration 0018: a hash of the whole list."""
    data = orjson.dumps(dict(sorted(held.items())), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:32]


async def row(store: Store, charge_point_id: str) -> Any:
    """The charger's row with the entries of the list it names (migration 0019), their size
    as stored with them and their digest computed in SQL."""
    return await store.database.run(
        lambda c: c.fetchrow(
            "SELECT c.entries, l.size, c.size AS stored_size, l.digest,"
            " local_list_digest(c.entries) AS sql_digest, l.needs_full, l.state, l.version"
            " FROM local_lists l LEFT JOIN local_list_contents c ON c.digest = l.digest"
            " WHERE l.charge_point_id = $1",
            charge_point_id,
        )
    )


async def stored_lists(store: Store) -> int:
    return await store.database.run(  # type: ignore[no-any-return]
        lambda c: c.fetchval("SELECT count(*) FROM local_list_contents")
    )


async def test_sql_and_python_hash_entries_alike(store: Store) -> None:
    """The SQL of migration 0018 keeps the chargers' digests, Python computes the wanted
    lists': any difference would make every list look out of sync."""

    async def check(held: dict[str, Any]) -> None:
        rows = await store.database.run(
            lambda c: c.fetch(
                "SELECT key, local_list_digest(jsonb_build_object(key, value)) AS digest"
                " FROM jsonb_each($1::jsonb)",
                held,
            )
        )
        assert {r["key"]: value(r["digest"]) for r in rows} == {
            tag: entry_hash(tag, info) for tag, info in held.items()
        }
        sql_digest = await store.database.run(
            lambda c: c.fetchval("SELECT local_list_digest($1::jsonb)", held)
        )
        assert sql_digest == digest(held)

    infos_ = st.fixed_dictionaries({}, optional=dict.fromkeys(INFO_KEYS, texts))
    await each_example(check, st.dictionaries(texts, infos_, max_size=8))


@given(st.dictionaries(tags, infos, max_size=20), st.dictionaries(tags, infos, max_size=20))
def test_the_digest_is_a_sum_of_its_entries_in_any_order(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    """So an update can move it by the entries it changed alone."""
    both = first | second
    only_first = {tag: info for tag, info in first.items() if tag not in second}
    assert digest(dict(reversed(both.items()))) == digest(both)
    assert value(digest(both)) == (value(digest(only_first)) + value(digest(second))) % (
        DIGEST_MODULUS
    )
    assert (digest(first) == digest(second)) == (first == second)


async def test_recorded_updates_give_the_list_and_its_digest(store: Store) -> None:
    """Whatever the updates (duplicate tags, removals of absent ones, Full or Differential),
    the row holds what the charger holds, and the digest moved by each update is the one
    computed from the whole list, in Python and in SQL."""
    lists = LocalListRepository(store.database)

    async def check(sequence: list[dict[str, Any]]) -> None:
        await store.database.run(lambda c: c.execute("DELETE FROM local_lists"))
        await store.database.run(lambda c: c.execute("DELETE FROM local_list_contents"))
        held: dict[str, Any] = {}
        for update in sequence:
            held = apply_update(held, update)
            await lists.record_update("CP", update, state="synced", version=update["listVersion"])
            found = await row(store, "CP")
            assert found["entries"] == held
            assert found["size"] == found["stored_size"] == len(held)
            assert found["digest"] == found["sql_digest"] == digest(held)
            assert found["version"] == update["listVersion"] and found["state"] == "synced"

    await each_example(check, st.lists(updates, min_size=1, max_size=6))


async def test_a_full_list_in_many_messages_ends_as_the_whole_list(store: Store) -> None:
    lists = LocalListRepository(store.database)
    wanted = {f"TAG{n:04d}": {"status": "Accepted"} for n in range(1000)}
    wanted["TAG0007"] = {"expiryDate": "2027-01-01T00:00:00.000Z", "status": "Blocked"}
    old = {f"OLD{n}": {"status": "Accepted"} for n in range(5)}
    await lists.record_update("CP", full_update(old, 0, 100).messages[0], needs_full=True)
    update = full_update(wanted, 3, 100)
    assert len(update.messages) == 10
    for message in update.messages:
        full = message["updateType"] == "Full"
        await lists.record_update("CP", message, **({"needs_full": False} if full else {}))
    found = await row(store, "CP")
    assert found["entries"] == wanted and found["size"] == 1000
    assert found["digest"] == digest(wanted) == found["sql_digest"]
    assert found["needs_full"] is False

    differential = {
        "listVersion": 14,
        "localAuthorizationList": [
            {"idTag": "TAG0001"},
            {"idTag": "TAG0002", "idTagInfo": {"status": "Invalid"}},
            {"idTag": "NEW", "idTagInfo": {"status": "Accepted", "parentIdTag": "TAG0003"}},
            {"idTag": "ABSENT"},
        ],
        "updateType": "Differential",
    }
    await lists.record_update("CP", differential)
    expected = apply_update(wanted, differential)
    found = await row(store, "CP")
    assert found["entries"] == expected and found["size"] == 1000
    assert found["digest"] == digest(expected) != digest(wanted)

    # touching many held tags: the list is read once and filtered, not looked up per tag
    many = [{"idTag": f"TAG{n:04d}"} for n in range(100, 120)] + [
        {"idTag": f"TAG{n:04d}", "idTagInfo": {"status": "Blocked"}} for n in range(200, 230)
    ]
    differential = {"listVersion": 15, "localAuthorizationList": many, "updateType": "Differential"}
    await lists.record_update("CP", differential)
    expected = apply_update(expected, differential)
    found = await row(store, "CP")
    assert found["entries"] == expected and found["size"] == 980 == found["stored_size"]
    assert found["digest"] == digest(expected) == found["sql_digest"]


async def test_answers_recorded_at_once_each_see_the_other(store: Store) -> None:
    lists = LocalListRepository(store.database)
    await lists.record_update(
        "CP", {"listVersion": 1, "localAuthorizationList": [], "updateType": "Full"}
    )

    async def add(n: int) -> None:
        tags_ = [{"idTag": f"T{n}-{i}", "idTagInfo": {"status": "Accepted"}} for i in range(20)]
        update = {"listVersion": n, "localAuthorizationList": tags_, "updateType": "Differential"}
        await lists.record_update("CP", update)

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(add, n)
    expected = {f"T{n}-{i}": {"status": "Accepted"} for n in range(8) for i in range(20)}
    found = await row(store, "CP")
    assert found["entries"] == expected and found["size"] == 160
    assert found["digest"] == digest(expected)


async def test_the_upgrades_keep_every_list_and_store_each_once(
    pg_server: TestPostgres, aio_loop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before 0018 a digest hashed the whole list: kept so, every charger's list would look
    out of sync after the upgrade and get a Full list, the whole fleet at once. 0019 moves
    the lists out of the chargers' rows, each distinct list stored once, a digest of the old
    form written in between (by an instance not yet upgraded) recomputed first."""
    await trio.to_thread.run_sync(pg_server.execute, 'CREATE DATABASE "blank_list_digests"')
    url = pg_server.url("blank_list_digests")
    every = available_migrations()
    held = {f"TAG{n}": {"status": "Accepted"} for n in range(30)}
    insert = (
        "INSERT INTO local_lists (charge_point_id, state, version, entries, digest,"
        " size, needs_full) VALUES ($1, 'synced', 3, $2::jsonb, $3, $4, false)"
    )

    async def upgrade_to(version: int) -> None:
        upto = [m for m in every if m.version <= version]
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: upto)
        await migrate(url)

    try:
        await upgrade_to(17)
        async with open_database(url) as database:
            await database.run(
                lambda c: c.executemany(
                    insert,
                    [
                        ("CP1", held, legacy_digest(held), len(held)),
                        ("CP2", {}, legacy_digest({}), 0),
                    ],
                )
            )
            await database.run(
                lambda c: c.execute("INSERT INTO local_lists (charge_point_id) VALUES ('CP3')")
            )
        await upgrade_to(18)
        async with open_database(url) as database:
            await database.run(lambda c: c.execute(insert, "CP4", held, legacy_digest(held), 30))
        await upgrade_to(max(m.version for m in every))
        async with open_store(url, tmp_path) as store:
            for charge_point_id in ("CP1", "CP4"):
                found = await row(store, charge_point_id)
                assert found["digest"] == digest(held) == found["sql_digest"]
                assert found["entries"] == held and found["stored_size"] == 30
            assert (await row(store, "CP2"))["entries"] == {}
            assert (await row(store, "CP2"))["digest"] == digest({})
            assert (await row(store, "CP3"))["digest"] is None  # nothing accepted yet
            assert await stored_lists(store) == 2  # CP1's and CP4's list once

            update = {
                "listVersion": 4,
                "localAuthorizationList": [{"idTag": "TAG1"}],
                "updateType": "Differential",
            }
            await LocalListRepository(store.database).record_update("CP1", update)
            found = await row(store, "CP1")
            assert found["digest"] == digest(apply_update(held, update))
            assert found["entries"] == apply_update(held, update) and found["size"] == 29
    finally:
        await trio.to_thread.run_sync(pg_server.drop_database, url)


async def test_chargers_holding_the_same_list_share_it(store: Store) -> None:
    """A fleet's chargers getting the same Full in ten messages store each step of it once;
    the steps no charger holds any more are deleted an hour after they were stored."""
    lists = LocalListRepository(store.database)
    wanted = {f"TAG{n:04d}": {"status": "Accepted"} for n in range(1000)}
    update = full_update(wanted, 0, 100)
    for charge_point_id in ("CP1", "CP2", "CP3"):
        for message in update.messages:
            await lists.record_update(charge_point_id, message)
    for charge_point_id in ("CP1", "CP2", "CP3"):
        found = await row(store, charge_point_id)
        assert found["entries"] == wanted and found["digest"] == digest(wanted)
        assert found["size"] == 1000
    assert await stored_lists(store) == 10

    assert await lists.forget_unused(utc_now() - timedelta(hours=1)) == 0  # too recent
    assert await lists.forget_unused(utc_now() + timedelta(seconds=1)) == 9
    assert await stored_lists(store) == 1
    assert await lists.held_entries(digest(wanted)) == wanted
    assert await lists.held_entries(None) == {}


async def test_a_list_whose_entries_are_gone_is_not_known(store: Store) -> None:
    """A charger left naming a list that was deleted (it moved to it as it was deleted):
    after a Differential what it holds is not known, and it needs a Full."""
    lists = LocalListRepository(store.database)
    first = {"listVersion": 1, "localAuthorizationList": [], "updateType": "Full"}
    await lists.record_update("CP", first, needs_full=False)
    held = (await row(store, "CP"))["digest"]
    await store.database.run(lambda c: c.execute("DELETE FROM local_list_contents"))
    assert await LocalListRepository(store.database).held_entries(held) is None

    added = [{"idTag": "NEW", "idTagInfo": {"status": "Accepted"}}]
    update = {"listVersion": 2, "localAuthorizationList": added, "updateType": "Differential"}
    await lists.record_update("CP", update, version=2)
    found = await row(store, "CP")
    assert found["digest"] is None and found["needs_full"] is True and found["size"] == 0
    assert found["version"] == 2

    await lists.record_update("CP", {**update, "updateType": "Full", "listVersion": 3})
    found = await row(store, "CP")
    assert found["entries"] == {"NEW": {"status": "Accepted"}} and found["size"] == 1


async def test_entries_are_hashed_as_postgresql_stores_them(store: Store) -> None:
    """An operator's list may hold U+0000, which PostgreSQL's jsonb and text cannot hold: it
    is recorded as U+FFFD (as the message log stores it), and the hashes Voltaro computes
    for the update are those of what is stored, or the list would be stored under a digest
    that is not its own. (Recording such an answer failed before.)"""
    lists = LocalListRepository(store.database)
    sent = [{"idTag": "A\x00B", "idTagInfo": {"status": "Accepted", "parentIdTag": "\x00"}}]
    await lists.record_update(
        "CP", {"listVersion": 1, "localAuthorizationList": sent, "updateType": "Full"}
    )
    found = await row(store, "CP")
    assert found["entries"] == {"A\ufffdB": {"status": "Accepted", "parentIdTag": "\ufffd"}}
    assert found["digest"] == found["sql_digest"] == digest(found["entries"])
