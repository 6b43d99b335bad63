"""A whole Voltaro whose database stops answering: a charger's MeterValues is answered
InternalError within the deadline (nothing acknowledged), and once the database answers
again the next one is answered and stored, without anybody restarting anything."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.e2e import e2e_settings, fetch, ws_url
from tests.freezable_proxy import FreezableProxy, proxy
from tests.harness import RawCharger
from voltaro.app import Voltaro, start_voltaro
from voltaro.config import Settings
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "proxy", "voltaro_settings"]

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt 1"}
RECOVERY = 60  # seconds: a bound for a server that never recovers, not a timing assertion


def meter_values(volts: int) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "meterValue": [
            {
                "timestamp": f"2026-12-01T12:00:{volts % 60:02d}Z",
                "sampledValue": [{"value": str(volts), "measurand": "Voltage", "unit": "V"}],
            }
        ],
    }


async def test_meter_values_during_a_frozen_database_get_internal_error_then_recover(
    nursery: trio.Nursery,
    proxy: FreezableProxy,
    voltaro_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = e2e_settings(
        voltaro_settings,
        database_url=proxy.url(),
        database_deadline=1.0,
        unknown_chargers="accept",
    )
    voltaro: Voltaro = await nursery.start(start_voltaro, settings)
    charger = await RawCharger.connect(nursery, ws_url(voltaro, "CP-FROZEN"))
    assert (await charger.call("BootNotification", BOOT))[2]["status"] == "Accepted"

    proxy.freeze()
    try:
        for volts in (1, 2, 3):
            answer = await charger.call("MeterValues", meter_values(volts))
            assert answer[0] == 4 and answer[2] == "InternalError", answer
            assert "database unavailable" in answer[3]
    finally:
        proxy.thaw()
    # the outage is logged as an episode; no refused message leaves a traceback behind
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("voltaro")]

    answered = None
    with trio.fail_after(RECOVERY):
        for volts in range(4, 1000):
            answer = await charger.call("MeterValues", meter_values(volts))
            if answer[0] == 3:
                answered = (answer[1], volts)
                break
            assert answer[0] == 4 and answer[2] == "InternalError", answer
            await trio.sleep(0.2)
    assert answered is not None
    message_id, volts = answered

    sets = await fetch(
        voltaro,
        "SELECT meter_value FROM meter_value_sets WHERE charge_point_id = 'CP-FROZEN'",
    )
    stored = [s["meter_value"][0]["sampledValue"][0]["value"] for s in sets]
    assert str(volts) in stored
    await voltaro.central.store.writer.flush()  # the message log is written in the background
    logged = await fetch(
        voltaro,
        "SELECT direction, action FROM message_log WHERE message_id = $1 ORDER BY id",
        message_id,
    )
    assert logged == [
        {"direction": "in", "action": "MeterValues"},
        {"direction": "out", "action": "MeterValues"},
    ]
    await charger.close()
