"""Instance leases: an instance expires a dead one only after it has renewed its own lease
for a whole lease in a row (after a database outage every lease has run out)."""

from __future__ import annotations

import pytest
import trio

from tests.central.helpers import fetch
from voltaro.central import CentralSystem
from voltaro.central.membership import Membership
from voltaro.central.timestamps import utc_now
from voltaro.store import StoreError
from voltaro.store.testing import TestPostgres


async def test_dead_instances_are_expired_only_after_a_whole_lease_of_renewals(
    central: CentralSystem,
) -> None:
    store = central.store
    await fetch(
        central,
        "INSERT INTO instances (id, host, pid, alive_until) VALUES ('dead', 'h', 1, now())",
    )
    membership = Membership(store.instances, "judge", 0.5, central.events)
    await membership.join()
    await membership.expire_dead()  # never renewed yet: judges nobody
    await membership.renew()
    await membership.expire_dead()  # renewing for less than a lease: still nobody
    assert await fetch(central, "SELECT id FROM instances WHERE id = 'dead'") == [{"id": "dead"}]
    await trio.sleep(0.6)
    await membership.renew()
    await membership.expire_dead()
    assert await fetch(central, "SELECT id FROM instances WHERE id = 'dead'") == []
    assert membership.alive >= 2  # this one and the central system's own


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
    await membership.expire_dead()
    assert await fetch(central, "SELECT id FROM instances WHERE id = 'slow'") == [{"id": "slow"}]
    record = await central.store.charge_points.get("HELD")
    assert record is not None and record.online
