"""The deadline's watchdog fires as an asyncio callback: whatever it finds (a connection
already back in the pool as the deadline strikes) must not raise there, where an exception
ends the whole server (seen under a storm of 10,000 chargers)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from voltaro.store.database import Watchdog
from voltaro.store.testing import TestPostgres, pg_server

__all__ = ["pg_server"]


def test_a_watchdog_striking_a_released_connection_raises_nothing(
    pg_server: TestPostgres,
) -> None:
    url = pg_server.new_database()
    raised: list[dict[str, Any]] = []

    async def main() -> bool:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: raised.append(context)
        )
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:
            connection = await pool.acquire()
            watchdog = Watchdog(connection, 0.05)
            await pool.release(connection)  # the block ended as the deadline came
            await asyncio.sleep(0.2)
            watchdog.__exit__(None, None, None)
            async with pool.acquire() as again:  # the pool still serves
                assert await again.fetchval("SELECT 1") == 1
            return watchdog.fired
        finally:
            await pool.close()

    try:
        assert asyncio.run(main())
    finally:
        pg_server.drop_database(url)
    assert raised == []
