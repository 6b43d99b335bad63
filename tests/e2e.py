"""End-to-end helpers: a whole Voltaro (database included) on an ephemeral port."""

from __future__ import annotations

import dataclasses
from typing import Any

import trio
import trio_asyncio

from voltaro.app import Voltaro, start_voltaro
from voltaro.config import Settings


def e2e_settings(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, ocpp_host="127.0.0.1", ocpp_port=0, **changes)


def ws_url(voltaro: Voltaro, charge_point_id: str) -> str:
    assert voltaro.server is not None
    return f"ws://127.0.0.1:{voltaro.server.port}/ocpp/{charge_point_id}"


async def start_voltaro_with_loop(
    settings: Settings, *, task_status: trio.TaskStatus[Voltaro] = trio.TASK_STATUS_IGNORED
) -> None:
    """start_voltaro inside its own trio-asyncio loop (for a server run on a thread)."""
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        task_status.started(await nursery.start(start_voltaro, settings))


async def fetch(voltaro: Voltaro, sql: str, *args: Any) -> list[dict[str, Any]]:
    rows = await voltaro.central.store.database.run(lambda c: c.fetch(sql, *args))
    return [dict(row) for row in rows]
