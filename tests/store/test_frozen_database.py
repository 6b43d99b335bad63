"""A database that stops answering (its processes stopped, a hung disk, a partition) fails
writes and reads within the deadline, and service comes back by itself when it answers again.

The freeze is a proxy's (see :mod:`tests.freezable_proxy`): only this test's
connections freeze, not the session's shared server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.freezable_proxy import FreezableProxy, proxy
from voltaro.store import Store, StoreUnavailable, open_store
from voltaro.store.database import Database, open_database
from voltaro.store.id_tags import IdTagCache, IdTagRepository
from voltaro.store.writer import CopyTarget, GroupCommitWriter, Write

__all__ = ["proxy"]  # a fixture: used by name

DEADLINE = 1.0  # seconds: short, so that the test is; the outcomes are asserted, not times
NOTES = CopyTarget("notes", ("n",))
RECOVERY = 60  # seconds: a bound for a writer that never recovers, not a timing assertion


async def _insert(store: Store, n: int) -> None:
    async def apply(connection: Any) -> None:
        await connection.execute("INSERT INTO notes VALUES ($1)", n)

    await store.writer.submit(Write(apply, label=f"note {n}"))


async def _notes(database: Database) -> list[int]:
    rows = await database.run(lambda c: c.fetch("SELECT n FROM notes ORDER BY n"))
    return [row[0] for row in rows]


async def test_writes_and_reads_fail_within_the_deadline_and_recover(
    proxy: FreezableProxy, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="voltaro.store.writer")
    async with (
        open_store(proxy.url(), tmp_path, deadline=DEADLINE) as store,
        open_database(database_url) as direct,
    ):
        await direct.run(lambda c: c.execute("CREATE TABLE notes (n integer PRIMARY KEY)"))
        await _insert(store, 1)

        proxy.freeze()
        with trio.fail_after(RECOVERY):
            with pytest.raises(StoreUnavailable):
                await _insert(store, 2)  # taken into a batch that hangs
            store.writer.post(Write(copies={NOTES: [(10,)]}, label="background"))
            with pytest.raises(StoreUnavailable):
                await _insert(store, 3)
            with pytest.raises(StoreUnavailable):
                await store.database.run(lambda c: c.fetchval("SELECT 1"))

        proxy.thaw()
        with trio.fail_after(RECOVERY):
            while True:
                try:
                    await _insert(store, 4)
                    break
                except StoreUnavailable:
                    await trio.sleep(0.1)
            await store.writer.flush()
            assert await store.database.run(lambda c: c.fetchval("SELECT 1")) == 1

        saved = await _notes(direct)
        assert 4 in saved and 10 in saved  # the new write, and the background one kept
        assert set(saved) <= {1, 2, 3, 4, 10}  # 2 and 3 may or may not have been saved
        assert store.writer.refused_writes >= 2
        assert store.writer.outages == 1

    # The outage is told once when it starts and once when it ends, not per refusal.
    lines = [r.getMessage() for r in caplog.records if r.name == "voltaro.store.writer"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unavailable")
    assert lines[1].startswith("database available again after")
    assert "1 background writes kept, 0 dropped" in lines[1]


async def test_a_write_whose_caller_gave_up_before_its_batch_is_never_written(
    proxy: FreezableProxy, database_url: str
) -> None:
    # The batch may hang for 5 s, its callers wait 0.5 s: the writes queued behind it are
    # given up while it hangs, before any batch could take them.
    async with (
        open_database(
            proxy.url(), min_size=1, max_size=1, own_thread=True, deadline=5.0
        ) as proxied,
        open_database(database_url) as direct,
        trio.open_nursery() as nursery,
    ):
        writer = GroupCommitWriter(proxied, deadline=0.5)
        await nursery.start(writer.run)
        await direct.run(lambda c: c.execute("CREATE TABLE notes (n integer PRIMARY KEY)"))
        proxy.freeze()
        refused: list[int] = []

        async def insert(n: int) -> None:
            try:
                await writer.submit(Write(copies={NOTES: [(n,)]}, label=f"note {n}"))
            except StoreUnavailable:
                refused.append(n)

        with trio.fail_after(RECOVERY):
            async with trio.open_nursery() as inserts:
                inserts.start_soon(insert, 1)  # its batch hangs ...
                await trio.sleep(0.1)
                inserts.start_soon(insert, 2)  # ... so these queue behind it
                inserts.start_soon(insert, 3)
            proxy.thaw()
            await writer.submit(Write(copies={NOTES: [(4,)]}, label="note 4"))
        assert sorted(refused) == [1, 2, 3]
        saved = await _notes(direct)
        assert 2 not in saved and 3 not in saved  # never taken into a batch: never written
        assert 4 in saved  # (1 was in flight: it may or may not have been saved)
        assert writer.refused_writes == 3
        nursery.cancel_scope.cancel()


@pytest.fixture
async def proxied_database(proxy: FreezableProxy) -> AsyncIterator[Database]:
    async with open_database(proxy.url(), deadline=DEADLINE) as database:
        yield database


async def test_id_tag_cache_notices_a_frozen_server_and_reloads_after(
    proxy: FreezableProxy, proxied_database: Database, database_url: str
) -> None:
    async with open_database(database_url) as direct:
        tags = IdTagRepository(direct)
        await tags.upsert("TAG1")
        cache = IdTagCache(proxied_database, health_check_interval=0.1)
        async with trio.open_nursery() as nursery:
            await nursery.start(cache.run)
            assert cache.valid and (await cache.lookup("TAG1")) is not None
            proxy.freeze()
            with trio.fail_after(RECOVERY):
                while cache.valid:
                    await trio.sleep(0.05)
            # Invalid: lookups go to the (frozen) database and fail rather than hang.
            with pytest.raises(StoreUnavailable):
                await cache.lookup("TAG1")
            # Meanwhile another process blocks the tag: no notification can reach us.
            await tags.set_status("TAG1", "Blocked")
            proxy.thaw()
            with trio.fail_after(RECOVERY):
                while not cache.valid:
                    await trio.sleep(0.05)
            record = await cache.lookup("TAG1")
            assert record is not None and record.status == "Blocked"
            assert cache.reloads >= 2
            nursery.cancel_scope.cancel()
