"""The group-commit writer against a real PostgreSQL."""

import asyncio
import threading
from typing import Any

import pytest
import trio
import trio.testing

from voltaro.store import Store, StoreUnavailable, WriteFailed
from voltaro.store.testing import TestPostgres
from voltaro.store.writer import CopyTarget, MergedQuery, Write, _one_statement

NOTES = CopyTarget("notes", ("n",))


async def _create_notes(store: Store) -> None:
    await store.database.run(
        lambda c: c.execute("CREATE TABLE notes (n integer PRIMARY KEY CHECK (n >= 0))")
    )


async def _notes(store: Store) -> list[int]:
    rows = await store.database.run(lambda c: c.fetch("SELECT n FROM notes ORDER BY n"))
    return [row[0] for row in rows]


def _insert(n: int) -> Write[int]:
    async def apply(connection: Any) -> int:
        await connection.execute("INSERT INTO notes VALUES ($1)", n)
        return n

    return Write(apply, label=f"note {n}")


def _slow() -> Write[None]:
    async def apply(connection: Any) -> None:
        await connection.execute("SELECT pg_sleep(0.3)")

    return Write(apply, label="slow")


async def test_concurrent_writes_share_commits(store: Store) -> None:
    await _create_notes(store)
    results: dict[int, int] = {}
    commits_before = store.writer.commits

    async def one(n: int) -> None:
        results[n] = await store.writer.submit(_insert(n))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.writer.submit, _slow())
        await trio.sleep(0.05)  # the slow write is now being committed; the rest queue up
        for n in range(50):
            nursery.start_soon(one, n)

    assert results == {n: n for n in range(50)}
    assert await _notes(store) == list(range(50))
    # the 50 writes queued behind the slow one and went out together
    assert store.writer.commits - commits_before <= 3
    assert store.writer.batch_sizes.maximum >= 25


async def test_bad_write_fails_alone(store: Store) -> None:
    await _create_notes(store)
    outcomes: dict[int, object] = {}

    async def one(n: int) -> None:
        try:
            outcomes[n] = await store.writer.submit(_insert(n))
        except WriteFailed as exc:
            outcomes[n] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.writer.submit, _slow())
        await trio.sleep(0.05)
        for n in (1, 2, -3, 4, 5):  # -3 violates the CHECK constraint
            nursery.start_soon(one, n)

    assert isinstance(outcomes.pop(-3), WriteFailed)
    assert outcomes == {1: 1, 2: 2, 4: 4, 5: 5}
    assert await _notes(store) == [1, 2, 4, 5]
    assert store.writer.failed_writes == 1


async def test_copies_are_merged_and_isolated(store: Store) -> None:
    await _create_notes(store)
    failures = []

    async def one(rows: list[tuple[int]]) -> None:
        try:
            await store.writer.submit(Write(copies={NOTES: rows}))
        except WriteFailed as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.writer.submit, _slow())
        await trio.sleep(0.05)
        nursery.start_soon(one, [(1,), (2,)])
        nursery.start_soon(one, [(3,), (-1,)])  # the whole write fails, not just one row
        nursery.start_soon(one, [(4,)])

    assert len(failures) == 1
    assert await _notes(store) == [1, 2, 4]


SHOUT = MergedQuery("shout", "SELECT i, upper(t) FROM unnest($1::int[], $2::text[]) AS x(i, t)")


def test_a_batch_is_one_statement_when_its_writes_share_one_and_apply_nothing() -> None:
    # such a batch goes without BEGIN and COMMIT (a lone statement commits atomically);
    # test_copies_are_merged_and_isolated has one fail and the rest commit
    shout = Write[str](query=(SHOUT, ("a",)))
    assert _one_statement([shout, Write(query=(SHOUT, ("b",)))])
    assert _one_statement([Write(copies={NOTES: [(1,)]}), Write(copies={NOTES: [(2,)]})])
    assert _one_statement([shout, Write(copies={NOTES: []})])  # no rows: no statement
    assert not _one_statement([shout, Write(copies={NOTES: [(1,)]})])
    assert not _one_statement([_insert(1)])
    assert not _one_statement([Write(copies={NOTES: []})])


async def test_a_one_statement_batch_answers_each_write(store: Store) -> None:
    answers: dict[str, str] = {}

    async def one(text: str) -> None:
        answers[text] = await store.writer.submit(Write(query=(SHOUT, (text,))))

    commits_before = store.writer.commits
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.writer.submit, _slow())
        await trio.sleep(0.05)
        for text in ("a", "b", "c"):
            nursery.start_soon(one, text)
    assert store.writer.commits - commits_before == 2  # the slow write, then the three
    assert answers == {"a": "A", "b": "B", "c": "C"}


async def test_outage_raises_and_recovers(store: Store, pg_server: TestPostgres) -> None:
    await _create_notes(store)
    await store.writer.submit(_insert(1))
    name = pg_server.database_name(store.database.url)

    def go_down() -> None:
        pg_server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg_server.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )

    await trio.to_thread.run_sync(go_down)
    with pytest.raises(StoreUnavailable):
        await store.writer.submit(_insert(2))
    with pytest.raises(StoreUnavailable):
        await store.writer.submit(_insert(3))
    # fire-and-forget writes survive the outage and go in once it is over
    store.writer.post(_insert(10))

    await trio.to_thread.run_sync(
        pg_server.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
    )
    with trio.fail_after(30):
        while True:
            try:
                assert await store.writer.submit(_insert(4)) == 4
                break
            except StoreUnavailable:
                await trio.sleep(0.05)
    assert await _notes(store) == [1, 4, 10]
    assert store.writer.failed_batches >= 2


async def test_submit_after_stop_raises(database_url: str, aio_loop: Any, tmp_path: Any) -> None:
    from voltaro.store import open_store

    async with open_store(database_url, tmp_path) as store:
        writer = store.writer
    with pytest.raises(StoreUnavailable):
        await writer.submit(Write())


async def test_queued_writes_are_flushed_at_stop(
    database_url: str, aio_loop: Any, tmp_path: Any
) -> None:
    from datetime import UTC, datetime

    from voltaro.store import open_store

    async with open_store(database_url, tmp_path) as store:
        store.message_log.post(datetime.now(UTC), "CP1", "in", "last", "Heartbeat", {}, None)
    async with open_store(database_url, tmp_path) as store:
        ids = await store.database.run(lambda c: c.fetch("SELECT message_id FROM message_log"))
        assert [row[0] for row in ids] == ["last"]


async def test_batches_run_on_the_writer_thread_not_the_trio_thread(store: Store) -> None:
    async def apply(connection: Any) -> str:
        assert await connection.fetchval("SELECT 1") == 1
        return threading.current_thread().name

    assert await store.writer.submit(Write(apply, label="where")) == "voltaro-db"


async def test_a_write_submitted_soon_is_committed_in_order_and_its_outcome_told(
    store: Store,
) -> None:
    """submit_soon queues a write without waiting: it commits in order with the submitted
    writes around it, and its caller is told the outcome (None, or the error submit would
    raise) once its batch is done."""
    await _create_notes(store)
    told: list[tuple[int, BaseException | None]] = []

    def outcome(n: int) -> Any:
        return lambda error: told.append((n, error))

    order: list[int] = []

    def noted(n: int) -> Write[None]:
        async def apply(connection: Any) -> None:
            order.append(n)
            await connection.execute("INSERT INTO notes VALUES ($1)", n)

        return Write(apply, label=f"note {n}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.writer.submit, _slow())
        await trio.sleep(0.05)  # the next writes queue behind the slow one
        store.writer.submit_soon(noted(1), outcome(1))
        nursery.start_soon(store.writer.submit, noted(2))
        await trio.testing.wait_all_tasks_blocked()
        store.writer.submit_soon(noted(-3), outcome(-3))  # breaks the CHECK
    await store.writer.flush()
    assert order[:2] == [1, 2]
    assert await _notes(store) == [1, 2]
    assert [n for n, _ in told] == [1, -3]
    assert told[0][1] is None and isinstance(told[1][1], WriteFailed)


async def test_the_lag_is_how_long_the_oldest_waiting_write_has_waited(store: Store) -> None:
    assert store.writer.lag() == 0.0
    release = threading.Event()

    def blocked() -> Write[None]:
        async def apply(connection: Any) -> None:
            await wait_on_the_writer_thread(release)

        return Write(apply, label="blocked")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.writer.submit, blocked())
        started = trio.current_time()
        while trio.current_time() - started < 0.3:  # the lag grows while it waits
            await trio.sleep(0.05)
        assert store.writer.lag() >= 0.3
        release.set()
    assert store.writer.lag() == 0.0  # nobody waits


async def wait_on_the_writer_thread(event: threading.Event) -> None:
    """Wait on the writer's asyncio thread for ``event`` (set from trio's)."""
    while not event.is_set():
        await asyncio.sleep(0.01)
