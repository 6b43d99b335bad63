"""The event bus and the transaction chart, without a server or a browser."""

from __future__ import annotations

import pytest
import trio

from tests.dashboard.conftest import no_browser
from voltaro.admin.chart import transaction_chart
from voltaro.admin.dashboard import frame_kind, local_path
from voltaro.admin.listing import utc_from_input
from voltaro.central.commands import CommandCatalog, UnknownCommand
from voltaro.central.domain_events import Connected, StatusChanged, event_json
from voltaro.central.events import EventBus
from voltaro.central.profiles import PROFILES


async def test_subscribers_get_the_events_published_while_subscribed() -> None:
    bus = EventBus(recent=2)
    bus.publish(Connected(charge_point_id="CP-0"))
    with bus.subscribe() as events:
        first = bus.publish(Connected(charge_point_id="CP-1"))
        bus.publish(
            StatusChanged(
                charge_point_id="CP-1",
                connector_id=1,
                status="Charging",
                previous_status=None,
                error_code="NoError",
            )
        )
        assert await events.receive() == first
        second = await events.receive()
        assert isinstance(second, StatusChanged)
        assert second.id > first.id and second.at is not None
        shown = event_json(second)
        assert shown["type"] == "status"
        assert shown["chargePointId"] == "CP-1"
        assert shown["status"] == "Charging" and shown["connectorId"] == 1
        assert shown["previousStatus"] is None and shown["errorCode"] == "NoError"
        assert shown["at"].endswith("Z")
    assert bus.subscribers == 0
    assert [e.charge_point_id for e in bus.recent] == ["CP-1", "CP-1"]  # the last two


async def test_a_lagging_subscriber_is_dropped_and_never_blocks_publishers() -> None:
    bus = EventBus()
    with bus.subscribe(buffer=2) as slow, bus.subscribe() as fast:
        for n in range(5):
            bus.publish(Connected(charge_point_id=f"CP-{n}"))  # never blocks
        assert bus.subscribers == 1
        received = [await slow.receive(), await slow.receive()]
        assert [e.charge_point_id for e in received] == ["CP-0", "CP-1"]
        with pytest.raises(trio.EndOfChannel):
            await slow.receive()
        assert (await fast.receive()).charge_point_id == "CP-0"


def test_command_forms_become_ocpp_payloads() -> None:
    catalog = CommandCatalog(PROFILES)
    assert catalog.get("Reset").payload({"type": "Hard"}) == {"type": "Hard"}
    start = catalog.get("RemoteStartTransaction")
    assert start.payload({"idTag": "T1", "connectorId": ""}) == {"idTag": "T1"}
    assert catalog.get("GetConfiguration").payload({"key": "A, B,,"}) == {"key": ["A", "B"]}
    with pytest.raises(ValueError) as refused:
        catalog.get("UnlockConnector").payload({"connectorId": "one"})
    assert refused.value.args == ("Connector must be a whole number", "connectorId")
    with pytest.raises(ValueError) as refused:
        catalog.get("Reset").payload({"type": "Warm"})
    assert refused.value.args == ("Type must be one of Soft, Hard", "type")
    with pytest.raises(UnknownCommand, match="not an action the Central System sends"):
        catalog.get("StartTransaction")
    with pytest.raises(UnknownCommand, match="not a command of this server"):
        catalog.get("SetChargingProfile")


def test_only_local_paths_are_followed_after_sign_in() -> None:
    assert local_path("/transactions?active=true") == "/transactions?active=true"
    for target in ("//evil.example/", "https://evil.example/", "/\\evil", "", None, "x"):
        assert local_path(target) == "/"
    assert utc_from_input("2030-01-31T12:00") == "2030-01-31T12:00:00Z"
    assert utc_from_input("") is None


def test_the_chart_draws_energy_from_start_to_stop_and_power() -> None:
    transaction = {
        "meterStart": 1000,
        "meterStop": 4000,
        "startTimestamp": "2026-01-01T10:00:00Z",
        "stopTimestamp": "2026-01-01T11:00:00Z",
        "meterValues": [
            {
                "timestamp": "2026-01-01T10:30:00Z",
                "value": "2.5",
                "unit": "kWh",
                "measurand": "Energy.Active.Import.Register",
                "phase": None,
            },
            {
                "timestamp": "2026-01-01T10:30:00Z",
                "value": "7400",
                "unit": "W",
                "measurand": "Power.Active.Import",
                "phase": None,
            },
            {
                "timestamp": "2026-01-01T10:30:00Z",
                "value": "230",
                "unit": "V",
                "measurand": "Voltage",
                "phase": "L1",
            },
        ],
    }
    chart = transaction_chart(transaction)
    energy = str(chart["energy"])
    assert energy.count("<circle") == 3  # start (0), 1.5 kWh at 10:30, stop (3 kWh)
    assert 'aria-label="Energy delivered over time, 3 readings, last 3.00 kWh"' in energy
    assert "<polyline" in energy
    assert chart["power"] is not None and "7.40 kW" in str(chart["power"])
    assert [row[1] for row in chart["rows"]] == ["0.000 kWh", "1.500 kWh", "7.40 kW", "3.000 kWh"]


def test_message_log_rows_are_told_apart_as_calls_and_answers() -> None:
    assert frame_kind({"direction": "in", "action": "MeterValues"}) == "call"
    assert frame_kind({"direction": "out", "action": "MeterValues"}) == "result"
    assert frame_kind({"direction": "out", "action": "Reset"}) == "call"
    assert frame_kind({"direction": "in", "action": "Reset"}) == "result"
    assert (
        frame_kind({"direction": "in", "action": "Reset", "errorCode": "NotSupported"}) == "error"
    )
    assert frame_kind({"direction": "in", "action": "DataTransfer"}) == ""


def test_without_chromium_the_browser_tests_skip_unless_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VOLTARO_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install Debian's chromium"):
        no_browser("chromium is not installed")
    monkeypatch.setenv("VOLTARO_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="VOLTARO_REQUIRE_BROWSER=1"):
        no_browser("chromium is not installed")


def test_an_event_is_published_once() -> None:
    bus = EventBus()
    event = bus.publish(Connected(charge_point_id="CP-1"))
    with pytest.raises(ValueError, match="published already"):
        bus.publish(event)
    assert list(bus.recent) == [event]
