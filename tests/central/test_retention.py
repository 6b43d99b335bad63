"""Retention of operator records (voltaro/central/retention.py) on a real database: audit
entries older than the retention, expired dashboard sessions and spent sign-in counters are
deleted, what is still current stays, two instances purging at once do no harm, and a
running central system does it by itself (the Core profile's task)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import trio

from voltaro.central import open_central_system
from voltaro.central.retention import purge_audit, purge_expired
from voltaro.config import Settings
from voltaro.store import Store, open_store
from voltaro.store.database import Connection


async def _seed(store: Store) -> None:
    """Audit entries 400, 366, 364 and 0 days old; a session expired a minute ago, one
    expiring in an hour, one of an account; sign-in counters 2 hours and 1 minute old."""

    async def write(connection: Connection) -> None:
        for days in (400, 366, 364, 0):
            await connection.execute(
                "INSERT INTO audit_log (at, actor, role, via, action, status)"
                " VALUES (now() - make_interval(days => $1), 'ann', 'admin', 'api', $2, 200)",
                days,
                f"old{days}",
            )
        await connection.execute(
            "INSERT INTO operator_accounts (name, role) VALUES ('bob', 'viewer')"
        )
        await connection.execute(
            "INSERT INTO operator_sessions (id_hash, account, expires_at) VALUES"
            " ('expired', NULL, now() - interval '1 minute'),"
            " ('live', NULL, now() + interval '1 hour'),"
            " ('bobs-expired', 'bob', now() - interval '1 second')"
        )
        await connection.execute(
            "INSERT INTO sign_in_attempts (key, attempts, last_at) VALUES"
            " ('account:spent', 5, now() - interval '2 hours'),"
            " ('account:current', 5, now() - interval '1 minute')"
        )

    await store.database.run(write)


async def _left(store: Store) -> dict[str, list[str]]:
    async def read(connection: Connection) -> dict[str, list[str]]:
        return {
            "audit": [
                r[0] for r in await connection.fetch("SELECT action FROM audit_log ORDER BY id")
            ],
            "sessions": [
                r[0]
                for r in await connection.fetch(
                    "SELECT id_hash FROM operator_sessions ORDER BY id_hash"
                )
            ],
            "counters": [
                r[0]
                for r in await connection.fetch("SELECT key FROM sign_in_attempts ORDER BY key")
            ],
        }

    return await store.database.run(read)


CURRENT = {
    "audit": ["old364", "old0"],
    "sessions": ["live"],
    "counters": ["account:current"],
}


async def test_only_what_is_past_its_time_is_purged(
    database_url: str, aio_loop: Any, tmp_path: Any
) -> None:
    settings = Settings(audit_retention_days=365, sign_in_block=900)
    async with open_store(database_url, tmp_path) as store:
        await _seed(store)
        purged = await purge_expired(store, settings)
        assert (purged.sessions, purged.sign_in_counters) == (2, 1)
        assert await purge_audit(store, settings) == 2
        assert await _left(store) == CURRENT
        again = await purge_expired(store, settings)
        assert (again.sessions, again.sign_in_counters) == (0, 0)
        assert await purge_audit(store, settings) == 0


async def test_a_retention_of_zero_keeps_the_audit_log(
    database_url: str, aio_loop: Any, tmp_path: Any
) -> None:
    async with open_store(database_url, tmp_path) as store:
        await _seed(store)
        assert await purge_audit(store, Settings(audit_retention_days=0)) == 0
        assert len((await _left(store))["audit"]) == 4


async def test_instances_purging_at_once_share_the_work(
    database_url: str, aio_loop: Any, tmp_path: Any
) -> None:
    settings = Settings(audit_retention_days=365)
    async with open_store(database_url, tmp_path) as store:
        await _seed(store)
        counts: list[int] = []

        async def purge() -> None:
            counts.append(await purge_audit(store, settings))
            await purge_expired(store, settings)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(purge)
        assert sum(counts) == 2
        assert await _left(store) == CURRENT


async def test_a_running_central_system_purges_by_itself(
    voltaro_settings: Settings, aio_loop: Any
) -> None:
    settings = dataclasses.replace(voltaro_settings, audit_retention_days=365)
    async with open_store(settings.database_url, settings.data_dir) as store:
        await _seed(store)
    async with open_central_system(settings) as central:
        with trio.fail_after(60):
            while await _left(central.store) != CURRENT:
                await trio.sleep(0.2)


def test_the_retention_setting_reads_from_the_environment() -> None:
    assert Settings().audit_retention_days == 365
    assert Settings.from_env({"VOLTARO_AUDIT_RETENTION_DAYS": "0"}).audit_retention_days == 0
    assert timedelta(seconds=Settings().sign_in_block) == timedelta(minutes=15)
