"""A backlog of background writes drains by itself: the writer's drain stops at its time
budget to let trio run, and must come back for the rest without a new write arriving."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from voltaro.store.database import Database, open_database
from voltaro.store.writer import CopyTarget, GroupCommitWriter, Write

NOTES = CopyTarget("notes", ("n",))
POSTED = 300


@pytest.fixture
async def database(database_url: str, aio_loop: Any) -> AsyncIterator[Database]:
    async with open_database(database_url, min_size=1, max_size=1, own_thread=True) as opened:
        await opened.run(lambda c: c.execute("CREATE TABLE notes (n integer PRIMARY KEY)"))
        yield opened


async def _count(database: Database) -> int:
    count: int = await database.run(lambda c: c.fetchval("SELECT count(*) FROM notes"))
    return count


async def test_posted_backlog_is_committed_without_new_writes(database: Database) -> None:
    # Ten writes a batch and a drain budget of a millisecond: the backlog needs many drains,
    # and nothing but the writer itself can start them.
    writer = GroupCommitWriter(database, max_batch=10, drain_seconds=0.001)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for n in range(POSTED):  # all queued before the writer gets to run
            writer.post(Write(copies={NOTES: [(n,)]}, label="note"))
        with trio.fail_after(30):  # a bound for a broken writer, not a timing assertion
            while await _count(database) < POSTED:
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    assert await _count(database) == POSTED
    assert writer.commits >= POSTED // 10
    assert writer.dropped_posted == 0
