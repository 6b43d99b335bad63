"""Authorize from the id tag cache, and the cache following changes made elsewhere."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from tests.central.helpers import TIMESTAMP, call
from voltaro import cli_admin
from voltaro.central import CentralSystem
from voltaro.store.testing import TestPostgres


async def authorize(central: CentralSystem, tag: str) -> dict[str, Any]:
    reply: dict[str, Any] = await call(central, "CP1", "Authorize", {"idTag": tag})
    return reply["idTagInfo"]


async def eventually(central: CentralSystem, tag: str, expected: str) -> None:
    """Wait (at most 10 s) for the cache to answer ``expected`` for ``tag``."""
    with trio.fail_after(10):
        while (await authorize(central, tag))["status"] != expected:
            await trio.sleep(0.01)


async def test_statuses(central: CentralSystem) -> None:
    tags = central.store.id_tags
    future = datetime.now(UTC) + timedelta(days=30)
    await tags.upsert("GOOD", expiry_date=future, parent_id_tag="FLEET")
    await tags.upsert("PLAIN")
    await tags.upsert("BAD", status="Blocked")
    await tags.upsert("OLD", expiry_date=datetime.now(UTC) - timedelta(seconds=1))
    await eventually(central, "OLD", "Expired")

    good = await authorize(central, "GOOD")
    assert good["status"] == "Accepted" and good["parentIdTag"] == "FLEET"
    assert TIMESTAMP.match(good["expiryDate"])
    assert datetime.fromisoformat(good["expiryDate"]) - future < timedelta(milliseconds=1)
    assert await authorize(central, "PLAIN") == {"status": "Accepted"}
    assert (await authorize(central, "good"))["status"] == "Accepted"  # CiString: any case
    assert (await authorize(central, "BAD"))["status"] == "Blocked"
    assert (await authorize(central, "OLD"))["status"] == "Expired"
    assert await authorize(central, "NOBODY") == {"status": "Invalid"}


async def test_concurrent_tx(central: CentralSystem) -> None:
    await central.store.id_tags.upsert("BUSY")
    await eventually(central, "BUSY", "Accepted")
    start = {
        "connectorId": 1,
        "idTag": "BUSY",
        "meterStart": 0,
        "timestamp": "2024-05-01T10:00:00Z",
    }
    reply = await call(central, "CP1", "StartTransaction", start)
    assert reply["idTagInfo"]["status"] == "Accepted"
    assert (await authorize(central, "busy"))["status"] == "ConcurrentTx"
    other = await call(central, "CP2", "StartTransaction", {**start, "connectorId": 2})
    assert other["idTagInfo"]["status"] == "ConcurrentTx"
    for tx in (reply, other):
        await call(
            central,
            "CP1" if tx is reply else "CP2",
            "StopTransaction",
            {
                "transactionId": tx["transactionId"],
                "meterStop": 10,
                "timestamp": "2024-05-01T11:00:00Z",
            },
        )
    assert (await authorize(central, "BUSY"))["status"] == "Accepted"


async def test_change_by_another_connection_reaches_the_cache(
    central: CentralSystem, pg_server: TestPostgres
) -> None:
    await central.store.id_tags.upsert("CARD")
    await eventually(central, "CARD", "Accepted")
    name = pg_server.database_name(central.store.database.url)
    notifications = central.store.id_tag_cache.notifications
    await trio.to_thread.run_sync(
        pg_server.execute, "UPDATE id_tags SET status = 'Blocked' WHERE id_tag = 'CARD'", name
    )
    await eventually(central, "CARD", "Blocked")
    assert central.store.id_tag_cache.valid
    assert central.store.id_tag_cache.notifications > notifications  # not a reload
    await trio.to_thread.run_sync(
        pg_server.execute, "DELETE FROM id_tags WHERE id_tag = 'CARD'", name
    )
    await eventually(central, "CARD", "Invalid")


async def test_cli_in_another_thread_blocks_a_tag(central: CentralSystem) -> None:
    settings = central.settings
    await central.store.id_tags.upsert("RFID-1")
    await eventually(central, "RFID-1", "Accepted")
    args = argparse.Namespace(id_tag="RFID-1")
    code = await trio.to_thread.run_sync(cli_admin.idtag_block, args, settings)
    assert code == 0
    await eventually(central, "RFID-1", "Blocked")


async def test_lost_listener_never_answers_from_a_stale_cache(
    central: CentralSystem, pg_server: TestPostgres
) -> None:
    cache = central.store.id_tag_cache
    await central.store.id_tags.upsert("CARD")
    await eventually(central, "CARD", "Accepted")
    name = pg_server.database_name(central.store.database.url)

    # The listener dies and cannot come back (no new connections); pooled ones stay.
    def drop_listener() -> None:
        pg_server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg_server.execute(f"SELECT pg_terminate_backend({cache.listener_pid})")

    assert [r.id_tag for r in cache.records() or []] == ["CARD"]
    await trio.to_thread.run_sync(drop_listener)
    with trio.fail_after(10):
        while cache.valid:
            await trio.sleep(0.01)
    assert cache.records() is None  # whoever wants them all reads the table meanwhile

    # A change no notification can announce is still seen at once: lookups go to the table.
    assert await central.store.id_tags.set_status("CARD", "Blocked")
    assert (await authorize(central, "CARD"))["status"] == "Blocked"
    assert cache.misses >= 1

    reloads = cache.reloads
    await trio.to_thread.run_sync(
        pg_server.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
    )
    with trio.fail_after(20):
        while not cache.valid:
            await trio.sleep(0.02)
    assert cache.reloads == reloads + 1
    assert (await authorize(central, "CARD"))["status"] == "Blocked"
    await central.store.id_tags.set_status("CARD", "Accepted")
    await eventually(central, "CARD", "Accepted")


async def test_truncate_forces_a_reload(central: CentralSystem, pg_server: TestPostgres) -> None:
    await central.store.id_tags.upsert("CARD")
    await eventually(central, "CARD", "Accepted")
    name = pg_server.database_name(central.store.database.url)
    await trio.to_thread.run_sync(pg_server.execute, "TRUNCATE id_tags", name)
    await eventually(central, "CARD", "Invalid")


async def test_expiry_at_the_databases_infinities_still_authorizes(central: CentralSystem) -> None:
    """PostgreSQL's 'infinity' comes back from asyncpg as a naive datetime; a tag whose expiry
    an operator set to it by SQL must not make Authorize fail (it did: naive vs aware)."""
    await central.store.id_tags.upsert("FOREVER")
    await central.store.id_tags.upsert("NEVER")
    await central.store.database.run(
        lambda c: c.execute(
            "UPDATE id_tags SET expiry_date = CASE id_tag WHEN 'FOREVER' THEN 'infinity'"
            "::timestamptz ELSE '-infinity'::timestamptz END"
        )
    )
    await eventually(central, "NEVER", "Expired")
    forever = await authorize(central, "FOREVER")
    assert forever == {"status": "Accepted", "expiryDate": "9999-12-31T23:59:59.999Z"}


async def test_a_notification_the_cache_cannot_use_makes_it_reload(central: CentralSystem) -> None:
    """It runs in the LISTEN connection's callback, where an exception ended the server."""
    cache = central.store.id_tag_cache
    await central.store.id_tags.upsert("STAYS")
    await eventually(central, "STAYS", "Accepted")
    reloads = cache.reloads
    for junk in ('{"op": "upsert"}', '{"op": "delete"}', "[1]", "not json"):
        await central.store.database.run(
            lambda c, junk=junk: c.execute("SELECT pg_notify('voltaro_id_tags', $1)", junk)
        )
    with trio.fail_after(10):
        while cache.reloads < reloads + 1 or not cache.valid:
            await trio.sleep(0.01)
    assert (await authorize(central, "STAYS"))["status"] == "Accepted"
