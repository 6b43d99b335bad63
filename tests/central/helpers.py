"""Small helpers shared by the central tests."""

from __future__ import annotations

import re
from typing import Any

from voltaro.central import CentralSystem

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


async def fetch(system: CentralSystem, sql: str, *args: Any) -> list[dict[str, Any]]:
    rows = await system.store.database.run(lambda c: c.fetch(sql, *args))
    return [dict(row) for row in rows]


async def fetchval(system: CentralSystem, sql: str, *args: Any) -> Any:
    return await system.store.database.run(lambda c: c.fetchval(sql, *args))


async def call(system: CentralSystem, cp: str, action: str, payload: dict[str, Any]) -> Any:
    return await system.handlers(cp)[action](payload)


def boot_payload(**extra: Any) -> dict[str, Any]:
    return {"chargePointVendor": "Acme", "chargePointModel": "Volt 1", **extra}
