"""The handshake decided from memory: the charge point cache follows every change that
matters to admission, made here, by another process or by SQL, and reads the table only
when it cannot be trusted or does not know the id."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import asyncpg
import orjson
import pytest
import trio
import trio_asyncio

from tests.central.helpers import never_throttled
from tests.tools import counting_pool_operations
from voltaro.central import AdmissionDecision, CentralSystem, open_central_system
from voltaro.central.commands import NotConnected, UnknownChargePoint
from voltaro.central.passwords import hash_password
from voltaro.config import Settings
from voltaro.store.charge_point_cache import AdmissionFacts
from voltaro.store.testing import TestPostgres

CHARGE_POINT_MODULES = ("voltaro.store.charge_points", "voltaro.store.charge_point_cache")


def counting_reads(central: CentralSystem) -> AbstractContextManager[list[int]]:
    """Count the operations on charge points the store's pool runs meanwhile. Only those:
    the central system's own tasks (leases, the local-list sync) use the pool at any moment
    too."""
    return counting_pool_operations(central.store.database, CHARGE_POINT_MODULES)


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.01)


async def remembered(central: CentralSystem, charge_point_id: str) -> AdmissionFacts:
    """Look up until the cache holds the charge point in memory: a change made here drops
    its entry, and the next lookup reads the row and keeps it."""
    cache = central.store.charge_point_cache
    with trio.fail_after(10):
        while (facts := cache.peek(charge_point_id)) is None:
            await cache.lookup(charge_point_id)
            await trio.sleep(0.01)
    return facts


def sql(pg_server: TestPostgres, central: CentralSystem) -> Callable[[str], Any]:
    """Run a statement from another connection (another process, as far as Voltaro knows)."""
    name = pg_server.database_name(central.store.database.url)

    async def execute(statement: str) -> None:
        await trio.to_thread.run_sync(pg_server.execute, statement, name)

    return execute


async def test_a_known_charge_point_is_admitted_without_a_database_read(
    central: CentralSystem,
) -> None:
    cache = central.store.charge_point_cache
    await central.store.charge_points.upsert("CP-K", status="Accepted", lenient=True)
    await remembered(central, "CP-K")
    reads = cache.reads
    with counting_reads(central) as count:
        for _ in range(20):
            admission = await central.admit("CP-K", None, "10.0.0.1")
            assert admission.accepted and admission.lenient
            assert admission.registration_status == "Accepted"
    assert count[0] == 0
    assert cache.reads == reads


async def test_changes_made_here_are_seen_at_the_next_handshake(central: CentralSystem) -> None:
    central.admitter.throttle = never_throttled()
    charge_points = central.store.charge_points
    await charge_points.upsert("CP-H", status="Accepted")
    assert (await central.admit("CP-H", None)).registration_status == "Accepted"
    # no waiting for the announcement: the change is seen at once
    assert await charge_points.set_status("CP-H", "Rejected")
    assert (await central.admit("CP-H", None)).registration_status == "Rejected"
    await charge_points.upsert("CP-H", password_hash=hash_password("key-1"))
    assert (await central.admit("CP-H", None)).decision is AdmissionDecision.UNAUTHORIZED
    assert (await central.admit("CP-H", "key-1")).accepted
    # and from memory again after one read
    facts = await remembered(central, "CP-H")
    assert facts.registration_status == "Rejected"
    with counting_reads(central) as count:
        assert (await central.admit("CP-H", "key-1")).registration_status == "Rejected"
        assert not (await central.admit("CP-H", "key-2")).accepted
    assert count[0] == 0


async def test_changes_by_another_process_reach_the_cache(
    central: CentralSystem, pg_server: TestPostgres
) -> None:
    central.admitter.throttle = never_throttled()
    cache = central.store.charge_point_cache
    execute = sql(pg_server, central)
    await execute("INSERT INTO charge_points (id, registration_status) VALUES ('CP-S', 'Accepted')")
    await until(lambda: cache.peek("CP-S") == AdmissionFacts("Accepted", None, False))

    await execute("UPDATE charge_points SET registration_status = 'Rejected' WHERE id = 'CP-S'")
    await until(lambda: cache.peek("CP-S") == AdmissionFacts("Rejected", None, False))
    with counting_reads(central) as count:
        assert (await central.admit("CP-S", None)).registration_status == "Rejected"
    assert count[0] == 0

    stored = hash_password("by-sql")
    await execute(f"UPDATE charge_points SET password_hash = '{stored}', lenient = true")
    await until(lambda: cache.peek("CP-S") == AdmissionFacts("Rejected", stored, True))
    with counting_reads(central) as count:
        assert (await central.admit("CP-S", None)).decision is AdmissionDecision.UNAUTHORIZED
        admitted = await central.admit("CP-S", "by-sql")
        assert admitted.accepted and admitted.lenient
    assert count[0] == 0

    # what boots and presence write is not announced: they change nothing admission reads
    notifications = cache.notifications
    await execute("UPDATE charge_points SET online = true, last_seen = now(), vendor = 'X'")
    await execute("UPDATE charge_points SET registration_status = 'Pending' WHERE id = 'CP-S'")
    await until(lambda: cache.peek("CP-S") == AdmissionFacts("Pending", stored, True))
    assert cache.notifications == notifications + 1

    await execute("DELETE FROM charge_points WHERE id = 'CP-S'")
    await until(lambda: cache.peek("CP-S") is None)
    admission = await central.admit("CP-S", None)  # unknown again: registered as Pending
    assert admission.accepted and admission.registration_status == "Pending"
    assert cache.valid


async def test_an_unknown_charger_under_policy_reject_is_read_and_refused(
    voltaro_settings: Settings, aio_loop: Any, pg_server: TestPostgres
) -> None:
    settings = dataclasses.replace(voltaro_settings, unknown_chargers="reject")
    async with open_central_system(settings) as central:
        cache = central.store.charge_point_cache
        reads = cache.reads
        assert (await central.admit("NOBODY", None)).decision is AdmissionDecision.UNKNOWN
        assert cache.reads == reads + 1  # not in memory: the table decides
        # added by another process: admitted at once, before its announcement is heard
        await sql(pg_server, central)(
            "INSERT INTO charge_points (id, registration_status) VALUES ('NEW', 'Accepted')"
        )
        assert (await central.admit("NEW", None)).accepted
        await until(lambda: cache.peek("NEW") is not None)
        await central.store.charge_points.remove("NEW")
        assert (await central.admit("NEW", None)).decision is AdmissionDecision.UNKNOWN


async def test_an_unknown_charger_under_a_registering_policy_is_written_not_read(
    central: CentralSystem,
) -> None:
    """With the cache valid, an id it does not hold is registered at once (the
    registration answers a known row's facts too): no read first."""
    cache = central.store.charge_point_cache
    assert cache.valid
    reads = cache.reads
    with counting_reads(central) as count:
        admission = await central.admit("CP-NEW", None)
    assert admission.accepted and admission.registration_status == "Pending"  # the policy's
    assert count[0] == 0 and cache.reads == reads
    record = await central.store.charge_points.get("CP-NEW")
    assert record is not None and record.registration_status == "Pending"


async def test_an_invalid_cache_reads_the_table(
    central: CentralSystem, pg_server: TestPostgres
) -> None:
    cache = central.store.charge_point_cache
    listener = central.store.id_tag_cache
    await central.store.charge_points.upsert("CP-I", status="Accepted")
    await remembered(central, "CP-I")
    name = pg_server.database_name(central.store.database.url)

    def drop_listener() -> None:
        pg_server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg_server.execute(f"SELECT pg_terminate_backend({listener.listener_pid})")

    await trio.to_thread.run_sync(drop_listener)
    await until(lambda: not cache.valid)
    assert cache.peek("CP-I") is None and len(cache) == 0
    # changed where no announcement can reach us: still seen, from the table
    await central.store.database.run(
        lambda c: c.execute("UPDATE charge_points SET registration_status = 'Rejected'")
    )
    reads = cache.reads
    assert (await central.admit("CP-I", None)).registration_status == "Rejected"
    assert cache.reads == reads + 1

    await trio.to_thread.run_sync(
        pg_server.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
    )
    await until(lambda: cache.valid)
    assert cache.peek("CP-I") == AdmissionFacts("Rejected", None, False)  # reloaded
    with counting_reads(central) as count:
        assert (await central.admit("CP-I", None)).registration_status == "Rejected"
    assert count[0] == 0


async def test_an_unusable_announcement_or_truncate_makes_it_reload(
    central: CentralSystem,
) -> None:
    cache = central.store.charge_point_cache
    listener = central.store.id_tag_cache
    await central.store.charge_points.upsert("CP-U", status="Accepted")
    await remembered(central, "CP-U")
    for junk in (
        '{"op": "upsert", "id": "CP-U"}',
        '{"op": "upsert", "id": "CP-U", "status": "Accepted", "password_hash": 1,'
        ' "lenient": false}',
        '{"op": "reload"}',
        "[1]",
        "not json",
    ):
        reloads = listener.reloads
        await central.store.database.run(
            lambda c, junk=junk: c.execute("SELECT pg_notify('voltaro_charge_points', $1)", junk)
        )
        await until(lambda reloads=reloads: listener.reloads > reloads and cache.valid)
        assert cache.peek("CP-U") == AdmissionFacts("Accepted", None, False), junk


async def test_a_command_to_a_charge_point_in_memory_reads_no_row(
    central: CentralSystem,
) -> None:
    """Profile tasks send several commands to every charger that connects: whether the
    charge point exists comes from the cache, not a read each."""
    await central.store.charge_points.upsert("CP-CMD", status="Accepted")
    await remembered(central, "CP-CMD")
    with counting_reads(central) as count:
        with pytest.raises(NotConnected):  # known, but connected nowhere
            await central.commands.send("CP-CMD", "ClearCache", {})
        with pytest.raises(UnknownChargePoint):  # not in memory: read, and not there
            await central.commands.send("CP-NOWHERE", "ClearCache", {})
    assert count == [1]


async def test_a_new_charge_point_with_a_password_is_announced_once_with_it(
    central: CentralSystem,
) -> None:
    """Announced without its password first (an INSERT, then an UPDATE), a new charge point
    was let in without one by a handshake decided from the cache between the two."""
    heard: list[dict[str, Any]] = []
    connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(central.store.database.url)
    try:
        await trio_asyncio.aio_as_trio(connection.add_listener)(
            "voltaro_charge_points", lambda *args: heard.append(orjson.loads(args[-1]))
        )
        await central.store.charge_points.upsert("CP-NEWPW", password_hash="h")
        await until(lambda: bool(heard))
        await trio_asyncio.aio_as_trio(connection.execute)("SELECT 1")  # and what came after
    finally:
        await trio_asyncio.aio_as_trio(connection.close)()
    assert [(n["id"], n["password_hash"]) for n in heard] == [("CP-NEWPW", "h")]
