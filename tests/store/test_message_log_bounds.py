"""The message log's bounds: large payloads stored truncated, bytes per charge point and in
total kept by deleting the oldest entries, the writer's queue bounded in bytes."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from voltaro.central.system import open_central_system
from voltaro.config import Settings
from voltaro.store import Store, open_store
from voltaro.store.database import Database, open_database
from voltaro.store.message_log import ENTRY_OVERHEAD, HEAD_BYTES, MessageLogLimits
from voltaro.store.writer import CopyTarget, GroupCommitWriter, Write

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PAYLOAD = {"data": "x" * 74}  # 86 bytes of JSON: an entry counts 86 + ENTRY_OVERHEAD
ENTRY = len(orjson.dumps(PAYLOAD)) + ENTRY_OVERHEAD


@pytest.fixture
async def store(database_url: str, aio_loop: Any, tmp_path: Path) -> AsyncIterator[Store]:
    limits = MessageLogLimits(max_payload=4096, charger_bytes=10 * ENTRY, max_bytes=25 * ENTRY)
    async with open_store(database_url, tmp_path, message_log_limits=limits) as opened:
        yield opened


def _log(store: Store, charge_point_id: str, n: int, payload: object = PAYLOAD, **kw: Any) -> None:
    at = T0 + timedelta(seconds=n)
    store.message_log.post(at, charge_point_id, "in", f"m{n}", "DataTransfer", payload, None, **kw)


async def _rows(store: Store, sql: str, *args: Any) -> list[dict[str, Any]]:
    rows = await store.database.run(lambda c: c.fetch(sql, *args))
    return [dict(row) for row in rows]


async def _usage(store: Store) -> dict[str, tuple[int, int]]:
    rows = await _rows(store, "SELECT * FROM message_log_usage WHERE entries > 0")
    return {r["charge_point_id"]: (r["bytes"], r["entries"]) for r in rows}


async def _measured(store: Store) -> dict[str, tuple[int, int]]:
    rows = await _rows(
        store,
        "SELECT charge_point_id, sum(message_log_entry_bytes(bytes, payload)) AS b,"
        " count(*) AS n FROM message_log GROUP BY 1",
    )
    return {r["charge_point_id"]: (r["b"], r["n"]) for r in rows}


async def test_a_large_payload_is_stored_truncated_with_its_size_and_digest(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="voltaro.store.message_log")
    big = {"vendorId": "Acme", "data": "é" + "0123456789abcdef" * 1000}  # ~16 KB of JSON
    text = orjson.dumps(big)
    _log(store, "CP1", 1, big)  # the size measured here
    _log(store, "CP1", 2, big, size=len(text) + 40)  # the frame's size, as the caller knows it
    _log(store, "CP1", 3)  # small: whole
    await store.writer.flush()

    rows = await _rows(store, "SELECT payload, bytes FROM message_log ORDER BY message_id")
    expected = {
        "truncated": True,
        "sha256": hashlib.sha256(text).hexdigest(),
        "head": text[:HEAD_BYTES].decode("utf-8", "ignore"),
    }
    assert rows[0]["payload"] == {**expected, "bytes": len(text)}
    assert rows[1]["payload"] == {**expected, "bytes": len(text) + 40}
    assert rows[2]["payload"] == PAYLOAD
    assert rows[0]["bytes"] == len(orjson.dumps(rows[0]["payload"])) + ENTRY_OVERHEAD
    assert rows[2]["bytes"] == ENTRY
    assert store.message_log.truncated_payloads == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "stored truncated" in lines[0]  # once, not per payload


async def test_usage_follows_every_insert_and_delete(store: Store) -> None:
    for n in range(5):
        _log(store, "CP1", n)
    for n in range(3):
        _log(store, "CP2", n, {"n": n})
    await store.writer.flush()
    # entries written by other means (an older Voltaro, SQL by hand) count what they occupy
    await store.database.run(
        lambda c: c.execute(
            "INSERT INTO message_log (logged_at, charge_point_id, direction, payload)"
            " VALUES (now(), 'CP3', 'in', '{\"a\": 1}')"
        )
    )
    await store.message_log.enforce_bounds()  # folds what was added
    assert await _usage(store) == await _measured(store)
    assert (await _usage(store))["CP1"] == (5 * ENTRY, 5)

    await store.database.run(
        lambda c: c.execute("DELETE FROM message_log WHERE message_id IN ('m0', 'm1')")
    )
    assert await _usage(store) == await _measured(store)
    await store.database.run(lambda c: c.execute("TRUNCATE message_log"))
    _log(store, "CP1", 9)
    await store.writer.flush()
    await store.message_log.enforce_bounds()
    assert await _usage(store) == {"CP1": (ENTRY, 1)}


async def test_a_charge_point_over_its_bound_loses_its_oldest_entries(store: Store) -> None:
    for n in range(30):  # 30 entries, bound 10
        _log(store, "NOISY", n)
    for n in range(5):
        _log(store, "QUIET", n)
    await store.writer.flush()

    purged = await store.message_log.enforce_bounds()

    assert purged.chargers == ("NOISY",) and not purged.overall
    assert (purged.entries, purged.bytes) == (20, 20 * ENTRY)
    kept = await _rows(
        store, "SELECT message_id FROM message_log WHERE charge_point_id = 'NOISY' ORDER BY id"
    )
    assert [r["message_id"] for r in kept] == [f"m{n}" for n in range(20, 30)]
    assert await _usage(store) == {"NOISY": (10 * ENTRY, 10), "QUIET": (5 * ENTRY, 5)}
    assert store.message_log.purged_over_charger_bound == 20
    assert store.message_log.purged_bytes == 20 * ENTRY
    assert (await store.message_log.enforce_bounds()).entries == 0  # within: nothing more


async def test_the_whole_log_over_its_bound_loses_the_oldest_entries_overall(
    store: Store,
) -> None:
    # 9 chargers x 4 entries = 36, bound 25; the oldest are the first minutes' entries
    for n in range(4):
        for cp in range(9):
            _log(store, f"CP{cp}", n * 10 + cp)
    await store.writer.flush()

    purged = await store.message_log.enforce_bounds()

    assert purged.overall and purged.chargers == ()
    assert purged.entries == 11
    remaining = await _rows(store, "SELECT message_id FROM message_log ORDER BY logged_at")
    assert len(remaining) == 25
    assert remaining[0]["message_id"] == "m12"  # m0..m8 and m10, m11 went
    assert sum(b for b, _ in (await _usage(store)).values()) == 25 * ENTRY
    assert store.message_log.purged_over_total_bound == 11


async def test_instances_enforcing_at_once_do_not_purge_twice(
    database_url: str, aio_loop: Any, tmp_path: Path
) -> None:
    limits = MessageLogLimits(charger_bytes=10 * ENTRY, max_bytes=1000 * ENTRY)
    async with (
        open_store(database_url, tmp_path, message_log_limits=limits) as one,
        open_store(database_url, tmp_path, message_log_limits=limits) as two,
    ):
        for n in range(60):
            _log(one if n % 2 else two, "CP1", n)
        await one.writer.flush()
        await two.writer.flush()
        async with trio.open_nursery() as nursery:
            for instance in (one, two, one, two):
                nursery.start_soon(instance.message_log.enforce_bounds)
        assert await _usage(one) == {"CP1": (10 * ENTRY, 10)}
        deleted = sum(s.message_log.purged_over_charger_bound for s in (one, two))
        assert deleted == 50


async def test_housekeeping_enforces_the_bounds(voltaro_settings: Settings, aio_loop: Any) -> None:
    settings = Settings(
        database_url=voltaro_settings.database_url,
        data_dir=voltaro_settings.data_dir,
        heartbeat_interval=1,
        heartbeat_grace=1.0,  # housekeeping every 0.75 s
        message_log_charger_bytes=5 * ENTRY,
    )
    async with open_central_system(settings) as system:
        for n in range(20):
            system.store.message_log.post(T0, "CP1", "in", f"m{n}", "DataTransfer", PAYLOAD, None)
        with trio.fail_after(30):  # a bound for housekeeping that never comes, not a timing
            while system.store.message_log.purged_over_charger_bound < 15:
                await trio.sleep(0.1)
        assert await _usage(system.store) == {"CP1": (5 * ENTRY, 5)}


NOTES = CopyTarget("notes", ("n",))


@pytest.fixture
async def writer_database(database_url: str, aio_loop: Any) -> AsyncIterator[Database]:
    async with open_database(database_url, min_size=1, max_size=1, own_thread=True) as opened:
        await opened.run(lambda c: c.execute("CREATE TABLE notes (n integer PRIMARY KEY)"))
        yield opened


async def test_the_writer_queue_keeps_the_newest_posted_writes_within_its_bytes(
    writer_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="voltaro.store.writer")
    writer = GroupCommitWriter(writer_database, max_posted_bytes=10_000)
    for n in range(100):  # queued while the writer is not running yet: nothing drains them
        writer.post(Write(copies={NOTES: [(n,)]}, label="note", size=1000))
    assert writer.queued_posted_bytes == 10_000
    assert (writer.dropped_posted, writer.dropped_posted_bytes) == (90, 90_000)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.flush()
        nursery.cancel_scope.cancel()
    rows = await writer_database.run(lambda c: c.fetch("SELECT n FROM notes ORDER BY n"))
    assert [row[0] for row in rows] == list(range(90, 100))
    assert writer.queued_posted_bytes == 0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # one when dropping began, one when the queue caught up
    assert lines[0].startswith("write queue full")
    assert lines[1].startswith("write queue caught up") and "90 background writes" in lines[1]
