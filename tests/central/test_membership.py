"""Instance leases: an instance expires a dead one only after it has renewed its own lease
for a whole lease in a row (after a database outage every lease has run out)."""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
import trio

from tests.central.helpers import fetch
from voltaro.central import CentralSystem, open_central_system
from voltaro.central.membership import EXPIRED, Membership
from voltaro.central.timestamps import utc_now
from voltaro.config import Settings
from voltaro.store import StoreError, StoreUnavailable
from voltaro.store.testing import TestPostgres


async def test_dead_instances_are_expired_only_after_a_whole_lease_of_renewals(
    central: CentralSystem,
) -> None:
    store = central.store
    await fetch(
        central,
        "INSERT INTO instances (id, host, pid, alive_until) VALUES ('dead', 'h', 1, now())",
    )
    membership = Membership(store.instances, "judge", 1.0, central.events)
    await membership.join()
    await membership.expire_dead()  # never renewed yet: judges nobody
    await membership.renew()
    began = trio.current_time()
    await membership.expire_dead()  # renewing for less than a lease: still nobody
    assert await fetch(central, "SELECT id FROM instances WHERE id = 'dead'") == [{"id": "dead"}]
    while trio.current_time() - began <= 1.0:  # renewals well within a lease of each other
        await trio.sleep(0.2)
        await membership.renew()
    await membership.expire_dead()
    assert await fetch(central, "SELECT id FROM instances WHERE id = 'dead'") == []
    assert membership.alive >= 2  # this one and the central system's own


async def test_a_renewal_later_than_a_lease_starts_the_count_again(
    central: CentralSystem,
) -> None:
    """Renewals more than a lease apart are not "in a row": this instance's own lease may
    have run out in between (starved of CPU, say), and so may others' for the same reason."""
    await fetch(
        central,
        "INSERT INTO instances (id, host, pid, alive_until) VALUES ('dead', 'h', 1, now())",
    )
    membership = Membership(central.store.instances, "judge", 0.5, central.events)
    await membership.join()
    await membership.renew()
    await trio.sleep(0.6)
    await membership.renew()  # late: its lease had run out
    await membership.expire_dead()
    assert await fetch(central, "SELECT id FROM instances WHERE id = 'dead'") == [{"id": "dead"}]


async def test_an_instance_that_finds_itself_expired_says_so_once(
    central: CentralSystem,
) -> None:
    membership = Membership(central.store.instances, "frozen", 30, central.events)
    await membership.join()
    await membership.renew()
    await fetch(central, "DELETE FROM instances WHERE id = 'frozen'")  # another expired it
    await membership.renew()
    assert membership.rejoins == 1
    assert await fetch(central, "SELECT id, pid FROM instances WHERE id = 'frozen'") == [
        {"id": "frozen", "pid": os.getpid()}
    ]
    reclaimed: list[str] = []

    async def reclaim() -> None:
        reclaimed.append("once")
        if len(reclaimed) == 1:
            raise StoreUnavailable("the database is away")

    with pytest.raises(StoreUnavailable):
        await membership.after_expiry(reclaim)
    await membership.after_expiry(reclaim)  # again, since the first failed
    await membership.after_expiry(reclaim)  # done: nothing more
    await membership.renew()
    await membership.after_expiry(reclaim)
    assert reclaimed == ["once", "once"]
    assert membership.rejoins == 1


async def test_a_failed_renewal_starts_the_count_again(
    central: CentralSystem, pg_server: TestPostgres
) -> None:
    membership = Membership(central.store.instances, "judge", 0.5, central.events)
    await membership.join()
    await membership.renew()
    await trio.sleep(0.6)
    name = pg_server.database_name(central.store.database.url)
    await trio.to_thread.run_sync(
        pg_server.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'
    )
    await trio.to_thread.run_sync(
        pg_server.execute,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    )
    with pytest.raises(StoreError):
        await membership.renew()  # the database is away
    await trio.to_thread.run_sync(
        pg_server.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
    )
    await fetch_when_back(
        central,
        "INSERT INTO instances (id, host, pid, alive_until) VALUES ('dead', 'h', 1, now())",
    )
    await membership.renew()
    await membership.expire_dead()  # renewing again for less than a lease: judges nobody
    assert await fetch(central, "SELECT id FROM instances WHERE id = 'dead'") == [{"id": "dead"}]


async def fetch_when_back(central: CentralSystem, sql: str) -> None:
    with trio.fail_after(30):
        while True:
            try:
                await fetch(central, sql)
                return
            except StoreError:
                await trio.sleep(0.05)


async def test_an_instance_late_with_its_own_renewal_never_expires_itself(
    central: CentralSystem,
) -> None:
    membership = Membership(central.store.instances, "slow", 0.3, central.events)
    await membership.join()
    await membership.renew()
    await trio.sleep(0.4)  # its own lease has run out: it was busy
    await central.store.charge_points.upsert("HELD")
    await central.store.charge_points.presence("HELD", True, "connected", utc_now(), "slow")
    # (its Membership would not judge now: its own renewals have stalled)
    assert await central.store.instances.expire_dead("slow", EXPIRED) == []
    assert await fetch(central, "SELECT id FROM instances WHERE id = 'slow'") == [{"id": "slow"}]
    record = await central.store.charge_points.get("HELD")
    assert record is not None and record.online


async def test_a_busy_pool_does_not_let_the_lease_lapse(
    voltaro_settings: Settings, aio_loop: Any
) -> None:
    """Every pooled connection of an instance held by a slow query for three times its lease
    (a storm of reads): its lease is still renewed, and another instance judging the
    installation meanwhile (it expires a dead one) does not expire it nor record its chargers
    offline."""
    lease = 2.0
    busy_settings = replace(voltaro_settings, instance_id="busy", instance_lease=lease)
    judge_settings = replace(voltaro_settings, instance_id="judge", instance_lease=lease)
    async with (
        open_central_system(busy_settings) as busy,
        open_central_system(judge_settings) as judge,
    ):
        store = busy.store
        for cp, instance in (("HELD", "busy"), ("ORPHAN", "dead")):
            await store.charge_points.upsert(cp)
            await store.charge_points.presence(cp, True, "connected", utc_now(), instance)
        held = 3 * lease
        async with trio.open_nursery() as nursery:
            for _ in range(POOL_SIZE):
                nursery.start_soon(partial(store.database.run, _sleep, held, deadline=held + 30))
            with trio.fail_after(10):
                while store.database.pool_stats() != {"size": POOL_SIZE, "idle": 0}:
                    await trio.sleep(0.01)
            await fetch(  # a dead instance, whose lease runs out while the pool is held
                judge,
                "INSERT INTO instances (id, host, pid, alive_until)"
                " VALUES ('dead', 'h', 1, now() + make_interval(secs => $1))",
                lease,
            )
            leases = []
            while store.database.pool_stats()["idle"] == 0:
                leases.append(
                    await fetch(
                        judge,
                        "SELECT alive_until > now() AS alive FROM instances WHERE id = 'busy'",
                    )
                )
                await trio.sleep(lease / 4)
        assert leases and all(rows == [{"alive": True}] for rows in leases), leases
        with trio.fail_after(10):  # the judge was judging: the dead one goes
            while await fetch(judge, "SELECT 1 FROM instances WHERE id = 'dead'"):
                await trio.sleep(0.05)
        held_by = await fetch(
            judge, "SELECT id, online, instance_id FROM charge_points ORDER BY id"
        )
        assert held_by == [
            {"id": "HELD", "online": True, "instance_id": "busy"},
            {"id": "ORPHAN", "online": False, "instance_id": None},
        ]
        assert busy._membership is not None and busy._membership.rejoins == 0


POOL_SIZE = 10  # a Database's connections (open_database's max_size)


async def _sleep(connection: Any, seconds: float) -> None:
    await connection.execute("SELECT pg_sleep($1)", seconds)
