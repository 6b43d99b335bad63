"""The simulated charge point against a whole Voltaro (real WebSockets, real PostgreSQL)."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio

from tests.sim.helpers import REGISTRY, add_tags, base_url, rows, start, start_charger, wait_for
from voltaro.config import Settings
from voltaro.sim.charger import ChargerOptions, SimulatedChargePoint, default_id_tag
from voltaro.sim.fleet import FleetOptions, charger_id, run_fleet_in_process
from voltaro.sim.profiles import profile
from voltaro.sim.stats import FleetStats


@pytest.mark.parametrize("name", ["realistic", "stress", "storm"])
async def test_a_short_session_per_profile(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, name: str
) -> None:
    """Boot, every connector's status, heartbeats at the server's interval (time-compressed),
    and one session with rising meter values, as each profile runs it."""
    voltaro = await start(nursery, voltaro_settings, heartbeat_interval=60)
    cp = f"P-{name}"
    await add_tags(voltaro, default_id_tag(cp, 1))
    stats = FleetStats()
    sim_profile = profile(name, time_scale=1000, connect_window=0).with_changes(
        sessions_per_day=0.0  # only the session started below
    )
    async with trio.open_nursery() as chargers:
        charger = await start_charger(chargers, voltaro, cp, sim_profile=sim_profile, stats=stats)
        assert await charger.charge(1, default_id_tag(cp, 1), seconds=1800)
        await wait_for(lambda: not charger.queue and stats.calls_of("StopTransaction") == 1)
        await wait_for(lambda: stats.calls_of("Heartbeat") >= 2)
        chargers.cancel_scope.cancel()

    statuses = await rows(
        voltaro,
        "SELECT connector_id, status FROM connectors WHERE charge_point_id = $1 ORDER BY 1",
        cp,
    )
    assert statuses == [
        {"connector_id": 0, "status": "Available"},
        {"connector_id": 1, "status": "Available"},
        {"connector_id": 2, "status": "Available"},
    ]
    history = await rows(
        voltaro,
        "SELECT status FROM connector_status_history"
        " WHERE charge_point_id = $1 AND connector_id = 1 ORDER BY id",
        cp,
    )
    assert [r["status"] for r in history] == [
        "Available",
        "Preparing",
        "Charging",
        "Finishing",
        "Available",
    ]
    [tx] = await rows(voltaro, "SELECT * FROM transactions WHERE charge_point_id = $1", cp)
    assert tx["stop_reason"] == "EVDisconnected"
    # 30 minutes at 3.7-22 kW
    assert 1800 <= tx["meter_stop"] - tx["meter_start"] <= 11000
    meter = await rows(
        voltaro,
        "SELECT value FROM meter_values WHERE transaction_id = $1"
        " AND measurand = 'Energy.Active.Import.Register' ORDER BY set_id, ordinal",
        tx["transaction_id"],
    )
    readings = [float(r["value"]) for r in meter]
    expected = 1800 / sim_profile.meter_interval
    assert expected - 2 <= len(readings) <= expected
    assert readings == sorted(readings) and readings[-1] > readings[0]
    assert stats.errors == 0


async def test_boot_is_retried_while_pending(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(
        nursery, voltaro_settings, unknown_chargers="pending", heartbeat_interval=20
    )
    stats = FleetStats()
    sim_profile = profile("realistic", time_scale=100, connect_window=0)
    charger = SimulatedChargePoint(
        ChargerOptions("WAITING", base_url(voltaro), sim_profile, backoff_min=0.05), REGISTRY, stats
    )
    async with trio.open_nursery() as chargers:
        await chargers.start(charger.run)
        await wait_for(lambda: charger.boots >= 3)  # every 20 s / 100
        assert not charger.registered
        await voltaro.central.store.charge_points.upsert("WAITING", status="Accepted")
        with trio.fail_after(5):
            await charger.wait_registered()
        chargers.cancel_scope.cancel()
    assert stats.errors == 0


async def test_every_central_system_command_is_answered(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings)
    cp = "CMD-1"
    await add_tags(voltaro, "REMOTE-TAG")
    stats = FleetStats()
    sim_profile = profile("realistic", time_scale=100, connect_window=0)
    async with trio.open_nursery() as chargers:
        charger = await start_charger(chargers, voltaro, cp, sim_profile=sim_profile, stats=stats)
        cs = voltaro.sessions.get(cp).endpoint

        config = await cs.call("GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})
        assert config["configurationKey"] == [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
        ]
        assert config["unknownKey"] == ["Nope"]
        everything = await cs.call("GetConfiguration", {})
        assert len(everything["configurationKey"]) > 20
        for key, value, status in [
            ("MeterValueSampleInterval", "5", "Accepted"),
            ("MeterValueSampleInterval", "often", "Rejected"),
            ("NumberOfConnectors", "4", "Rejected"),
            ("NoSuchKey", "1", "NotSupported"),
        ]:
            answer = await cs.call("ChangeConfiguration", {"key": key, "value": value})
            assert answer == {"status": status}, key
        config = await cs.call("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
        assert config["configurationKey"][0]["value"] == "5"

        answer = await cs.call("ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})
        assert answer == {"status": "Accepted"}
        await wait_for(lambda: charger.connectors[2].status == "Unavailable")
        answer = await cs.call("RemoteStartTransaction", {"idTag": "REMOTE-TAG", "connectorId": 2})
        assert answer == {"status": "Rejected"}  # inoperative
        answer = await cs.call("ChangeAvailability", {"connectorId": 2, "type": "Operative"})
        assert answer == {"status": "Accepted"}

        answer = await cs.call("RemoteStartTransaction", {"idTag": "REMOTE-TAG", "connectorId": 1})
        assert answer == {"status": "Accepted"}
        await wait_for(lambda: stats.calls_of("StartTransaction") == 1 and not charger.queue)
        [tx] = await rows(voltaro, "SELECT transaction_id FROM transactions")
        tx_id = tx["transaction_id"]
        answer = await cs.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        assert answer == {"status": "Scheduled"}  # a session is running there
        assert await cs.call("RemoteStopTransaction", {"transactionId": tx_id + 99}) == {
            "status": "Rejected"
        }
        answer = await cs.call("RemoteStopTransaction", {"transactionId": tx_id})
        assert answer == {"status": "Accepted"}
        await wait_for(lambda: stats.calls_of("StopTransaction") == 1)
        await wait_for(lambda: charger.connectors[1].status == "Unavailable")
        await cs.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"})

        assert await cs.call("UnlockConnector", {"connectorId": 2}) == {"status": "Unlocked"}
        assert await cs.call("UnlockConnector", {"connectorId": 7}) == {"status": "NotSupported"}
        assert await cs.call("ClearCache", {}) == {"status": "Accepted"}
        assert await cs.call("DataTransfer", {"vendorId": "X"}) == {"status": "UnknownVendorId"}
        assert await cs.call("GetLocalListVersion", {}) == {"listVersion": 0}
        for message in ["Heartbeat", "StatusNotification", "MeterValues", "BootNotification"]:
            before = stats.calls_of(message)
            answer = await cs.call("TriggerMessage", {"requestedMessage": message})
            assert answer == {"status": "Accepted"}
            await wait_for(lambda m=message, b=before: stats.calls_of(m) > b)

        boots = charger.boots
        assert await cs.call("Reset", {"type": "Soft"}) == {"status": "Accepted"}
        await wait_for(lambda: charger.boots > boots and charger.registered)
        assert voltaro.sessions.get(cp).endpoint is not cs  # a new connection after the reboot
        chargers.cancel_scope.cancel()

    [tx] = await rows(voltaro, "SELECT stop_reason FROM transactions")
    assert tx == {"stop_reason": "Remote"}
    assert stats.errors == 0
    assert stats.answered_calls == len(charger.answered) >= 25


async def test_offline_messages_are_queued_and_replayed_once(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    """Sessions go on while the network is down; after reconnecting the queued
    StartTransaction/MeterValues/StopTransaction go out in order with new message ids, the
    local transaction id replaced by the server's, and nothing is stored twice."""
    voltaro = await start(nursery, voltaro_settings)
    cp = "OFFLINE-1"
    await add_tags(voltaro, "TAG-A", "TAG-B")
    stats = FleetStats()
    sim_profile = profile("stress", time_scale=200, connect_window=0).with_changes(
        sessions_per_day=0.0
    )
    async with trio.open_nursery() as chargers:
        charger = await start_charger(chargers, voltaro, cp, sim_profile=sim_profile, stats=stats)
        # TAG-B is on no local list and in no cache: offline it may charge only so
        cs = voltaro.sessions.get(cp).endpoint
        answer = await cs.call(
            "ChangeConfiguration", {"key": "AllowOfflineTxForUnknownId", "value": "true"}
        )
        assert answer == {"status": "Accepted"}
        # session A starts online and ends offline (10 s meter interval / 100)
        chargers.start_soon(partial(charger.charge, 1, "TAG-A", seconds=300.0))
        await wait_for(lambda: stats.calls_of("MeterValues") >= 2)
        charger.network_down()
        await wait_for(lambda: not charger.registered)
        # session B starts and ends while offline (an unknown tag, allowed offline)
        assert await charger.charge(2, "TAG-B", seconds=200)
        await wait_for(lambda: charger.connectors[1].session is None)
        queued = len(charger.queue)
        assert queued >= 10
        assert [m.action for m in charger.queue].count("StartTransaction") == 1
        charger.network_up()
        await wait_for(lambda: charger.registered and not charger.queue)
        chargers.cancel_scope.cancel()

    assert stats.queued_replayed == queued
    assert stats.errors == 0
    transactions = await rows(
        voltaro,
        "SELECT transaction_id, connector_id, id_tag, stop_reason, meter_stop > meter_start AS rose"
        " FROM transactions ORDER BY transaction_id",
    )
    assert [(t["connector_id"], t["id_tag"], t["rose"]) for t in transactions] == [
        (1, "TAG-A", True),
        (2, "TAG-B", True),
    ]
    per_transaction = await rows(
        voltaro,
        "SELECT transaction_id, count(*) AS n FROM meter_values"
        " WHERE measurand = 'Energy.Active.Import.Register' GROUP BY 1 ORDER BY 1",
    )
    assert [r["transaction_id"] for r in per_transaction] == [
        t["transaction_id"] for t in transactions
    ]
    # every queued message went out with a message id of its own
    ids = await rows(
        voltaro,
        "SELECT message_id, count(*) AS n FROM message_log WHERE direction = 'in'"
        " AND charge_point_id = $1 GROUP BY 1 HAVING count(*) > 1",
        cp,
    )
    assert ids == []


async def test_a_reconnect_storm_drops_and_reboots_every_charger_at_once(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings)
    options = FleetOptions(
        url=base_url(voltaro),
        chargers=5,
        profile=profile("storm", connect_window=0),
        duration=4.0,
        id_prefix="RS-",
        source_addresses=False,
        reconnect_at=2.0,
    )
    summary = await run_fleet_in_process(options)

    assert summary["errors"] == 0
    assert summary["connects"] == 10  # everyone connected twice
    assert summary["accepted"] == 5  # and is booted again at the end
    assert summary["actions"]["BootNotification"]["count"] == 10
    events = await rows(
        voltaro,
        "SELECT charge_point_id, online FROM presence_events"
        " WHERE charge_point_id LIKE 'RS-%' ORDER BY charge_point_id, id",
    )
    for n in range(1, 6):
        cp = charger_id("RS-", n)
        # connected, dropped, reconnected (and maybe already gone, as the fleet has ended)
        presence = [e["online"] for e in events if e["charge_point_id"] == cp]
        assert presence[:3] == [True, False, True] and len(presence) <= 4
