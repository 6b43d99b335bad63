"""DataTransfer, presence, the message log, lenient deviations and database outages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio

from tests.central.helpers import boot_payload, call, fetch, fetchval
from voltaro.central import CentralSystem
from voltaro.ocppj.errors import ErrorCode, OcppError
from voltaro.ocppj.validation import Deviation
from voltaro.store import StoreUnavailable
from voltaro.store.testing import TestPostgres


async def test_data_transfer(central: CentralSystem) -> None:
    seen: list[tuple[str, str | None, str | None]] = []

    async def acme(cp: str, message_id: str | None, data: str | None) -> dict[str, Any]:
        seen.append((cp, message_id, data))
        return {"status": "Accepted", "data": "pong"}

    central.data_transfer.register("com.acme", acme)
    reply = await call(
        central, "CP1", "DataTransfer", {"vendorId": "com.acme", "messageId": "ping", "data": "x"}
    )
    assert reply == {"status": "Accepted", "data": "pong"}
    assert seen == [("CP1", "ping", "x")]
    assert await call(central, "CP1", "DataTransfer", {"vendorId": "com.other"}) == {
        "status": "UnknownVendorId"
    }


async def test_message_log(central: CentralSystem) -> None:
    central.log_frame("CP1", "in", "m1", "Heartbeat", {})
    central.log_frame("CP1", "out", "m1", "Heartbeat", {"currentTime": "2024-01-01T00:00:00.000Z"})
    central.log_frame("CP1", "out", "m2", "Authorize", {"description": "nope"}, "InternalError")
    central.log_frame("CP1", "in", "m3", "DataTransfer", {"vendorId": "v", "data": "a\x00b\u0000"})
    await central.store.writer.flush()
    rows = await fetch(
        central,
        "SELECT direction, message_id, action, payload, error_code FROM message_log ORDER BY id",
    )
    assert [(r["direction"], r["message_id"], r["action"]) for r in rows] == [
        ("in", "m1", "Heartbeat"),
        ("out", "m1", "Heartbeat"),
        ("out", "m2", "Authorize"),
        ("in", "m3", "DataTransfer"),
    ]
    assert rows[1]["payload"] == {"currentTime": "2024-01-01T00:00:00.000Z"}
    assert rows[2]["error_code"] == "InternalError"
    with pytest.raises(ValueError):
        central.log_frame("CP1", "sideways", "m4", "Heartbeat", {})


async def test_nul_characters_do_not_make_data_unstorable(central: CentralSystem) -> None:
    central.log_frame("CP1", "in", "m\x00", "DataTransfer", {"data": "a\x00b", "k\x00": [1]})
    await central.store.writer.flush()
    [row] = await fetch(central, "SELECT message_id, payload FROM message_log")
    assert row == {"message_id": "m\ufffd", "payload": {"data": "a\ufffdb", "k\ufffd": [1]}}
    await call(
        central,
        "CP1",
        "StatusNotification",
        {"connectorId": 1, "status": "Available", "errorCode": "NoError", "info": "bad\x00info"},
    )
    assert await fetchval(central, "SELECT info FROM connectors") == "bad\ufffdinfo"


async def test_message_log_retention(central: CentralSystem) -> None:
    days = central.settings.message_log_retention_days
    old = datetime.now(UTC) - timedelta(days=days, minutes=1)
    central.store.message_log.post(old, "CP1", "in", "old", "Heartbeat", {}, None)
    central.log_frame("CP1", "in", "new", "Heartbeat", {})
    central.store.refused_id_tags.post("OLD-TAG", "unknown", "CP1", old, "Authorize")
    central.store.refused_id_tags.post("NEW-TAG", "blocked", "CP1", datetime.now(UTC), "Authorize")
    await central.store.writer.flush()
    assert await central.purge_message_log() == 1
    assert await fetchval(central, "SELECT string_agg(message_id, ',') FROM message_log") == "new"
    assert await fetchval(central, "SELECT string_agg(id_tag, ',') FROM refused_id_tags") == (
        "NEW-TAG"  # refused tags go with the log's retention
    )


async def test_count_deviation(central: CentralSystem) -> None:
    await central.store.charge_points.upsert("CP1", lenient=True)
    deviation = Deviation("unit-spelling", "$.meterValue[0].sampledValue[0].unit", "Celcius")
    central.count_deviation("CP1", deviation)
    central.count_deviation("CP1", deviation)
    assert central.deviations["CP1"] == 2
    assert central.deviation_kinds["unit-spelling"] == 2
    central._flush_deviations()
    await central.store.writer.flush()
    record = await central.store.charge_points.get("CP1")
    assert record is not None and record.lenient_deviations == 2


async def test_database_outage_fails_handlers_then_recovers(
    central: CentralSystem, pg_server: TestPostgres
) -> None:
    """During an outage a charger's messages are answered InternalError (nothing saved, so
    nothing acknowledged: the charger sends them again); afterwards they are served."""
    name = pg_server.database_name(central.store.database.url)
    await central.store.charge_points.upsert("CP1", status="Accepted")
    await call(central, "CP1", "BootNotification", boot_payload())

    def go_down() -> None:
        pg_server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg_server.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )

    async def refused(action: str, payload: dict[str, Any]) -> None:
        with pytest.raises(OcppError) as refusal:
            await call(central, "CP1", action, payload)
        assert refusal.value.code is ErrorCode.INTERNAL_ERROR
        assert "database unavailable" in refusal.value.description

    await trio.to_thread.run_sync(go_down)
    meter = {
        "connectorId": 1,
        "meterValue": [{"timestamp": "2024-05-01T10:00:00Z", "sampledValue": [{"value": "1"}]}],
    }
    await refused("MeterValues", meter)
    await refused("BootNotification", boot_payload())
    # Authorize cannot be answered from a cache that lost its LISTEN connection
    with trio.fail_after(10):
        while central.store.id_tag_cache.valid:
            await trio.sleep(0.01)
    await refused("Authorize", {"idTag": "X"})
    assert central.refused_for_outage == 3

    await trio.to_thread.run_sync(
        pg_server.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
    )
    with trio.fail_after(30):
        while True:
            try:
                assert await call(central, "CP1", "MeterValues", meter) == {}
                break
            except OcppError:
                await trio.sleep(0.05)
    assert await fetchval(central, "SELECT count(*) FROM meter_values") == 1
    with trio.fail_after(30):
        while True:
            try:
                assert (await call(central, "CP1", "Authorize", {"idTag": "X"}))["idTagInfo"] == {
                    "status": "Invalid"
                }
                break
            except OcppError:
                await trio.sleep(0.05)


async def test_shutdown_and_restart_record_chargers_offline(
    voltaro_settings: Any, aio_loop: Any
) -> None:
    from voltaro.central import open_central_system

    async with open_central_system(voltaro_settings) as central:
        await central.store.charge_points.upsert("CP1")
        await central.presence.online("CP1")
        central.seen("CP1")
        central.log_frame("CP1", "in", "m1", "Heartbeat", {})
    # stopped: the hooks are harmless, and nobody is left online
    central.seen("CP1")
    central.log_frame("CP1", "in", "m2", "Heartbeat", {})
    async with open_central_system(voltaro_settings) as central:
        events = await fetch(central, "SELECT online, reason FROM presence_events ORDER BY id")
        assert events == [
            {"online": True, "reason": "connected"},
            {"online": False, "reason": "server stopped"},
        ]
        record = await central.store.charge_points.get("CP1")
        assert record is not None and not record.online


async def test_presence_during_outage_is_queued_not_raised(
    central: CentralSystem, pg_server: TestPostgres
) -> None:
    await central.store.charge_points.upsert("CP1")
    await central.presence.online("CP1")
    name = pg_server.database_name(central.store.database.url)

    def go_down() -> None:
        pg_server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg_server.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )

    await trio.to_thread.run_sync(go_down)
    await central.presence.offline("CP1", "network")  # must not raise
    await trio.to_thread.run_sync(
        pg_server.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
    )
    with trio.fail_after(30):
        while True:
            try:
                await central.store.writer.flush()
                break
            except StoreUnavailable:
                await trio.sleep(0.05)
    events = await fetch(central, "SELECT online, reason FROM presence_events ORDER BY id")
    assert events[-1] == {"online": False, "reason": "disconnected: network"}
