"""A charger's recorded local list (migration 0018): an accepted SendLocalList is recorded
in SQL by what it changes, and the list's digest is moved by the changed entries alone, to
the value computed from the whole list, in Python (the wanted lists') as in SQL; digests of
the old form are recomputed at the upgrade, so no charger's list looks out of sync then."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voltaro.central.local_list_entries import (
    DIGEST_MODULUS,
    INFO_KEYS,
    apply_update,
    digest,
    entry_hash,
    full_update,
)
from voltaro.store import Store, open_store
from voltaro.store.database import open_database
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
    return await store.database.run(
        lambda c: c.fetchrow(
            "SELECT entries, size, digest, local_list_digest(entries) AS sql_digest,"
            " needs_full, state, version FROM local_lists WHERE charge_point_id = $1",
            charge_point_id,
        )
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
        held: dict[str, Any] = {}
        for update in sequence:
            held = apply_update(held, update)
            await lists.record_update("CP", update, state="synced", version=update["listVersion"])
            found = await row(store, "CP")
            assert found["entries"] == held
            assert found["size"] == len(held)
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


async def test_digests_of_the_old_form_are_recomputed_at_the_upgrade(
    pg_server: TestPostgres, aio_loop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before 0018 a digest hashed the whole list: kept so, every charger's list would look
    out of sync after the upgrade and get a Full list, the whole fleet at once."""
    await trio.to_thread.run_sync(pg_server.execute, 'CREATE DATABASE "blank_list_digests"')
    url = pg_server.url("blank_list_digests")
    every = available_migrations()
    before = [m for m in every if m.version < 18]
    held = {f"TAG{n}": {"status": "Accepted"} for n in range(30)}
    try:
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: before)
        await migrate(url)
        async with open_database(url) as database:
            await database.run(
                lambda c: c.executemany(
                    "INSERT INTO local_lists (charge_point_id, state, version, entries, digest,"
                    " size, needs_full) VALUES ($1, 'synced', 3, $2::jsonb, $3, $4, false)",
                    [
                        ("CP1", held, legacy_digest(held), len(held)),
                        ("CP2", {}, legacy_digest({}), 0),
                    ],
                )
            )
            await database.run(
                lambda c: c.execute("INSERT INTO local_lists (charge_point_id) VALUES ('CP3')")
            )
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: every)
        await migrate(url)
        async with open_store(url, tmp_path) as store:
            assert (await row(store, "CP1"))["digest"] == digest(held)
            assert (await row(store, "CP2"))["digest"] == digest({})
            assert (await row(store, "CP3"))["digest"] is None  # nothing accepted yet

            # and a digest of the old form written later (an instance not yet upgraded) is
            # recomputed at the next accepted update
            await store.database.run(
                lambda c: c.execute(
                    "UPDATE local_lists SET digest = $1 WHERE charge_point_id = 'CP1'",
                    legacy_digest(held),
                )
            )
            update = {
                "listVersion": 4,
                "localAuthorizationList": [{"idTag": "TAG1"}],
                "updateType": "Differential",
            }
            await LocalListRepository(store.database).record_update("CP1", update)
            assert (await row(store, "CP1"))["digest"] == digest(apply_update(held, update))
    finally:
        await trio.to_thread.run_sync(pg_server.drop_database, url)
