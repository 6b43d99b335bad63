"""Whole Voltaro over real WebSockets and a real PostgreSQL: who may connect, Basic auth,
a full session by the `ocpp` package's ChargePoint, and the message log."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import asyncpg
import pytest
import trio
import trio_asyncio
import websockets
from ocpp.v16 import ChargePoint, call
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.central.helpers import never_throttled
from tests.e2e import e2e_settings, fetch, start_voltaro_with_loop, ws_url
from tests.harness import RawCharger
from tests.threaded import run_asyncio, trio_in_thread
from voltaro.app import Voltaro, start_voltaro
from voltaro.central.passwords import hash_password
from voltaro.config import Settings
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt 1"}


async def start(nursery: trio.Nursery, settings: Settings, **changes: Any) -> Voltaro:
    voltaro: Voltaro = await nursery.start(start_voltaro, e2e_settings(settings, **changes))
    return voltaro


async def handshake_status(url: str, headers: list[tuple[bytes, bytes]] | None = None) -> int:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url, subprotocols=["ocpp1.6"], extra_headers=headers):
            pass
    return int(rejected.value.status_code)


async def test_policy_reject_answers_unknown_ids_with_404(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings, unknown_chargers="reject")
    assert await handshake_status(ws_url(voltaro, "STRANGER")) == 404
    assert await fetch(voltaro, "SELECT * FROM charge_points") == []


@pytest.mark.parametrize(("policy", "status"), [("pending", "Pending"), ("accept", "Accepted")])
async def test_policy_pending_and_accept(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, policy: str, status: str
) -> None:
    voltaro = await start(nursery, voltaro_settings, unknown_chargers=policy)
    charger = await RawCharger.connect(nursery, ws_url(voltaro, "NEWCP"))
    answer = await charger.call("BootNotification", BOOT)
    assert answer[0] == 3 and answer[2]["status"] == status
    await charger.close()
    rows = await fetch(voltaro, "SELECT registration_status FROM charge_points WHERE id = 'NEWCP'")
    assert rows == [{"registration_status": status}]


async def test_basic_auth_password_is_required_when_set(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings, unknown_chargers="reject")
    await voltaro.central.store.charge_points.upsert(
        "LOCKED", status="Accepted", password_hash=hash_password("s3cret")
    )
    url = ws_url(voltaro, "LOCKED")
    assert await handshake_status(url) == 401
    # a second failure right after the first is throttled: 429 with the time to wait
    wrong = [(b"Authorization", b"Basic TE9DS0VEOndyb25n")]  # LOCKED:wrong
    with pytest.raises(ConnectionRejected) as throttled:
        async with open_websocket_url(url, subprotocols=["ocpp1.6"], extra_headers=wrong):
            pass
    assert throttled.value.status_code == 429
    assert dict(throttled.value.headers)[b"retry-after"] == b"1"
    voltaro.central.admitter.throttle = never_throttled()  # from here on
    assert await handshake_status(url, wrong) == 401
    good = [(b"Authorization", b"Basic TE9DS0VEOnMzY3JldA==")]  # LOCKED:s3cret
    async with open_websocket_url(url, subprotocols=["ocpp1.6"], extra_headers=good) as ws:
        await ws.send_message('[2,"h1","Heartbeat",{}]')
        assert (await ws.get_message()).startswith('[3,"h1"')


def basic(charge_point_id: str, password: str) -> tuple[bytes, bytes]:
    return (
        b"Authorization",
        b"Basic " + base64.b64encode(f"{charge_point_id}:{password}".encode()),
    )


async def test_behind_a_trusted_proxy_a_failed_login_blocks_the_chargers_address_not_the_proxys(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    """Behind a load balancer every charger arrives from the balancer's address: one charger
    with a wrong password must not keep out every charger behind it (after a node is killed,
    its chargers all log in afresh on the others). With the proxy trusted, the throttle keys
    on the address it forwards, and that address is the one recorded."""
    voltaro = await start(
        nursery, voltaro_settings, unknown_chargers="reject", trusted_proxies="127.0.0.1"
    )
    for charge_point_id in ("BAD", "GOOD", "NEIGHBOUR"):
        await voltaro.central.store.charge_points.upsert(
            charge_point_id, status="Accepted", password_hash=hash_password("s3cret")
        )
    bad_site, good_site = (
        (b"X-Forwarded-For", b"203.0.113.7"),
        (b"X-Forwarded-For", b"198.51.100.9"),
    )

    wrong = [basic("BAD", "wrong"), bad_site]
    assert await handshake_status(ws_url(voltaro, "BAD"), wrong) == 401
    # another charger behind the same proxy, from another address: let in at once
    good = [basic("GOOD", "s3cret"), good_site]
    url = ws_url(voltaro, "GOOD")
    async with open_websocket_url(url, subprotocols=["ocpp1.6"], extra_headers=good) as ws:
        await ws.send_message('[2,"h1","Heartbeat",{}]')
        assert (await ws.get_message()).startswith('[3,"h1"')
    # the failing charger's own address is what is blocked
    neighbour = [basic("NEIGHBOUR", "s3cret"), bad_site]
    assert await handshake_status(ws_url(voltaro, "NEIGHBOUR"), neighbour) == 429

    for _ in range(50):  # the failure's record is written in the background
        rows = await fetch(voltaro, "SELECT charge_point_id, remote_address FROM security_events")
        if rows:
            break
        await trio.sleep(0.1)
    assert rows == [{"charge_point_id": "BAD", "remote_address": "203.0.113.7"}]


async def test_message_log_has_every_frame_in_and_out(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings, unknown_chargers="accept")
    charger = await RawCharger.connect(nursery, ws_url(voltaro, "LOGGED"))
    await charger.call("BootNotification", BOOT)
    await charger.call("MakeCoffee", {})
    await charger.close()
    with trio.fail_after(10):
        while (
            len(
                rows := await fetch(
                    voltaro,
                    "SELECT direction, action, error_code FROM message_log "
                    "WHERE charge_point_id = 'LOGGED' ORDER BY id",
                )
            )
            < 4
        ):
            await trio.sleep(0.05)
    assert rows == [
        {"direction": "in", "action": "BootNotification", "error_code": None},
        {"direction": "out", "action": "BootNotification", "error_code": None},
        {"direction": "in", "action": "MakeCoffee", "error_code": None},
        {"direction": "out", "action": "MakeCoffee", "error_code": "NotImplemented"},
    ]


def test_full_session_by_the_ocpp_package(voltaro_settings: Settings) -> None:
    settings = e2e_settings(voltaro_settings, unknown_chargers="accept")
    with trio_in_thread(
        lambda nursery: nursery.start(start_voltaro_with_loop, settings)
    ) as voltaro:
        results = run_asyncio(_ocpp_package_session(ws_url(voltaro, "PKG-SESSION")))
    boot, auth, start_tx, stop_tx = results
    assert boot.status == "Accepted"
    assert auth.id_tag_info["status"] == "Invalid"  # unknown tag: recorded, not authorized
    assert isinstance(start_tx.transaction_id, int)
    assert stop_tx is not None

    async def stored() -> list[dict[str, Any]]:
        async with trio_asyncio.open_loop():
            connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(settings.database_url)
            try:
                rows = await trio_asyncio.aio_as_trio(connection.fetch)(
                    "SELECT meter_start, meter_stop, energy_wh, stop_reason FROM transactions"
                )
            finally:
                await trio_asyncio.aio_as_trio(connection.close)()
            return [dict(row) for row in rows]

    assert trio.run(stored) == [
        {"meter_start": 1000, "meter_stop": 1750, "energy_wh": 750, "stop_reason": "Local"}
    ]


async def _ocpp_package_session(url: str) -> list[Any]:
    async with websockets.connect(url, subprotocols=["ocpp1.6"]) as ws:
        charge_point = ChargePoint("PKG-SESSION", ws)
        listener = asyncio.create_task(charge_point.start())
        try:
            boot = await charge_point.call(
                call.BootNotification(charge_point_model="M", charge_point_vendor="V")
            )
            await charge_point.call(
                call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing")
            )
            auth = await charge_point.call(call.Authorize(id_tag="TAG-1"))
            start_tx = await charge_point.call(
                call.StartTransaction(
                    connector_id=1,
                    id_tag="TAG-1",
                    meter_start=1000,
                    timestamp="2026-11-24T10:00:00Z",
                )
            )
            await charge_point.call(
                call.MeterValues(
                    connector_id=1,
                    transaction_id=start_tx.transaction_id,
                    meter_value=[
                        {
                            "timestamp": "2026-11-24T10:15:00Z",
                            "sampledValue": [
                                {
                                    "value": "1400",
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                }
                            ],
                        }
                    ],
                )
            )
            stop_tx = await charge_point.call(
                call.StopTransaction(
                    meter_stop=1750,
                    timestamp="2026-11-24T10:30:00Z",
                    transaction_id=start_tx.transaction_id,
                    reason="Local",
                )
            )
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        return [boot, auth, start_tx, stop_tx]


def meter(value: int) -> dict[str, Any]:
    """A MeterValues payload; a new value makes a new message (equal content is a retry)."""
    return {
        "connectorId": 1,
        "meterValue": [
            {"timestamp": "2026-11-24T12:00:00Z", "sampledValue": [{"value": str(value)}]}
        ],
    }


async def test_database_outage_answers_internal_error_then_recovers(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, pg_server: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings, unknown_chargers="accept")
    charger = await RawCharger.connect(nursery, ws_url(voltaro, "OUTAGE"))
    assert (await charger.call("MeterValues", meter(1)))[0] == 3
    name = pg_server.database_name(voltaro_settings.database_url)

    def go_down() -> None:
        pg_server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg_server.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )

    await trio.to_thread.run_sync(go_down)
    down = await charger.call("MeterValues", meter(2))
    assert down[0] == 4 and down[2] == "InternalError", down
    await trio.to_thread.run_sync(
        pg_server.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
    )
    with trio.fail_after(30):
        while (answer := await charger.call("MeterValues", meter(3)))[0] != 3:
            assert answer[2] == "InternalError"
            await trio.sleep(0.1)
    await charger.close()
    # the same connection survived; exactly the acknowledged values are stored
    rows = await fetch(
        voltaro, "SELECT count(*) AS n FROM meter_values WHERE charge_point_id = 'OUTAGE'"
    )
    assert rows == [{"n": 2}]


LONG_SERIAL = "S" * 30


async def test_lenient_mode_accepts_known_breakers_and_counts_them(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings, unknown_chargers="reject")
    charge_points = voltaro.central.store.charge_points
    await charge_points.upsert("STRICT", status="Accepted")
    await charge_points.upsert("LENIENT", status="Accepted", lenient=True)
    boot = {**BOOT, "chargePointSerialNumber": LONG_SERIAL}

    strict = await RawCharger.connect(nursery, ws_url(voltaro, "STRICT"))
    refused = await strict.call("BootNotification", boot)
    assert refused[2] == "PropertyConstraintViolation"
    assert "chargePointSerialNumber" in refused[3]

    lenient = await RawCharger.connect(nursery, ws_url(voltaro, "LENIENT"))
    accepted = await lenient.call("BootNotification", boot)
    assert accepted[0] == 3 and accepted[2]["status"] == "Accepted"
    assert voltaro.central.deviations["LENIENT"] == 1
    # other errors are still refused in lenient mode
    still_refused = await lenient.call("BootNotification", {"chargePointVendor": "V"})
    assert still_refused[2] == "OccurenceConstraintViolation"
    await lenient.close()
    await strict.close()
    with trio.fail_after(10):
        while not (
            logged := await fetch(
                voltaro,
                "SELECT payload FROM message_log WHERE charge_point_id = 'LENIENT' "
                "AND action = 'BootNotification' AND direction = 'in' ORDER BY id LIMIT 1",
            )
        ):
            await trio.sleep(0.05)
    # the log keeps what the charger actually sent
    assert logged[0]["payload"]["chargePointSerialNumber"] == LONG_SERIAL


async def test_a_normal_stop_commits_every_chargers_disconnection(
    voltaro_settings: Settings, database_url: str, aio_loop: Any
) -> None:
    """Stopping (Ctrl-C, SIGTERM: the instance cancelled) closes the chargers with 1001 and
    records each disconnection while the store is still up: none left as an unsaved write
    for the next start to clean up (issue 18: a normal Ctrl-C logged them as unsaved)."""
    ids = [f"BYE-{n:02d}" for n in range(40)]
    async with trio.open_nursery() as chargers:
        with trio.CancelScope() as server_scope:
            async with trio.open_nursery() as server:
                voltaro = await start(server, voltaro_settings, unknown_chargers="accept")
                connected = [await RawCharger.connect(chargers, ws_url(voltaro, cp)) for cp in ids]
                for charger in connected:
                    answer = await charger.call("BootNotification", BOOT)
                    assert answer[2]["status"] == "Accepted"
                writer = voltaro.central.store.writer
                server_scope.cancel()
        chargers.cancel_scope.cancel()
    assert writer.queued_posted_bytes == 0
    connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
    try:
        rows = await trio_asyncio.aio_as_trio(connection.fetch)(
            "SELECT charge_point_id, reason FROM presence_events WHERE NOT online"
        )
        online = await trio_asyncio.aio_as_trio(connection.fetchval)(
            "SELECT count(*) FROM charge_points WHERE online"
        )
    finally:
        await trio_asyncio.aio_as_trio(connection.close)()
    reasons = {row["charge_point_id"]: row["reason"] for row in rows}
    assert sorted(reasons) == ids
    assert set(reasons.values()) == {
        "disconnected: closed by the server: code 1001 server shutting down"
    }
    assert online == 0
