"""Small helpers shared by the central tests."""

from __future__ import annotations

import itertools
import re
from typing import Any

from voltaro.central import CentralSystem
from voltaro.central.login_throttle import LoginThrottle
from voltaro.central.profiles.core import ACCEPTED_ONLY

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


async def fetch(system: CentralSystem, sql: str, *args: Any) -> list[dict[str, Any]]:
    rows = await system.store.database.run(lambda c: c.fetch(sql, *args))
    return [dict(row) for row in rows]


async def fetchval(system: CentralSystem, sql: str, *args: Any) -> Any:
    return await system.store.database.run(lambda c: c.fetchval(sql, *args))


async def call(system: CentralSystem, cp: str, action: str, payload: dict[str, Any]) -> Any:
    """The handler's answer, as a charger connected as ``cp`` gets it. A charge point not
    registered yet is added as Accepted first (only Accepted ones get transactions and id
    tag information); one a test registered stays as the test made it."""
    if (
        action in ACCEPTED_ONLY
        and system.charger_state(cp).registration_status is None
        and await system.store.charge_points.get(cp) is None
    ):
        await system.store.charge_points.upsert(cp, status="Accepted")
    return await system.handlers(cp)[action](payload)


def never_throttled() -> LoginThrottle:
    """A throttle whose clock moves an hour at every reading, outlasting every back-off:
    failed logins are judged on the password alone (the throttling has tests of its own)."""
    hours = itertools.count(step=3600.0)
    return LoginThrottle(monotonic=lambda: next(hours))


def boot_payload(**extra: Any) -> dict[str, Any]:
    return {"chargePointVendor": "Acme", "chargePointModel": "Volt 1", **extra}
