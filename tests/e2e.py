"""End-to-end helpers: a whole Voltaro (database included) on an ephemeral port."""

from __future__ import annotations

import dataclasses
import math
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


def never_busy(voltaro: Voltaro) -> None:
    """Make the instance never *busy* (``voltaro.central.overload``: its own CPU, the
    machine's, its event loop, its writes): background work such as the local-list sync
    then never waits for the load. For tests about that work, not about the machine they run
    on: on a CI machine whose two cores the suite keeps full, each list command waited up to
    10 s and a three-command sync missed a 30 s bound. Tests of busy force it themselves;
    *behind* (a storm) still applies."""
    load = voltaro.central.load
    load.busy_cpu_share = load.busy_machine_share = math.inf
    load.busy_loop_lag = load.busy_writer_lag = math.inf
