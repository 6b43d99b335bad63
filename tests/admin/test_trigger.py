"""Remote Trigger against the `ocpp` package's v16 ChargePoint: TriggerMessage for every
requestedMessage (MeterValues and StatusNotification with and without a connector), each
answer a charger can give, and every triggered message handled when it arrives: a MeterValues
outside a transaction stored against its connector, a BootNotification from a charger that
is Accepted already, the firmware and diagnostics status notifications recorded and shown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from tests.admin.conftest import Live, booted_peer
from tests.threaded import run_asyncio

TRIGGER = "/api/v1/charge-points/{}/commands/TriggerMessage"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TriggeredCharger(ChargePoint):  # type: ignore[misc]
    """Answers TriggerMessage as told (``answers``, default Accepted), then sends what was
    asked for, and keeps what Voltaro answered to it (``heard``)."""

    def __init__(self, charge_point_id: str, connection: Any) -> None:
        super().__init__(charge_point_id, connection)
        self.answers: dict[str, str] = {}
        self.heard: list[tuple[str, int | None, Any]] = []

    @on(Action.trigger_message)
    def on_trigger(self, requested_message: str, connector_id: int | None = None) -> Any:
        return call_result.TriggerMessage(status=self.answers.get(requested_message, "Accepted"))

    @after(Action.trigger_message)
    async def send_it(self, requested_message: str, connector_id: int | None = None) -> None:
        if self.answers.get(requested_message, "Accepted") != "Accepted":
            return
        message = {
            "BootNotification": call.BootNotification(
                charge_point_model="M", charge_point_vendor="V", firmware_version="2.1"
            ),
            "DiagnosticsStatusNotification": call.DiagnosticsStatusNotification(status="Uploading"),
            "FirmwareStatusNotification": call.FirmwareStatusNotification(status="Installing"),
            "Heartbeat": call.Heartbeat(),
            "MeterValues": call.MeterValues(
                connector_id=connector_id or 0,
                meter_value=[
                    {
                        "timestamp": now(),
                        "sampledValue": [
                            {
                                "value": "1234.5",
                                "context": "Trigger",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            }
                        ],
                    }
                ],
            ),
            "StatusNotification": call.StatusNotification(
                connector_id=connector_id or 0, error_code="NoError", status="Available"
            ),
        }[requested_message]
        self.heard.append((requested_message, connector_id, await self.call(message)))


def connected(
    live: Live, charge_point_id: str
) -> contextlib.AbstractAsyncContextManager[TriggeredCharger]:
    return booted_peer(live, charge_point_id, TriggeredCharger)


async def heard(charger: TriggeredCharger, count: int) -> None:
    """Until the charger has sent ``count`` triggered messages and had their answers."""
    for _ in range(500):
        if len(charger.heard) >= count:
            return
        await asyncio.sleep(0.01)


def test_every_requested_message_is_triggered_and_handled(live: Live) -> None:
    requests: list[dict[str, Any]] = [
        {"requestedMessage": "BootNotification"},
        {"requestedMessage": "DiagnosticsStatusNotification"},
        {"requestedMessage": "FirmwareStatusNotification"},
        {"requestedMessage": "Heartbeat"},
        {"requestedMessage": "MeterValues"},
        {"requestedMessage": "MeterValues", "connectorId": 2},
        {"requestedMessage": "StatusNotification"},
        {"requestedMessage": "StatusNotification", "connectorId": 2},
    ]

    async def scenario() -> tuple[list[Any], list[Any], dict[str, Any], int]:
        async with connected(live, "TRIG-ALL") as charger, live.async_client() as http:
            answers = []
            for body in requests:
                response = await http.post(TRIGGER.format("TRIG-ALL"), json=body)
                answers.append((response.status_code, response.json()))
                await heard(charger, len(answers))
            detail: dict[str, Any] = {}
            for _ in range(500):  # the notifications reach the message log with a batch
                detail = (await http.get("/api/v1/charge-points/TRIG-ALL")).json()
                if detail["firmwareStatus"] and detail["diagnosticsStatus"]:
                    break
                await asyncio.sleep(0.02)
            database = await asyncpg.connect(live.voltaro.settings.database_url)
            try:
                stored = await database.fetch(
                    "SELECT connector_id, transaction_id FROM meter_value_sets"
                    " WHERE charge_point_id = 'TRIG-ALL' ORDER BY id"
                )
            finally:
                await database.close()
            return answers, charger.heard, detail, [tuple(row) for row in stored]

    answers, triggered, detail, stored = run_asyncio(scenario())
    assert answers == [(200, {"result": {"status": "Accepted"}})] * len(requests)
    sent = [(message, connector) for message, connector, _ in triggered]
    assert sent == [(r["requestedMessage"], r.get("connectorId")) for r in requests]
    results = {(message, connector): result for message, connector, result in triggered}
    assert results[("BootNotification", None)].status == "Accepted"  # accepted, and still
    assert results[("Heartbeat", None)].current_time.endswith("Z")
    # Outside a transaction, against the connector (0: the charger), not refused:
    assert stored == [(0, None), (2, None)]
    assert detail["firmwareVersion"] == "2.1"  # the triggered boot's details are kept
    assert detail["registrationStatus"] == "Accepted"
    assert {c["connectorId"]: c["status"] for c in detail["connectors"]} == {
        0: "Available",
        2: "Available",
    }
    assert detail["firmwareStatus"] == "Installing" and detail["firmwareStatusAt"]
    assert detail["diagnosticsStatus"] == "Uploading" and detail["diagnosticsStatusAt"]


def test_every_answer_to_trigger_message_is_the_operators(live: Live) -> None:
    async def scenario() -> list[Any]:
        async with connected(live, "TRIG-NO") as charger, live.async_client() as http:
            charger.answers = {"Heartbeat": "Rejected", "MeterValues": "NotImplemented"}
            out = []
            for body in (
                {"requestedMessage": "Heartbeat"},
                {"requestedMessage": "MeterValues", "connectorId": 1},
                {"requestedMessage": "StatusNotification", "connectorId": -1},
                {"requestedMessage": "Coffee"},
            ):
                response = await http.post(TRIGGER.format("TRIG-NO"), json=body)
                out.append((response.status_code, response.json()))
            await asyncio.sleep(0.2)
            return [out, charger.heard]

    answers, triggered = run_asyncio(scenario())
    assert answers[0] == (200, {"result": {"status": "Rejected"}})
    assert answers[1] == (200, {"result": {"status": "NotImplemented"}})
    assert answers[2][0] == 400 and answers[2][1]["path"] == "$.connectorId"
    assert answers[3][0] == 400 and answers[3][1]["path"] == "$.requestedMessage"
    assert triggered == []  # nothing was sent for a refusal


def test_the_firmware_status_is_on_the_charge_point_page(live: Live) -> None:
    async def scenario() -> None:
        async with connected(live, "TRIG-PAGE") as charger:
            await charger.call(call.FirmwareStatusNotification(status="InstallationFailed"))

    run_asyncio(scenario())
    with httpx.Client(base_url=live.base) as browser:
        browser.post("/login", data={"token": live.token, "next": "/"})
        deadline = time.monotonic() + 10
        page = ""
        while time.monotonic() < deadline and "InstallationFailed" not in page:
            page = browser.get("/charge-points/TRIG-PAGE").text
            time.sleep(0.05)
    assert "<dt>Firmware status</dt>" in page
    assert 'data-fact="firmwareStatus">InstallationFailed</dd>' in page
