"""Reservations across two instances on one database: a ReserveNow sent through the instance
that does not hold the charger gets its id there and its answer applied; the transaction that
uses it, and its expiry, are each recorded once, though both instances run the profile's
tasks (the holder acts on its charger's events, every instance runs the expiry SQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.e2e import e2e_settings, fetch, ws_url
from tests.harness import RawCharger
from voltaro.app import Voltaro, start_voltaro
from voltaro.config import Settings
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt 1"}
TOKEN = "reservation-instances-token"


async def start(nursery: trio.Nursery, settings: Settings, tmp: Path, name: str) -> Voltaro:
    changed = e2e_settings(
        settings,
        unknown_chargers="accept",
        admin_port=0,
        admin_token=TOKEN,
        data_dir=tmp / name,
    )
    voltaro: Voltaro = await nursery.start(start_voltaro, changed)
    return voltaro


def in_seconds(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


async def reserve_through(
    http: httpx.AsyncClient, charger: RawCharger, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """ReserveNow through ``http``, answered Accepted by ``charger``: (API answer, CALL)."""
    answer: dict[str, Any] = {}

    async def post() -> None:
        response = await http.post("/api/v1/charge-points/SHARED/commands/ReserveNow", json=body)
        answer.update(response.json())

    async with trio.open_nursery() as exchange:
        exchange.start_soon(post)
        frame = await charger.receive()
        assert frame[0] == 2 and frame[2] == "ReserveNow"
        await charger.send([3, frame[1], {"status": "Accepted"}])
    return answer, frame[3]


async def history(voltaro: Voltaro, reservation_id: int, status: str) -> int:
    """How many history rows of ``status`` the reservation has, once it has one (or after
    a while)."""
    count = 0
    with trio.move_on_after(20):
        while True:
            rows = await fetch(
                voltaro,
                "SELECT count(*) AS n FROM reservation_history"
                " WHERE reservation_id = $1 AND status = $2",
                reservation_id,
                status,
            )
            count = rows[0]["n"]
            if count:
                break
            await trio.sleep(0.05)
    await trio.sleep(3)  # time for a second instance to (wrongly) record it again
    rows = await fetch(
        voltaro,
        "SELECT count(*) AS n FROM reservation_history WHERE reservation_id = $1 AND status = $2",
        reservation_id,
        status,
    )
    n: int = rows[0]["n"]
    return n


async def test_a_reservation_made_anywhere_is_used_and_expires_once(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    holder = await start(nursery, voltaro_settings, tmp_path, "a")
    other = await start(nursery, voltaro_settings, tmp_path, "b")
    charger = await RawCharger.connect(nursery, ws_url(holder, "SHARED"))
    assert (await charger.call("BootNotification", BOOT))[0] == 3
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=other.admin_url or "", headers=headers) as http:
        body = {"connectorId": 1, "idTag": "ROAMER", "expiryDate": in_seconds(3600)}
        answer, sent = await reserve_through(http, charger, body)
        used_id = answer["allocated"]["reservationId"]
        assert answer["result"] == {"status": "Accepted"} and sent["reservationId"] == used_id
        short = {"connectorId": 2, "idTag": "LATE", "expiryDate": in_seconds(2)}
        expiring_id = (await reserve_through(http, charger, short))[0]["allocated"]["reservationId"]
        listed = (await http.get("/api/v1/reservations", params={"active": "true"})).json()
        assert {r["reservationId"] for r in listed["items"]} == {used_id, expiring_id}

    start_transaction = {
        "connectorId": 1,
        "idTag": "ROAMER",
        "meterStart": 0,
        "timestamp": in_seconds(0),
    }
    assert (await charger.call("StartTransaction", start_transaction))[0] == 3
    assert await history(other, used_id, "Used") == 1
    assert await history(other, expiring_id, "Expired") == 1
