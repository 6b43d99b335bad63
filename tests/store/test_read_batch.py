"""Batched reads: a storm of chargers' first StatusNotifications reads their connectors'
statuses in a few queries, not one each, and each caller gets its own charger's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from voltaro.store import Store, StoreUnavailable
from voltaro.store.read_batch import ReadBatcher
from voltaro.store.records import StatusChange

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _status(connector_id: int, status: str) -> StatusChange:
    return StatusChange(connector_id, status, None, "NoError", None, None, None, T0, T0, False)


async def test_concurrent_reads_share_queries_and_each_gets_its_own(store: Store) -> None:
    for n in range(3):
        await store.charge_points.register(f"CP-RB{n}", "Accepted")
        for connector_id in range(n + 1):
            await store.connectors.record_status(f"CP-RB{n}", _status(connector_id, "Available"))
    await store.connectors.record_status("CP-RB2", _status(2, "Faulted"))
    runs = [0]
    original = store.database.run

    async def counted(*args: Any, **kwargs: Any) -> Any:
        runs[0] += 1
        return await original(*args, **kwargs)

    store.database.run = counted  # type: ignore[method-assign]
    answers: dict[int, dict[int, str]] = {}

    async def read(n: int) -> None:
        answers[n] = await store.connectors.statuses(f"CP-RB{n % 4}")  # CP-RB3 is unknown

    try:
        async with trio.open_nursery() as nursery:
            for n in range(40):
                nursery.start_soon(read, n)
    finally:
        del store.database.run
    assert runs[0] < 40 / 4  # one query per batch of waiting callers, not one per caller
    expected = [
        {0: "Available"},
        {0: "Available", 1: "Available"},
        {0: "Available", 1: "Available", 2: "Faulted"},
        {},
    ]
    assert answers == {n: expected[n % 4] for n in range(40)}


async def test_a_failed_query_fails_each_waiting_caller(store: Store) -> None:
    async def fails(connection: Any, keys: list[str]) -> dict[str, int]:
        raise StoreUnavailable("the database is away")

    batcher: ReadBatcher[str, int] = ReadBatcher(store.database, fails, int)
    failures: list[str] = []

    async def read(key: str) -> None:
        with pytest.raises(StoreUnavailable) as raised:
            await batcher.get(key)
        failures.append(str(raised.value))

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        async with trio.open_nursery() as readers:
            for key in "abc":
                readers.start_soon(read, key)
        nursery.cancel_scope.cancel()
    assert failures == ["the database is away"] * 3
