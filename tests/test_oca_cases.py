"""The OCA test cases of the OCPP 1.6 Compliancy Testing Tool for the Reservation, Remote
Trigger and Local Auth List Management profiles with Voltaro as the system under test (the
``_CSMS`` cases), one test each, named after its case.

Where the cases come from: "OCPP 1.6 - Compliancy Testing Tool - Test Case Document" (Trial
2025-06, Draft), System Under Test: Central System, pages 163-173, as published one case a
page at https://www.ocpplab.com/docs/protocols/ocpp-1-6/test-cases/ (e.g. ``tc-046-csms``).
Reservation: TC_046 (transaction on a reserved connector), TC_047 (expire), TC_048_1/2/3
(Faulted, Occupied, Unavailable), TC_049 (reservation of the charge point, connector 0),
TC_051 (cancel), TC_052 (cancel rejected), TC_053 (used with the parentIdTag); Remote
Trigger: TC_054 (trigger message), TC_055 (trigger message rejected). (TC_050_x, "Reservation
of a Charge Point - Faulted/Occupied/Unavailable", are Charge Point cases only; TC_056 on is
Smart Charging.) The reusable state "Charging" is TC_004_1's: Authorize, StartTransaction
(idTagInfo Accepted), StatusNotification Charging. Local Auth List Management (section
3.14; TC_042_2 is on page 154, TC_043_5 on page 157): TC_042_1 (Get Local List Version, not
supported: -1), TC_042_2 (empty: 0), TC_043_1 (Send Local Authorization List answered
NotSupported), TC_043_3 (Failed), TC_043_4 (Full), TC_043_5 (Differential of one idToken
added); TC_043_2 (VersionMismatch) is a Charge Point case only. Where the Charge Point side
of a case allows a CALLERROR NotSupported instead of the answer (TC_042_1, TC_043_1), that
is played too. The cases run against a Voltaro with ``VOLTARO_LOCAL_LISTS=off`` (as the
README tells a test tool's user), but TC_043_5, whose Differential is Voltaro's own after a
tag is added through the API.

The operator's side of each case goes through the admin API over HTTP; the charger is the
`ocpp` package's v16 ChargePoint behaving as the case prescribes. Every frame on the WebSocket
is recorded from the charger's side, and each test checks the case's messages in the case's
order and the case's tool validations, then what Voltaro recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from ocpp.exceptions import NotSupportedError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from tests.admin.conftest import Live, live_settings
from tests.e2e import start_voltaro_with_loop
from tests.threaded import run_asyncio, trio_in_thread
from voltaro.central.local_list_entries import apply_update
from voltaro.store.testing import TestPostgres


def voltaro_with(
    pg_server: TestPostgres, tmp_path_factory: pytest.TempPathFactory, **changes: Any
) -> Iterator[Live]:
    url = pg_server.new_database()
    data_dir = tmp_path_factory.mktemp("oca") / "data"
    settings = dataclasses.replace(live_settings(url, data_dir), **changes)
    try:
        with trio_in_thread(
            lambda nursery: nursery.start(start_voltaro_with_loop, settings)
        ) as voltaro:
            token = (data_dir / "admin-token").read_text().strip()
            yield Live(voltaro, voltaro.admin_url or "", token)
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="module")
def live(pg_server: TestPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Voltaro as the README tells a test tool's user to run it (``VOLTARO_LOCAL_LISTS=off``):
    what is on the wire is what the case's operator asked for (else every charger gets
    Voltaro's own GetLocalListVersion some seconds after its boot, in the middle of a case
    that takes that long)."""
    yield from voltaro_with(pg_server, tmp_path_factory, local_lists="off")


@pytest.fixture(scope="module")
def syncing_live(
    pg_server: TestPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """Voltaro keeping the lists in sync by itself (the default), changes debounced briefly."""
    yield from voltaro_with(pg_server, tmp_path_factory, local_list_debounce=0.3)


CONNECTOR = 1  # <Configured ConnectorId>
VALID_TAG = "OCA-VALID"  # <Configured Valid IdTag>
VALID_TAG_2 = "OCA-VALID-2"  # <Configured Valid IdTag 2>, of the same parent
PARENT = "OCA-PARENT"  # <Configured ParentId>
EXPIRY_OFFSET = 2  # <Configured Expiry Date Offset>, seconds
WAIT = 20.0  # the most any one step may take here (a bound, never asserted)

Step = tuple[str, str]
"""(who sends it, message): ("CS", "ReserveNow.req"), ("CP", "ReserveNow.conf"), ..."""


def later(seconds: float = 3600) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Wire:
    """The charger's WebSocket, writing down every frame both ways in wire order as the case
    document names them (``Action.req``, ``Action.conf``, ``Action.error``)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.frames: list[tuple[str, str, Any]] = []
        self._calls: dict[tuple[str, str], str] = {}

    async def send(self, text: str) -> None:
        self._note("CP", text)
        await self.connection.send(text)

    async def recv(self) -> str:
        text: str = await self.connection.recv()
        self._note("CS", text)
        return text

    def _note(self, sender: str, text: str) -> None:
        frame = json.loads(text)
        if frame[0] == 2:
            self._calls[(sender, frame[1])] = frame[2]
            self.frames.append((sender, f"{frame[2]}.req", frame[3]))
            return
        caller = "CS" if sender == "CP" else "CP"
        action = self._calls.get((caller, frame[1]), "?")
        kind = "conf" if frame[0] == 3 else "error"
        self.frames.append((sender, f"{action}.{kind}", frame[2]))

    def steps(self, start: int = 0) -> list[Step]:
        return [(sender, message) for sender, message, _ in self.frames[start:]]

    def payload(self, message: str, nth: int = 0, start: int = 0) -> Any:
        found = [p for _, m, p in self.frames[start:] if m == message]
        return found[nth]


class OcaCharger(ChargePoint):  # type: ignore[misc]
    """A charger as the cases prescribe: one connector in use (the others set Unavailable by
    the cases' preparations, so it reports a reservation of connector 0 on it), reservations
    held and reported, expired at their expiryDate, cancelled; availability changes reported;
    TriggerMessage answered (``trigger_answer``) and the message sent when Accepted."""

    def __init__(self, charge_point_id: str, connection: Wire) -> None:
        super().__init__(charge_point_id, connection)
        self.wire = connection
        self.reserve_answer = "Accepted"
        self.trigger_answer = "Accepted"
        self.reserved: dict[int, dict[str, Any]] = {}
        self.cancelled = False
        self.tasks: list[asyncio.Task[None]] = []

    @on(Action.reserve_now)
    def on_reserve_now(self, **request: Any) -> Any:
        if self.reserve_answer == "Accepted":
            self.reserved[request["reservation_id"]] = request
        return call_result.ReserveNow(status=self.reserve_answer)

    @after(Action.reserve_now)
    async def report_reserved(self, reservation_id: int, expiry_date: str, **_: Any) -> None:
        if self.reserve_answer != "Accepted":
            return
        await self.status(CONNECTOR, "Reserved")
        self.tasks.append(asyncio.create_task(self._expire(reservation_id, expiry_date)))

    async def _expire(self, reservation_id: int, expiry_date: str) -> None:
        expiry = datetime.fromisoformat(expiry_date.replace("Z", "+00:00"))
        await asyncio.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()))
        if self.reserved.pop(reservation_id, None) is not None:
            await self.status(CONNECTOR, "Available")

    @on(Action.cancel_reservation)
    def on_cancel(self, reservation_id: int) -> Any:
        held = self.reserved.pop(reservation_id, None)
        self.cancelled = held is not None
        return call_result.CancelReservation(status="Accepted" if held else "Rejected")

    @after(Action.cancel_reservation)
    async def report_cancelled(self, reservation_id: int) -> None:
        if self.cancelled:
            await self.status(CONNECTOR, "Available")

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str) -> Any:
        return call_result.ChangeAvailability(status="Accepted")

    @after(Action.change_availability)
    async def report_availability(self, connector_id: int, type: str) -> None:
        await self.status(connector_id, "Unavailable" if type == "Inoperative" else "Available")

    @on(Action.trigger_message)
    def on_trigger(self, requested_message: str, connector_id: int | None = None) -> Any:
        return call_result.TriggerMessage(status=self.trigger_answer)

    @after(Action.trigger_message)
    async def send_triggered(self, requested_message: str, connector_id: int | None = None) -> None:
        if self.trigger_answer != "Accepted":
            return
        connector = CONNECTOR if connector_id is None else connector_id
        message = {
            "BootNotification": call.BootNotification(
                charge_point_model="OCA", charge_point_vendor="Test"
            ),
            "DiagnosticsStatusNotification": call.DiagnosticsStatusNotification(status="Idle"),
            "FirmwareStatusNotification": call.FirmwareStatusNotification(status="Idle"),
            "Heartbeat": call.Heartbeat(),
            "MeterValues": call.MeterValues(
                connector_id=connector,
                meter_value=[
                    {
                        "timestamp": now(),
                        "sampledValue": [
                            {
                                "value": "1500",
                                "context": "Trigger",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            }
                        ],
                    }
                ],
            ),
            "StatusNotification": call.StatusNotification(
                connector_id=connector, error_code="NoError", status="Available"
            ),
        }[requested_message]
        await self.call(message)

    async def status(self, connector_id: int, status: str) -> None:
        await self.call(
            call.StatusNotification(connector_id=connector_id, error_code="NoError", status=status)
        )

    async def charging(self, id_tag: str, reservation_id: int | None) -> Any:
        """The reusable state Charging (TC_004_1) at a reserved connector, as TC_046_1_CS
        orders it: Authorize, Preparing, StartTransaction, Charging."""
        authorized = await self.call(call.Authorize(id_tag=id_tag))
        assert authorized.id_tag_info["status"] == "Accepted"
        await self.status(CONNECTOR, "Preparing")
        started = await self.call(
            call.StartTransaction(
                connector_id=CONNECTOR,
                id_tag=id_tag,
                meter_start=0,
                timestamp=now(),
                reservation_id=reservation_id,
            )
        )
        await self.status(CONNECTOR, "Charging")
        return started


Scenario = Callable[[httpx.AsyncClient, OcaCharger], Awaitable[Any]]


def run(
    live: Live,
    charge_point_id: str,
    scenario: Scenario,
    make: Callable[[str, Wire], OcaCharger] = OcaCharger,
) -> Any:
    """Connect the charger (``make``: its class; booted, its connector Available), then play
    the scenario."""

    async def main() -> Any:
        async with websockets.connect(
            live.ws_url(charge_point_id), subprotocols=["ocpp1.6"]
        ) as connection:
            charger = make(charge_point_id, Wire(connection))
            listener = asyncio.create_task(charger.start())
            try:
                await charger.call(
                    call.BootNotification(charge_point_model="OCA", charge_point_vendor="Test")
                )
                await charger.status(CONNECTOR, "Available")
                async with live.async_client() as http:
                    outcome = await scenario(http, charger)
                    # every status the charger reported was a transition section 4.9 allows
                    history = await http.get(
                        f"/api/v1/charge-points/{charge_point_id}/status-history"
                    )
                    assert [h for h in history.json()["items"] if h["unexpected"]] == []
                    return outcome
            finally:
                for task in [*charger.tasks, listener]:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    return run_asyncio(main())


async def wire_has(charger: OcaCharger, start: int, count: int) -> list[Step]:
    """The steps since ``start`` once there are ``count`` of them (or when the wait ends)."""
    deadline = time.monotonic() + WAIT
    while len(charger.wire.frames) - start < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return charger.wire.steps(start)


async def command(http: httpx.AsyncClient, charge_point_id: str, action: str, **body: Any) -> Any:
    response = await http.post(
        f"/api/v1/charge-points/{charge_point_id}/commands/{action}", json=body
    )
    assert response.status_code == 200, response.text
    return response.json()


async def reserve(http: httpx.AsyncClient, charge_point_id: str, **body: Any) -> tuple[str, int]:
    body = {"connectorId": CONNECTOR, "idTag": VALID_TAG, "expiryDate": later(), **body}
    answer = await command(http, charge_point_id, "ReserveNow", **body)
    return answer["result"]["status"], answer["allocated"]["reservationId"]


async def reservation(http: httpx.AsyncClient, reservation_id: int, status: str) -> dict[str, Any]:
    """The reservation once it has ``status`` (or as it is when the wait ends)."""
    deadline = time.monotonic() + WAIT
    while True:
        listed = (await http.get("/api/v1/reservations", params={"limit": 1000})).json()
        found: dict[str, Any] = next(
            r for r in listed["items"] if r["reservationId"] == reservation_id
        )
        if found["status"] == status or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def connector_status(http: httpx.AsyncClient, charge_point_id: str, status: str) -> str:
    deadline = time.monotonic() + WAIT
    while True:
        detail = (await http.get(f"/api/v1/charge-points/{charge_point_id}")).json()
        seen = {c["connectorId"]: c["status"] for c in detail["connectors"]}.get(CONNECTOR, "")
        if seen == status or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.05)


def tags(live: Live) -> None:
    with live.client() as api:
        for tag, body in (
            (PARENT, {}),
            (VALID_TAG, {"parentIdTag": PARENT}),
            (VALID_TAG_2, {"parentIdTag": PARENT}),
        ):
            assert api.put(f"/api/v1/id-tags/{tag}", json=body).status_code < 300


RESERVED: list[Step] = [
    ("CS", "ReserveNow.req"),
    ("CP", "ReserveNow.conf"),
    ("CP", "StatusNotification.req"),
    ("CS", "StatusNotification.conf"),
]
CHARGING: list[Step] = [
    ("CP", "Authorize.req"),
    ("CS", "Authorize.conf"),
    ("CP", "StatusNotification.req"),
    ("CS", "StatusNotification.conf"),
    ("CP", "StartTransaction.req"),
    ("CS", "StartTransaction.conf"),
    ("CP", "StatusNotification.req"),
    ("CS", "StatusNotification.conf"),
]
REFUSED: list[Step] = [("CS", "ReserveNow.req"), ("CP", "ReserveNow.conf")]


# ---- Reservation ------------------------------------------------------------------------


def test_TC_046_CSMS_reservation_of_a_connector_transaction(live: Live) -> None:
    tags(live)

    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        start = len(charger.wire.frames)
        status, reservation_id = await reserve(http, "OCA-046")
        await wire_has(charger, start, len(RESERVED))
        started = await charger.charging(VALID_TAG, reservation_id)
        steps = await wire_has(charger, start, len(RESERVED) + len(CHARGING))
        wire = charger.wire
        return [
            status,
            reservation_id,
            steps,
            wire.payload("ReserveNow.req", start=start),
            wire.payload("StatusNotification.req", start=start),
            wire.payload("StartTransaction.req", start=start),
            started,
            await reservation(http, reservation_id, "Used"),
        ]

    status, reservation_id, steps, reserve_req, reserved, start_req, started, record = run(
        live, "OCA-046", scenario
    )
    assert steps == RESERVED + CHARGING
    # Central System side, step 1
    assert reserve_req["connectorId"] == CONNECTOR and reserve_req["idTag"] == VALID_TAG
    assert reserve_req["reservationId"] == reservation_id
    assert status == "Accepted" and reserved["status"] == "Reserved"
    # step 5 (reusable state Charging): the reservationId is step 1's; Voltaro accepts it
    assert start_req["reservationId"] == reservation_id
    assert started.id_tag_info["status"] == "Accepted"
    assert record["status"] == "Used" and record["transactionId"] == started.transaction_id


def test_TC_047_CSMS_reservation_of_a_connector_expire(live: Live) -> None:
    tags(live)

    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        start = len(charger.wire.frames)
        expiry = later(EXPIRY_OFFSET)
        status, reservation_id = await reserve(http, "OCA-047", expiryDate=expiry)
        expected = len(RESERVED) + 2  # [the driver does not come] Available
        steps = await wire_has(charger, start, expected)
        return [
            expiry,
            status,
            steps,
            charger.wire.payload("ReserveNow.req", start=start),
            [charger.wire.payload("StatusNotification.req", n, start)["status"] for n in (0, 1)],
            await reservation(http, reservation_id, "Expired"),
            await connector_status(http, "OCA-047", "Available"),
        ]

    expiry, status, steps, reserve_req, statuses, record, connector = run(live, "OCA-047", scenario)
    assert steps == [*RESERVED, ("CP", "StatusNotification.req"), ("CS", "StatusNotification.conf")]
    assert reserve_req["connectorId"] == CONNECTOR and reserve_req["idTag"] == VALID_TAG
    assert reserve_req["expiryDate"] == expiry  # now plus the configured offset
    assert status == "Accepted" and statuses == ["Reserved", "Available"]
    assert record["status"] == "Expired" and connector == "Available"


def test_TC_048_1_CSMS_reservation_of_a_connector_faulted(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        charger.reserve_answer = "Faulted"
        start = len(charger.wire.frames)
        status, reservation_id = await reserve(http, "OCA-048-1")
        await asyncio.sleep(0.2)  # time for anything that should not come
        return [
            status,
            charger.wire.steps(start),
            charger.wire.payload("ReserveNow.req", start=start),
            await reservation(http, reservation_id, "Faulted"),
        ]

    status, steps, reserve_req, record = run(live, "OCA-048-1", scenario)
    assert steps == REFUSED
    assert reserve_req["connectorId"] == CONNECTOR and reserve_req["idTag"] == VALID_TAG
    assert status == "Faulted" and record["status"] == "Faulted"


def test_TC_048_2_CSMS_reservation_of_a_connector_occupied(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        start = len(charger.wire.frames)
        await charger.status(CONNECTOR, "Preparing")  # [EV driver plugs in cable]
        charger.reserve_answer = "Occupied"
        status, reservation_id = await reserve(http, "OCA-048-2")
        await asyncio.sleep(0.2)
        return [
            status,
            charger.wire.steps(start),
            charger.wire.payload("StatusNotification.req", start=start),
            charger.wire.payload("ReserveNow.req", start=start),
            await reservation(http, reservation_id, "Occupied"),
        ]

    status, steps, preparing, reserve_req, record = run(live, "OCA-048-2", scenario)
    assert steps == [("CP", "StatusNotification.req"), ("CS", "StatusNotification.conf"), *REFUSED]
    assert preparing["status"] == "Preparing" and preparing["connectorId"] == CONNECTOR
    assert reserve_req["connectorId"] == preparing["connectorId"]  # the connector of step 1
    assert reserve_req["idTag"] == VALID_TAG
    assert status == "Occupied" and record["status"] == "Occupied"


def test_TC_048_3_CSMS_reservation_of_a_connector_unavailable(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        start = len(charger.wire.frames)
        changed = await command(
            http, "OCA-048-3", "ChangeAvailability", connectorId=CONNECTOR, type="Inoperative"
        )
        await wire_has(charger, start, 4)
        charger.reserve_answer = "Unavailable"
        status, reservation_id = await reserve(http, "OCA-048-3")
        await asyncio.sleep(0.2)
        wire = charger.wire
        return [
            changed,
            status,
            wire.steps(start),
            wire.payload("ChangeAvailability.req", start=start),
            wire.payload("StatusNotification.req", start=start),
            wire.payload("ReserveNow.req", start=start),
            await reservation(http, reservation_id, "Unavailable"),
            await connector_status(http, "OCA-048-3", "Unavailable"),
        ]

    changed, status, steps, change_req, unavailable, reserve_req, record, connector = run(
        live, "OCA-048-3", scenario
    )
    assert steps == [
        ("CS", "ChangeAvailability.req"),
        ("CP", "ChangeAvailability.conf"),
        ("CP", "StatusNotification.req"),
        ("CS", "StatusNotification.conf"),
        *REFUSED,
    ]
    assert change_req == {"connectorId": CONNECTOR, "type": "Inoperative"}
    assert changed == {"result": {"status": "Accepted"}}
    assert unavailable["status"] == "Unavailable" and unavailable["connectorId"] == CONNECTOR
    assert reserve_req["connectorId"] == CONNECTOR and reserve_req["idTag"] == VALID_TAG
    assert status == "Unavailable" and record["status"] == "Unavailable"
    assert connector == "Unavailable"


def test_TC_049_CSMS_reservation_of_a_charge_point_transaction(live: Live) -> None:
    tags(live)

    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        start = len(charger.wire.frames)
        status, reservation_id = await reserve(http, "OCA-049", connectorId=0)
        steps = await wire_has(charger, start, len(RESERVED))
        detail = (await http.get("/api/v1/charge-points/OCA-049")).json()
        return [
            status,
            reservation_id,
            steps,
            charger.wire.payload("ReserveNow.req", start=start),
            charger.wire.payload("StatusNotification.req", start=start),
            detail,
            await reservation(http, reservation_id, "Accepted"),
        ]

    status, reservation_id, steps, reserve_req, reserved, detail, record = run(
        live, "OCA-049", scenario
    )
    assert steps == RESERVED
    assert reserve_req["connectorId"] == 0
    assert reserved["status"] == "Reserved"
    # Voltaro accepts the reservation for the right idTag and reservationId
    assert status == "Accepted" and record["status"] == "Accepted"
    assert (record["idTag"], record["connectorId"]) == (VALID_TAG, 0)
    assert [(a["reservationId"], a["connectorId"]) for a in detail["activeReservations"]] == [
        (reservation_id, 0)
    ]
    statuses = {c["connectorId"]: c["status"] for c in detail["connectors"]}
    assert statuses[CONNECTOR] == "Reserved"


def test_TC_051_CSMS_cancel_reservation(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        start = len(charger.wire.frames)
        status, reservation_id = await reserve(http, "OCA-051")
        await wire_has(charger, start, len(RESERVED))
        cancelled = await command(
            http, "OCA-051", "CancelReservation", reservationId=reservation_id
        )
        steps = await wire_has(charger, start, len(RESERVED) + 4)
        wire = charger.wire
        return [
            status,
            reservation_id,
            cancelled,
            steps,
            wire.payload("ReserveNow.req", start=start),
            wire.payload("CancelReservation.req", start=start),
            [wire.payload("StatusNotification.req", n, start)["status"] for n in (0, 1)],
            await reservation(http, reservation_id, "Cancelled"),
            await connector_status(http, "OCA-051", "Available"),
        ]

    (status, reservation_id, cancelled, steps, reserve_req, cancel_req, statuses, record, conn) = (
        run(live, "OCA-051", scenario)
    )
    assert steps == [
        *RESERVED,
        ("CS", "CancelReservation.req"),
        ("CP", "CancelReservation.conf"),
        ("CP", "StatusNotification.req"),
        ("CS", "StatusNotification.conf"),
    ]
    assert reserve_req["connectorId"] != 0
    assert cancel_req == {"reservationId": reservation_id}  # step 1's
    assert status == "Accepted" and cancelled == {"result": {"status": "Accepted"}}
    assert statuses == ["Reserved", "Available"]
    assert record["status"] == "Cancelled" and conn == "Available"


def test_TC_052_CSMS_cancel_reservation_rejected(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        start = len(charger.wire.frames)
        status, reservation_id = await reserve(http, "OCA-052")
        await wire_has(charger, start, len(RESERVED))
        charger.reserved.clear()  # Manual Action: cancel the reservation on the Charge Point
        cancelled = await command(
            http, "OCA-052", "CancelReservation", reservationId=reservation_id
        )
        await asyncio.sleep(0.2)
        return [
            status,
            cancelled,
            charger.wire.steps(start),
            await reservation(http, reservation_id, "Accepted"),
        ]

    status, cancelled, steps, record = run(live, "OCA-052", scenario)
    assert steps == [*RESERVED, ("CS", "CancelReservation.req"), ("CP", "CancelReservation.conf")]
    assert status == "Accepted" and cancelled == {"result": {"status": "Rejected"}}
    # processed: the rejection is in the record's history, the reservation is not Cancelled
    assert record["status"] == "Accepted"
    assert [h["status"] for h in record["history"]][-1] == "CancelRejected"


def test_TC_053_CSMS_use_a_reserved_connector_with_parent_id_tag(live: Live) -> None:
    tags(live)

    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        start = len(charger.wire.frames)
        status, reservation_id = await reserve(http, "OCA-053", parentIdTag=PARENT)
        await wire_has(charger, start, len(RESERVED))
        # [a card of the same parent, not the reserved idTag]
        started = await charger.charging(VALID_TAG_2, reservation_id)
        steps = await wire_has(charger, start, len(RESERVED) + len(CHARGING))
        wire = charger.wire
        return [
            status,
            reservation_id,
            steps,
            wire.payload("ReserveNow.req", start=start),
            wire.payload("Authorize.conf", start=start),
            started,
            await reservation(http, reservation_id, "Used"),
        ]

    status, reservation_id, steps, reserve_req, authorized, started, record = run(
        live, "OCA-053", scenario
    )
    assert steps == RESERVED + CHARGING
    assert reserve_req["connectorId"] != 0
    assert (reserve_req["idTag"], reserve_req["parentIdTag"]) == (VALID_TAG, PARENT)
    assert reserve_req["reservationId"] == reservation_id
    assert authorized["idTagInfo"]["parentIdTag"] == PARENT
    assert status == "Accepted" and started.id_tag_info["status"] == "Accepted"
    assert record["status"] == "Used" and record["transactionId"] == started.transaction_id


# ---- Remote Trigger ---------------------------------------------------------------------


def test_TC_054_CSMS_trigger_message(live: Live) -> None:
    requested = [
        "MeterValues",
        "Heartbeat",
        "StatusNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
    ]

    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        start = len(charger.wire.frames)
        answers = []
        for n, message in enumerate(requested, 1):
            answers.append(
                await command(http, "OCA-054", "TriggerMessage", requestedMessage=message)
            )
            await wire_has(charger, start, 4 * n)
        detail = (await http.get("/api/v1/charge-points/OCA-054")).json()
        deadline = time.monotonic() + WAIT  # the notifications reach the log with a batch
        while not (detail["firmwareStatus"] and detail["diagnosticsStatus"]):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
            detail = (await http.get("/api/v1/charge-points/OCA-054")).json()
        wire = charger.wire
        triggers = [p for _, m, p in wire.frames[start:] if m == "TriggerMessage.req"]
        return [answers, wire.steps(start), triggers, wire.frames[start:], detail]

    answers, steps, triggers, frames, detail = run(live, "OCA-054", scenario)
    expected: list[Step] = []
    for message in requested:
        expected += [
            ("CS", "TriggerMessage.req"),
            ("CP", "TriggerMessage.conf"),
            ("CP", f"{message}.req"),
            ("CS", f"{message}.conf"),
        ]
    assert steps == expected
    assert [t["requestedMessage"] for t in triggers] == requested
    assert answers == [{"result": {"status": "Accepted"}}] * len(requested)
    confs = {m: p for _, m, p in frames if m.endswith(".conf")}
    assert confs["MeterValues.conf"] == {} and confs["StatusNotification.conf"] == {}
    assert confs["Heartbeat.conf"]["currentTime"].endswith("Z")
    assert detail["firmwareStatus"] == "Idle" and detail["diagnosticsStatus"] == "Idle"


def test_TC_055_CSMS_trigger_message_rejected(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: OcaCharger) -> Any:
        charger.trigger_answer = "Rejected"
        start = len(charger.wire.frames)
        answer = await command(http, "OCA-055", "TriggerMessage", requestedMessage="MeterValues")
        await asyncio.sleep(0.2)  # time for a MeterValues that must not come
        return [answer, charger.wire.steps(start), charger.wire.payload("TriggerMessage.req")]

    answer, steps, trigger = run(live, "OCA-055", scenario)
    assert steps == [("CS", "TriggerMessage.req"), ("CP", "TriggerMessage.conf")]
    assert trigger["requestedMessage"] == "MeterValues"
    assert answer == {"result": {"status": "Rejected"}}  # processed: the operator sees it


# ---- Local Auth List Management ---------------------------------------------------------


class ListCharger(OcaCharger):
    """A charger with a Local Authorization List that answers as the cases prescribe:
    ``version`` is what GetLocalListVersion says (-1: no list here), or ``version_error``
    answers it CALLERROR NotSupported; ``list_answer`` answers SendLocalList (or
    ``list_error``: CALLERROR NotSupported), and an accepted update is applied to
    ``entries``."""

    def __init__(self, charge_point_id: str, connection: Wire) -> None:
        super().__init__(charge_point_id, connection)
        self.version = 0
        self.version_error = False
        self.list_answer = "Accepted"
        self.list_error = False
        self.entries: dict[str, Any] = {}
        self.send_max = 20  # its SendLocalListMaxLength

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self) -> Any:
        if self.version_error:
            raise NotSupportedError("Local Auth List Management is not supported")
        return call_result.GetLocalListVersion(list_version=self.version)

    @on(Action.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str, **_: Any) -> Any:
        if self.list_error:
            raise NotSupportedError("Local Auth List Management is not supported")
        if self.list_answer == "Accepted":
            update = self.wire.payload("SendLocalList.req", -1)  # as sent, camelCase
            self.entries = apply_update(self.entries, update)
            self.version = list_version
        return call_result.SendLocalList(status=self.list_answer)

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        known = {"LocalAuthListMaxLength": "100", "SendLocalListMaxLength": str(self.send_max)}
        return call_result.GetConfiguration(
            configuration_key=[
                {"key": name, "readonly": True, "value": value}
                for name, value in known.items()
                if not key or name in key
            ]
        )


async def post(
    http: httpx.AsyncClient, charge_point_id: str, action: str, **body: Any
) -> httpx.Response:
    return await http.post(f"/api/v1/charge-points/{charge_point_id}/commands/{action}", json=body)


async def local_list(http: httpx.AsyncClient, charge_point_id: str, **wanted: Any) -> Any:
    """What Voltaro records of the charger's list, once it has ``wanted`` (or as it is when
    the wait ends: an answer is recorded after the charger sent it)."""
    deadline = time.monotonic() + WAIT
    while True:
        page = await http.get("/api/v1/local-lists", params={"chargePointId": charge_point_id})
        item: dict[str, Any] = page.json()["items"][0]
        if all(item[k] == v for k, v in wanted.items()) or time.monotonic() > deadline:
            return item
        await asyncio.sleep(0.05)


LIST_SENT: list[Step] = [("CS", "SendLocalList.req"), ("CP", "SendLocalList.conf")]
VERSION_ASKED: list[Step] = [("CS", "GetLocalListVersion.req"), ("CP", "GetLocalListVersion.conf")]
FULL = {
    "listVersion": 1,
    "updateType": "Full",
    "localAuthorizationList": [
        {"idTag": VALID_TAG, "idTagInfo": {"status": "Accepted"}},
        {"idTag": VALID_TAG_2, "idTagInfo": {"status": "Accepted", "parentIdTag": PARENT}},
    ],
}


def test_TC_042_1_CSMS_get_local_list_version_not_supported(live: Live) -> None:
    """The charger answers -1, or (the Charge Point case allows it) a CALLERROR NotSupported;
    Voltaro records either as a charger without lists."""

    async def scenario(http: httpx.AsyncClient, charger: ListCharger) -> Any:
        charger.version = -1
        start = len(charger.wire.frames)
        answer = await command(http, "OCA-042-1", "GetLocalListVersion")
        await asyncio.sleep(0.2)  # time for anything that should not come
        return [answer, charger.wire.steps(start), await local_list(http, "OCA-042-1")]

    async def refusing(http: httpx.AsyncClient, charger: ListCharger) -> Any:
        charger.version_error = True
        start = len(charger.wire.frames)
        answer = await post(http, "OCA-042-1E", "GetLocalListVersion")
        record = await local_list(http, "OCA-042-1E", state="not_supported")
        return [answer.status_code, answer.json(), charger.wire.steps(start), record]

    answer, steps, record = run(live, "OCA-042-1", scenario, ListCharger)
    assert steps == VERSION_ASKED
    assert answer == {"result": {"listVersion": -1}}
    assert (record["state"], record["reportedVersion"]) == ("not_supported", -1)

    code, problem, steps, record = run(live, "OCA-042-1E", refusing, ListCharger)
    assert steps == [("CS", "GetLocalListVersion.req"), ("CP", "GetLocalListVersion.error")]
    assert (code, problem["code"]) == (502, "NotSupported")
    assert (record["state"], record["lastAnswer"]) == ("not_supported", "CALLERROR NotSupported")


def test_TC_042_2_CSMS_get_local_list_version_empty(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: ListCharger) -> Any:
        start = len(charger.wire.frames)
        answer = await command(http, "OCA-042-2", "GetLocalListVersion")
        await asyncio.sleep(0.2)
        return [answer, charger.wire.steps(start), await local_list(http, "OCA-042-2")]

    answer, steps, record = run(live, "OCA-042-2", scenario, ListCharger)
    assert steps == VERSION_ASKED
    assert answer == {"result": {"listVersion": 0}}
    assert (record["reportedVersion"], record["state"]) == (0, "unknown")


def send_list_case(
    live: Live, charge_point_id: str, list_answer: str, **wanted: Any
) -> tuple[Any, list[Step], Any, Any]:
    """The operator sends :data:`FULL`; the charger answers ``list_answer``. Returns the
    API's answer, the steps, the request as sent and what Voltaro then records."""

    async def scenario(http: httpx.AsyncClient, charger: ListCharger) -> Any:
        charger.list_answer = list_answer
        start = len(charger.wire.frames)
        answer = await command(http, charge_point_id, "SendLocalList", **FULL)
        await asyncio.sleep(0.2)  # time for anything that should not come (no retry here)
        return [
            answer,
            charger.wire.steps(start),
            charger.wire.payload("SendLocalList.req", start=start),
            await local_list(http, charge_point_id, **wanted),
        ]

    answer, steps, request, record = run(live, charge_point_id, scenario, ListCharger)
    return answer, steps, request, record


def test_TC_043_1_CSMS_send_local_authorization_list_not_supported(live: Live) -> None:
    """NotSupported, or (the Charge Point case allows it) a CALLERROR NotSupported: Voltaro
    records either as a charger without lists."""
    answer, steps, request, record = send_list_case(
        live, "OCA-043-1", "NotSupported", lastAnswer="NotSupported"
    )
    assert steps == LIST_SENT
    assert request["updateType"] == "Full"
    assert answer == {"result": {"status": "NotSupported"}}
    assert (record["state"], record["inSync"]) == ("not_supported", False)

    async def refusing(http: httpx.AsyncClient, charger: ListCharger) -> Any:
        charger.list_error = True
        start = len(charger.wire.frames)
        answer = await post(http, "OCA-043-1E", "SendLocalList", **FULL)
        record = await local_list(http, "OCA-043-1E", state="not_supported")
        return [answer.status_code, answer.json(), charger.wire.steps(start), record]

    code, problem, steps, record = run(live, "OCA-043-1E", refusing, ListCharger)
    assert steps == [("CS", "SendLocalList.req"), ("CP", "SendLocalList.error")]
    assert (code, problem["code"]) == (502, "NotSupported")
    assert (record["state"], record["lastAnswer"]) == ("not_supported", "CALLERROR NotSupported")


def test_TC_043_3_CSMS_send_local_authorization_list_failed(live: Live) -> None:
    answer, steps, request, record = send_list_case(
        live, "OCA-043-3", "Failed", lastAnswer="Failed"
    )
    assert steps == LIST_SENT
    assert request["updateType"] == "Full"
    assert answer == {"result": {"status": "Failed"}}
    assert (record["state"], record["version"], record["inSync"]) == ("failed", None, False)


def test_TC_043_4_CSMS_send_local_authorization_list_full(live: Live) -> None:
    answer, steps, request, record = send_list_case(live, "OCA-043-4", "Accepted", state="synced")
    assert steps == LIST_SENT
    assert request["updateType"] == "Full"
    assert request["localAuthorizationList"]  # at least one IdToken
    assert all("idTagInfo" in entry for entry in request["localAuthorizationList"])
    assert answer == {"result": {"status": "Accepted"}}
    assert (record["state"], record["version"], record["entries"]) == ("synced", 1, 2)


def test_TC_043_5_CSMS_send_local_authorization_list_differential(syncing_live: Live) -> None:
    """Memory state: the initial list set with a Full, Voltaro's own when the charger boots
    (after asking its version). The manual action, "trigger the Central System to send a
    Differential for an idToken not already part of the list", is adding the tag through
    the API: Voltaro sends a Differential of that tag alone, a version further."""
    with syncing_live.client() as api:
        assert api.put(f"/api/v1/id-tags/{VALID_TAG}", json={}).is_success

    async def scenario(http: httpx.AsyncClient, charger: ListCharger) -> Any:
        # steps 1 and 2 (optional in the case): Voltaro's own check, before the initial Full
        initial = await local_list(http, "OCA-043-5", state="synced", version=1)
        start = len(charger.wire.frames)
        assert (await http.put(f"/api/v1/id-tags/{VALID_TAG_2}", json={})).is_success
        steps = await wire_has(charger, start, len(LIST_SENT))
        await asyncio.sleep(0.2)
        return [
            charger.wire.steps(),
            initial,
            steps,
            charger.wire.payload("SendLocalList.req", start=start),
            dict(charger.entries),
            await local_list(http, "OCA-043-5", version=2, inSync=True),
        ]

    everything, initial, steps, request, entries, record = run(
        syncing_live, "OCA-043-5", scenario, ListCharger
    )
    assert everything == [
        ("CP", "BootNotification.req"),
        ("CS", "BootNotification.conf"),
        ("CP", "StatusNotification.req"),
        ("CS", "StatusNotification.conf"),
        *VERSION_ASKED,  # steps 1 and 2, Voltaro's own check
        ("CS", "GetConfiguration.req"),  # the list's size limits, once
        ("CP", "GetConfiguration.conf"),
        *LIST_SENT,  # the initial Full
        *LIST_SENT,  # step 3: the Differential
    ]
    assert initial["entries"] == 1
    assert steps == LIST_SENT
    assert request["updateType"] == "Differential"
    assert request["localAuthorizationList"] == [
        {"idTag": VALID_TAG_2, "idTagInfo": {"status": "Accepted"}}
    ]
    assert request["listVersion"] > initial["version"]
    assert entries == {tag: {"status": "Accepted"} for tag in (VALID_TAG, VALID_TAG_2)}
    assert record["inSync"] is True


def test_TC_043_4_CSMS_send_local_authorization_list_full_voltaros_list(live: Live) -> None:
    """The same case with the list Voltaro computes from its id tag table, the operator
    writing no payload (a SendLocalList without listVersion); a charger that takes fewer
    entries in one message than the list has is refused it (the automatic updates, off here,
    would send the rest), nothing sent."""
    tags(live)

    async def scenario(http: httpx.AsyncClient, charger: ListCharger) -> Any:
        start = len(charger.wire.frames)
        answer = await command(http, "OCA-043-4V", "SendLocalList", updateType="Full")
        await asyncio.sleep(0.2)
        return [
            answer,
            charger.wire.steps(start),
            charger.wire.payload("SendLocalList.req", start=start),
            dict(charger.entries),
            await local_list(http, "OCA-043-4V", state="synced", inSync=True),
        ]

    answer, steps, request, entries, record = run(live, "OCA-043-4V", scenario, ListCharger)
    assert steps == LIST_SENT
    assert request["updateType"] == "Full"
    assert [entry["idTag"] for entry in request["localAuthorizationList"]] == [
        PARENT,
        VALID_TAG,
        VALID_TAG_2,
    ]
    assert all("idTagInfo" in entry for entry in request["localAuthorizationList"])
    assert answer == {"result": {"status": "Accepted"}, "allocated": {"listVersion": 1}}
    assert entries[VALID_TAG] == {"parentIdTag": PARENT, "status": "Accepted"}
    assert (record["version"], record["entries"], record["inSync"]) == (1, 3, True)

    async def small(http: httpx.AsyncClient, charger: ListCharger) -> Any:
        charger.send_max = 2
        keys = ["SendLocalListMaxLength", "LocalAuthListMaxLength"]
        await command(http, "OCA-043-4S", "GetConfiguration", key=keys)
        start = len(charger.wire.frames)
        refused = await post(http, "OCA-043-4S", "SendLocalList", updateType="Full")
        return [refused.status_code, refused.json(), charger.wire.steps(start)]

    code, problem, steps = run(live, "OCA-043-4S", small, ListCharger)
    assert code == 400 and steps == []
    assert problem["path"] == "$.localAuthorizationList"
    assert "3 entries, more than the charger takes in one SendLocalList (2)" in problem["detail"]
