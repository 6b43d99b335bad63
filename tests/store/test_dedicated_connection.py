"""A dedicated connection (the lease's): outside the pool, it works while the pool is held;
after its connection is lost, or a statement outlives the deadline, the operation fails as
an outage and the next one connects again."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from voltaro.store import StoreUnavailable
from voltaro.store.database import open_database, open_dedicated_connection
from voltaro.store.testing import TestPostgres


async def _pid(connection: Any) -> int:
    pid: int = await connection.fetchval("SELECT pg_backend_pid()")
    return pid


async def _sleep(connection: Any, seconds: float) -> None:
    await connection.execute("SELECT pg_sleep($1)", seconds)


async def test_it_serves_while_the_pool_is_held_and_reconnects_after_an_outage(
    database_url: str, aio_loop: Any, pg_server: TestPostgres
) -> None:
    async with (
        open_database(database_url, min_size=1, max_size=1, deadline=1) as database,
        open_dedicated_connection(database_url, deadline=5) as dedicated,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(lambda: database.run(_sleep, 3, deadline=30))
        with trio.fail_after(10):
            while database.pool_stats()["idle"]:
                await trio.sleep(0.01)
        with pytest.raises(StoreUnavailable, match="no connection to the database"):
            await database.run(_pid)  # the pool is held
        first = await dedicated.run(_pid)
        assert await dedicated.run(_pid) == first  # one connection, kept
        name = pg_server.database_name(database_url)
        await trio.to_thread.run_sync(
            pg_server.execute,
            f"SELECT pg_terminate_backend({first}) FROM pg_stat_activity WHERE datname = '{name}'",
        )
        with pytest.raises(StoreUnavailable):
            await dedicated.run(_pid)
        second = await dedicated.run(_pid)
        assert second != first
        assert dedicated.connects == 2


async def test_a_statement_past_the_deadline_drops_the_connection(
    database_url: str, aio_loop: Any
) -> None:
    async with open_dedicated_connection(database_url, deadline=0.5) as dedicated:
        first = await dedicated.run(_pid)
        with pytest.raises(StoreUnavailable, match=r"no answer from the database within 0\.5 s"):
            await dedicated.run(_sleep, 5)
        assert await dedicated.run(_pid) != first
        assert dedicated.connects == 2
