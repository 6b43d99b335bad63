"""A whole Voltaro on an ephemeral port, and simulated chargers that talk to it."""

from __future__ import annotations

import dataclasses
from typing import Any

import trio

from tests.e2e import fetch
from voltaro.app import Voltaro, start_voltaro
from voltaro.config import Settings
from voltaro.ocppj.validation import SchemaRegistry
from voltaro.sim.charger import ChargerOptions, SimulatedChargePoint
from voltaro.sim.profiles import Profile, profile
from voltaro.sim.stats import FleetStats

REGISTRY = SchemaRegistry.load()


async def start(nursery: trio.Nursery, settings: Settings, **changes: Any) -> Voltaro:
    fields = {f.name for f in dataclasses.fields(settings)}
    ports = {name: 0 for name in ("ocpp_port", "admin_port") if name in fields}
    changes = {"ocpp_host": "127.0.0.1", "unknown_chargers": "accept", **ports, **changes}
    voltaro: Voltaro = await nursery.start(start_voltaro, dataclasses.replace(settings, **changes))
    return voltaro


def base_url(voltaro: Voltaro) -> str:
    assert voltaro.server is not None
    return f"ws://127.0.0.1:{voltaro.server.port}/ocpp"


async def add_tags(voltaro: Voltaro, *tags: str) -> None:
    for tag in tags:
        await voltaro.central.store.id_tags.upsert(tag)
    # the tag cache follows the table by LISTEN/NOTIFY: wait until it knows them all
    with trio.fail_after(5):
        while None in [await voltaro.central.store.id_tag_cache.lookup(t) for t in tags]:
            await trio.sleep(0.02)


async def start_charger(
    nursery: trio.Nursery,
    voltaro: Voltaro,
    charge_point_id: str,
    *,
    sim_profile: Profile | None = None,
    stats: FleetStats | None = None,
    url: str | None = None,
    **options: Any,
) -> SimulatedChargePoint:
    """A simulated charger, registered; ``url`` when not the server's ``ws://`` one."""
    charger = SimulatedChargePoint(
        ChargerOptions(
            charge_point_id,
            url or base_url(voltaro),
            sim_profile or profile("realistic", connect_window=0),
            backoff_min=0.05,
            backoff_max=0.2,
            call_timeout=5,
            **options,
        ),
        REGISTRY,
        stats,
    )
    await nursery.start(charger.run)
    with trio.fail_after(10):
        await charger.wait_registered()
    return charger


async def wait_for(condition: Any, timeout: float = 10.0) -> None:
    """Poll an (async or sync) predicate until it is true."""
    with trio.fail_after(timeout):
        while True:
            result = condition()
            if hasattr(result, "__await__"):
                result = await result
            if result:
                return
            await trio.sleep(0.02)


async def rows(voltaro: Voltaro, sql: str, *args: Any) -> list[dict[str, Any]]:
    return await fetch(voltaro, sql, *args)
