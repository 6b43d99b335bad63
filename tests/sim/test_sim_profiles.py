"""The simulated charger's Reservation, Local Auth List Management and Remote Trigger profiles,
driven by a Central System written here (Voltaro's own WebSocket transport and RPC endpoint
over real sockets, no database): every answer status the charger gives and the messages that
follow from each."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sim.helpers import REGISTRY, wait_for
from voltaro.ocppj.endpoint import RpcEndpoint
from voltaro.ocppj.frames import Payload
from voltaro.sim import reservations
from voltaro.sim.charger import ChargerOptions, SimulatedChargePoint
from voltaro.sim.local_list import LocalAuthList
from voltaro.sim.profiles import profile
from voltaro.transport.websocket import WebSocket, read_upgrade_request

ACCEPTED: Payload = {"status": "Accepted"}


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def in_seconds(seconds: float) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=seconds))


class RecordingChannel:
    """The CSMS side of a WebSocket, writing down every frame both ways, in wire order."""

    def __init__(self, websocket: WebSocket, transcript: list[tuple[str, list[Any]]]) -> None:
        self.websocket = websocket
        self.transcript = transcript

    async def receive(self) -> str | bytes:
        message = await self.websocket.receive()
        self.transcript.append(("in", orjson.loads(message)))
        return message

    async def send(self, text: str) -> None:
        self.transcript.append(("out", orjson.loads(text)))
        await self.websocket.send(text)


@dataclass
class Csms:
    """A Central System for one charger: accepts its boot, answers what it sends (Authorize
    from :attr:`tags`; an unknown tag is Invalid), and sends it CALLs with :meth:`call`.
    :meth:`go_down` makes it unreachable (the connection drops, new ones are refused)."""

    port: int = 0
    tags: dict[str, Payload] = field(default_factory=dict)
    transcript: list[tuple[str, list[Any]]] = field(default_factory=list)
    endpoint: RpcEndpoint | None = None
    reachable: bool = True
    _scope: trio.CancelScope | None = None
    _transactions: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    async def serve(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(partial(trio.serve_tcp, self._connection, 0))
        self.port = listeners[0].socket.getsockname()[1]

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def _connection(self, stream: trio.SocketStream) -> None:
        async with stream:
            request = await read_upgrade_request(stream, max_message=1 << 20)
            if request is None:
                return
            if not self.reachable:
                await request.reject(503, [])
                return
            websocket = await request.accept("ocpp1.6")
            endpoint = RpcEndpoint(
                RecordingChannel(websocket, self.transcript),
                REGISTRY,
                self._handlers(),
                name="csms",
                call_timeout=5,
            )
            with trio.CancelScope() as self._scope:
                self.endpoint = endpoint
                await endpoint.serve()
            self.endpoint = None

    def go_down(self) -> None:
        self.reachable = False
        if self._scope is not None:
            self._scope.cancel()

    def come_back(self) -> None:
        self.reachable = True

    async def call(self, action: str, payload: Payload) -> Payload:
        await wait_for(lambda: self.endpoint is not None)
        assert self.endpoint is not None
        return await self.endpoint.call(action, payload)

    def info(self, id_tag: str) -> Payload:
        return self.tags.get(id_tag, {"status": "Invalid"})

    def _handlers(self) -> dict[str, Any]:
        now = {"currentTime": iso(datetime.now(UTC))}

        async def boot(payload: Payload) -> Payload:
            return {**now, "status": "Accepted", "interval": 300}

        async def empty(payload: Payload) -> Payload:
            return {}

        async def heartbeat(payload: Payload) -> Payload:
            return now

        async def authorize(payload: Payload) -> Payload:
            return {"idTagInfo": self.info(payload["idTag"])}

        async def start(payload: Payload) -> Payload:
            return {
                "transactionId": next(self._transactions),
                "idTagInfo": self.info(payload["idTag"]),
            }

        return {
            "BootNotification": boot,
            "Heartbeat": heartbeat,
            "Authorize": authorize,
            "StartTransaction": start,
            "StopTransaction": empty,
            "StatusNotification": empty,
            "MeterValues": empty,
            "DiagnosticsStatusNotification": empty,
            "FirmwareStatusNotification": empty,
        }

    # -- what the charger sent ------------------------------------------------------------

    def calls(self, action: str, since: int = 0) -> list[Payload]:
        """Payloads of the charger's CALLs of ``action`` (from transcript position ``since``)."""
        return [
            frame[3]
            for direction, frame in self.transcript[since:]
            if direction == "in" and frame[0] == 2 and frame[2] == action
        ]

    def statuses(self, connector_id: int, since: int = 0) -> list[str]:
        return [
            p["status"]
            for p in self.calls("StatusNotification", since)
            if p["connectorId"] == connector_id
        ]

    def answer_position(self, action: str) -> int:
        """Where in the transcript the charger's answer to our last CALL of ``action`` is."""
        [message_id] = [
            frame[1]
            for direction, frame in self.transcript
            if direction == "out" and frame[0] == 2 and frame[2] == action
        ][-1:]
        [position] = [
            n
            for n, (direction, frame) in enumerate(self.transcript)
            if direction == "in" and frame[0] == 3 and frame[1] == message_id
        ]
        return position

    def first_call_after(self, action: str, position: int) -> int:
        return next(
            n
            for n, (direction, frame) in enumerate(self.transcript)
            if n > position and direction == "in" and frame[0] == 2 and frame[2] == action
        )


async def start_pair(
    nursery: trio.Nursery, tags: dict[str, Payload] | None = None, **options: Any
) -> tuple[Csms, SimulatedChargePoint]:
    csms = Csms(tags=dict(tags or {}))
    await csms.serve(nursery)
    options.setdefault("connectors", 2)
    charger = SimulatedChargePoint(
        ChargerOptions(
            "SIM-PROFILES",
            csms.url(),
            profile("realistic", connect_window=0).with_changes(sessions_per_day=0.0),
            backoff_min=0.05,
            backoff_max=0.2,
            call_timeout=5,
            **options,
        ),
        REGISTRY,
    )
    await nursery.start(charger.run)
    with trio.fail_after(10):
        await charger.wait_registered()
    return csms, charger


async def start_session(
    nursery: trio.Nursery, charger: SimulatedChargePoint, connector_id: int, id_tag: str
) -> None:
    """Start a long session in the background; returns once it charges."""
    nursery.start_soon(partial(charger.charge, connector_id, id_tag, seconds=3600))
    await wait_for(lambda: charger.connectors[connector_id].status == "Charging")


def stop_session(charger: SimulatedChargePoint, connector_id: int) -> None:
    session = charger.connectors[connector_id].session
    assert session is not None
    session.stop("Local")


def reserve(
    reservation_id: int,
    connector_id: int,
    id_tag: str,
    *,
    parent: str | None = None,
    seconds: float = 600,
) -> Payload:
    request: Payload = {
        "connectorId": connector_id,
        "expiryDate": in_seconds(seconds),
        "idTag": id_tag,
        "reservationId": reservation_id,
    }
    if parent is not None:
        request["parentIdTag"] = parent
    return request


GOOD = {"status": "Accepted"}


# -- Reservation ------------------------------------------------------------------------------


async def test_reserve_now_answers_after_the_connectors_state(nursery: trio.Nursery) -> None:
    csms, charger = await start_pair(nursery, {"DRIVER": GOOD}, connectors=4)
    # 1 reserved, 2 charging, 3 faulted, 4 unavailable
    assert await csms.call("ReserveNow", reserve(1, 1, "R1")) == ACCEPTED
    await wait_for(lambda: csms.statuses(1)[-1:] == ["Reserved"])
    await start_session(nursery, charger, 2, "DRIVER")
    await charger.fault(3, "GroundFailure")
    answer = await csms.call("ChangeAvailability", {"connectorId": 4, "type": "Inoperative"})
    assert answer == ACCEPTED
    await wait_for(lambda: csms.statuses(4)[-1:] == ["Unavailable"])
    [faulted] = [p for p in csms.calls("StatusNotification") if p["status"] == "Faulted"]
    assert (faulted["connectorId"], faulted["errorCode"]) == (3, "GroundFailure")

    expected = {
        1: "Occupied",  # reserved for another reservation
        2: "Occupied",  # charging
        3: "Faulted",
        4: "Unavailable",
        5: "Rejected",  # no such connector
        0: "Occupied",  # no connector left free for "any connector"
    }
    for connector_id, status in expected.items():
        answer = await csms.call("ReserveNow", reserve(10 + connector_id, connector_id, "R2"))
        assert answer == {"status": status}, connector_id
    assert set(charger.reservations) == {1}

    # an expiry already past is no reservation
    answer = await csms.call("ReserveNow", reserve(20, 1, "R2", seconds=-60))
    assert answer == {"status": "Rejected"}

    assert await csms.call("CancelReservation", {"reservationId": 99}) == {"status": "Rejected"}
    assert await csms.call("CancelReservation", {"reservationId": 1}) == ACCEPTED
    await wait_for(lambda: csms.statuses(1)[-1:] == ["Available"])
    assert charger.reservations == {}
    # connector 1 is free again: "any connector" can be reserved
    assert await csms.call("ReserveNow", reserve(21, 0, "R2")) == ACCEPTED
    assert charger.reservations[21].connector_id == 0
    stop_session(charger, 2)


async def test_a_charger_that_takes_no_reservations_rejects_them(nursery: trio.Nursery) -> None:
    csms, charger = await start_pair(nursery, reservations=False)
    assert await csms.call("ReserveNow", reserve(1, 1, "R1")) == {"status": "Rejected"}
    assert await csms.call("CancelReservation", {"reservationId": 1}) == {"status": "Rejected"}
    config = await csms.call("GetConfiguration", {"key": ["SupportedFeatureProfiles"]})
    assert "Reservation" not in config["configurationKey"][0]["value"].split(",")
    assert charger.reservations == {}
    assert csms.statuses(1) == ["Available"]


async def test_connector_zero_needs_reserve_connector_zero_supported(
    nursery: trio.Nursery,
) -> None:
    csms, _ = await start_pair(nursery, reserve_connector_zero=False)
    config = await csms.call("GetConfiguration", {"key": ["ReserveConnectorZeroSupported"]})
    assert config["configurationKey"] == [
        {"key": "ReserveConnectorZeroSupported", "readonly": True, "value": "false"}
    ]
    assert await csms.call("ReserveNow", reserve(1, 0, "R1")) == {"status": "Rejected"}
    assert await csms.call("ReserveNow", reserve(2, 1, "R1")) == ACCEPTED


async def test_a_reserved_connector_admits_only_its_tag_or_its_parents_tags(
    nursery: trio.Nursery,
) -> None:
    tags = {
        "RESERVED": GOOD,
        "STRANGER": GOOD,
        "SIBLING": {"status": "Accepted", "parentIdTag": "FAMILY"},
        "COUSIN": {"status": "Accepted", "parentIdTag": "OTHERS"},
    }
    csms, charger = await start_pair(nursery, tags)
    assert await csms.call("ReserveNow", reserve(7, 1, "RESERVED")) == ACCEPTED
    await wait_for(lambda: csms.statuses(1)[-1:] == ["Reserved"])

    mark = len(csms.transcript)
    assert not await charger.charge(1, "STRANGER", seconds=60)
    # refused at the connector: no Authorize needed, the connector stays Reserved
    assert csms.calls("Authorize", mark) == []
    assert csms.statuses(1, mark) == []
    # the other connector is free for anyone
    await start_session(nursery, charger, 2, "STRANGER")
    stop_session(charger, 2)

    await start_session(nursery, charger, 1, "RESERVED")
    [start] = csms.calls("StartTransaction", mark)[-1:]
    assert (start["idTag"], start["reservationId"]) == ("RESERVED", 7)
    assert charger.reservations == {}
    stop_session(charger, 1)
    await wait_for(lambda: csms.statuses(1, mark)[-1:] == ["Available"])
    assert csms.statuses(1, mark) == ["Preparing", "Charging", "Finishing", "Available"]

    # a reservation for a parent: a tag of the same parent may use it, another may not
    mark = len(csms.transcript)
    answer = await csms.call("ReserveNow", reserve(8, 1, "RESERVED", parent="FAMILY"))
    assert answer == ACCEPTED
    await wait_for(lambda: csms.statuses(1)[-1:] == ["Reserved"])
    assert not await charger.charge(1, "COUSIN", seconds=60)
    assert [p["idTag"] for p in csms.calls("Authorize", mark)] == ["COUSIN"]
    assert csms.statuses(1, mark) == ["Reserved"]
    await start_session(nursery, charger, 1, "SIBLING")
    [start] = csms.calls("StartTransaction", mark)
    assert (start["idTag"], start["reservationId"]) == ("SIBLING", 8)
    stop_session(charger, 1)


async def test_remote_start_on_a_reserved_connector(nursery: trio.Nursery) -> None:
    csms, charger = await start_pair(nursery, {"RESERVED": GOOD, "STRANGER": GOOD})
    assert await csms.call("ReserveNow", reserve(3, 2, "RESERVED")) == ACCEPTED
    await wait_for(lambda: csms.statuses(2)[-1:] == ["Reserved"])
    answer = await csms.call("RemoteStartTransaction", {"idTag": "STRANGER", "connectorId": 2})
    assert answer == {"status": "Rejected"}
    # without a connector, the reserved tag gets its reserved one
    answer = await csms.call("RemoteStartTransaction", {"idTag": "RESERVED"})
    assert answer == ACCEPTED
    await wait_for(lambda: charger.connectors[2].status == "Charging")
    [start] = csms.calls("StartTransaction")
    assert (start["connectorId"], start["reservationId"]) == (2, 3)
    stop_session(charger, 2)


async def test_remote_start_without_a_connector_avoids_a_reservation_for_others(
    nursery: trio.Nursery,
) -> None:
    tags = {"STRANGER": {"status": "Accepted", "parentIdTag": "OTHERS"}}
    csms, charger = await start_pair(nursery, tags)
    answer = await csms.call("ReserveNow", reserve(6, 1, "RESERVED", parent="FAMILY"))
    assert answer == ACCEPTED
    await wait_for(lambda: csms.statuses(1)[-1:] == ["Reserved"])
    assert await csms.call("RemoteStartTransaction", {"idTag": "STRANGER"}) == ACCEPTED
    await wait_for(lambda: csms.calls("StartTransaction"))
    [start] = csms.calls("StartTransaction")
    assert (start["connectorId"], start["idTag"]) == (2, "STRANGER")
    assert "reservationId" not in start and set(charger.reservations) == {6}
    stop_session(charger, 2)


async def test_a_reservation_expires_and_frees_its_connector(nursery: trio.Nursery) -> None:
    csms, charger = await start_pair(nursery, {"LATECOMER": GOOD})
    assert await csms.call("ReserveNow", reserve(5, 1, "NOSHOW", seconds=2.0)) == ACCEPTED
    await wait_for(lambda: csms.statuses(1)[-2:] == ["Reserved", "Available"])
    assert charger.reservations == {}
    await start_session(nursery, charger, 1, "LATECOMER")
    [start] = csms.calls("StartTransaction")
    assert "reservationId" not in start
    stop_session(charger, 1)


async def test_a_reservation_ends_when_its_connector_is_unavailable_or_faulted(
    nursery: trio.Nursery,
) -> None:
    csms, charger = await start_pair(nursery)
    assert await csms.call("ReserveNow", reserve(1, 1, "R1")) == ACCEPTED
    assert await csms.call("ReserveNow", reserve(2, 2, "R2")) == ACCEPTED
    await wait_for(lambda: csms.statuses(1)[-1:] == csms.statuses(2)[-1:] == ["Reserved"])
    answer = await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert answer == ACCEPTED
    await charger.fault(2, "HighTemperature")
    await wait_for(lambda: csms.statuses(1)[-1:] == ["Unavailable"])
    assert csms.statuses(2)[-1:] == ["Faulted"]
    assert charger.reservations == {}
    assert await csms.call("CancelReservation", {"reservationId": 1}) == {"status": "Rejected"}
    await charger.repair(2)
    await wait_for(lambda: csms.statuses(2)[-1:] == ["Available"])


async def test_a_reservation_is_replaced_by_one_of_the_same_id(nursery: trio.Nursery) -> None:
    csms, charger = await start_pair(nursery)
    assert await csms.call("ReserveNow", reserve(4, 1, "R1")) == ACCEPTED
    await wait_for(lambda: csms.statuses(1)[-1:] == ["Reserved"])
    assert await csms.call("ReserveNow", reserve(4, 2, "R2")) == ACCEPTED
    await wait_for(lambda: csms.statuses(2)[-1:] == ["Reserved"])
    await wait_for(lambda: csms.statuses(1)[-1:] == ["Available"])
    [reservation] = charger.reservations.values()
    assert (reservation.connector_id, reservation.id_tag) == (2, "R2")


async def test_a_connector_zero_reservation_keeps_one_connector_free(
    nursery: trio.Nursery,
) -> None:
    tags = {"RESERVED": GOOD, "FIRST": GOOD, "SECOND": GOOD}
    csms, charger = await start_pair(nursery, tags)
    assert await csms.call("ReserveNow", reserve(9, 0, "RESERVED")) == ACCEPTED
    # no connector in particular: no status changes
    assert csms.statuses(1) == csms.statuses(2) == ["Available"]
    await start_session(nursery, charger, 1, "FIRST")
    # connector 2 is the last free one: it is kept for the reservation
    assert not await charger.charge(2, "SECOND", seconds=60)
    assert await csms.call("ReserveNow", reserve(10, 0, "OTHER")) == {"status": "Occupied"}
    assert await csms.call("ReserveNow", reserve(11, 2, "OTHER")) == {"status": "Occupied"}
    await start_session(nursery, charger, 2, "RESERVED")
    starts = csms.calls("StartTransaction")
    assert [(s["idTag"], s.get("reservationId")) for s in starts] == [
        ("FIRST", None),
        ("RESERVED", 9),
    ]
    assert charger.reservations == {}
    stop_session(charger, 1)
    stop_session(charger, 2)


@dataclass
class PlainConnector:
    connector_id: int
    status: str = "Available"
    operative: bool = True
    busy: bool = False
    fault: str | None = None
    session: object | None = None


CONNECTOR_STATES = st.sampled_from(["Available", "Charging", "Faulted", "Unavailable"])


def plain_connector(connector_id: int, state: str) -> PlainConnector:
    connector = PlainConnector(connector_id, state)
    if state == "Charging":
        connector.busy, connector.session = True, object()
    connector.fault = "GroundFailure" if state == "Faulted" else None
    connector.operative = state != "Unavailable"
    return connector


@settings(max_examples=500)
@given(
    st.lists(CONNECTOR_STATES, min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3)), max_size=6),
)
def test_accepted_reservations_never_overbook_the_connectors(
    states: list[str], requests: list[tuple[int, int]]
) -> None:
    """Whatever is asked, what the rules accept leaves no connector held twice, one free
    connector per connector-0 reservation, and a stranger never takes the last of those."""
    connectors = {n: plain_connector(n, state) for n, state in enumerate(states, start=1)}
    held: dict[int, reservations.Reservation] = {}
    for number, (connector_id, reservation_id) in enumerate(requests):
        if connector_id != 0 and connector_id not in connectors:
            continue  # the charger answers Rejected before asking the rules
        replaced = held.get(reservation_id)
        status = reservations.reserve_now_status(held, connectors, connector_id, replaced)
        if status != "Accepted":
            continue
        expiry = datetime.now(UTC) + timedelta(hours=1)
        held[reservation_id] = reservations.Reservation(
            reservation_id, connector_id, f"TAG{number}", None, expiry
        )
        if connector_id != 0:
            connectors[connector_id].status = "Reserved"
        if replaced is not None and replaced.connector_id not in (0, connector_id):
            connectors[replaced.connector_id].status = "Available"
        specific = [r.connector_id for r in held.values() if r.connector_id != 0]
        assert len(specific) == len(set(specific))
        zero = reservations.anywhere(held)
        free = [c for c in connectors.values() if reservations.is_free(held, c)]
        assert len(zero) <= len(free)
        for connector in free:
            allowed, used = reservations.admission(held, connectors, connector, "STRANGER", None)
            assert used is None
            assert allowed == (len(free) - 1 >= len(zero))


# -- Local Auth List Management ---------------------------------------------------------------


def entry(id_tag: str, status: str = "Accepted", **info: str) -> Payload:
    return {"idTag": id_tag, "idTagInfo": {"status": status, **info}}


def send_list(version: int, update: str, entries: list[Payload] | None = None) -> Payload:
    request: Payload = {"listVersion": version, "updateType": update}
    if entries is not None:
        request["localAuthorizationList"] = entries
    return request


async def test_send_local_list_full_differential_and_every_refusal(
    nursery: trio.Nursery,
) -> None:
    csms, charger = await start_pair(nursery, local_list_max_length=4, send_local_list_max_length=3)
    config = await csms.call(
        "GetConfiguration",
        {"key": ["LocalAuthListEnabled", "LocalAuthListMaxLength", "SendLocalListMaxLength"]},
    )
    assert {k["key"]: k["value"] for k in config["configurationKey"]} == {
        "LocalAuthListEnabled": "true",
        "LocalAuthListMaxLength": "4",
        "SendLocalListMaxLength": "3",
    }
    assert await csms.call("GetLocalListVersion", {}) == {"listVersion": 0}

    async def send(request: Payload) -> str:
        answer = await csms.call("SendLocalList", request)
        return str(answer["status"])

    assert await send(send_list(2, "Full", [entry("A"), entry("B", "Blocked")])) == "Accepted"
    assert await csms.call("GetLocalListVersion", {}) == {"listVersion": 2}
    # a differential: C added, A removed (no idTagInfo), B changed
    changes = [entry("C"), {"idTag": "A"}, entry("B", parentIdTag="P")]
    assert await send(send_list(5, "Differential", changes)) == "Accepted"
    assert await csms.call("GetLocalListVersion", {}) == {"listVersion": 5}
    assert charger.local_list.entries == {
        "B": {"status": "Accepted", "parentIdTag": "P"},
        "C": {"status": "Accepted"},
    }
    # not newer than the list the charger holds
    assert await send(send_list(5, "Differential", [entry("D")])) == "VersionMismatch"
    assert await send(send_list(3, "Differential", [entry("D")])) == "VersionMismatch"
    for refused in [
        send_list(6, "Full", [entry(t) for t in "DEFG"]),  # > SendLocalListMaxLength
        send_list(6, "Differential", [entry(t) for t in "DEF"]),  # > LocalAuthListMaxLength
        send_list(6, "Full", [entry("D"), entry("D")]),  # a tag twice
        send_list(6, "Full", [entry("D"), {"idTag": "E"}]),  # Full without idTagInfo
        send_list(-1, "Full", [entry("D")]),
        send_list(0, "Full", [entry("D")]),  # 0 is "empty"
    ]:
        assert await send(refused) == "Failed", refused
    assert charger.local_list.version == 5 and set(charger.local_list.entries) == {"B", "C"}
    # an empty differential changes nothing but the version
    assert await send(send_list(6, "Differential")) == "Accepted"
    assert set(charger.local_list.entries) == {"B", "C"}
    # a full update without a list empties it: version 0 says "empty"
    assert await send(send_list(7, "Full")) == "Accepted"
    assert await csms.call("GetLocalListVersion", {}) == {"listVersion": 0}

    # disabled: as a charger without the list
    answer = await csms.call(
        "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"}
    )
    assert answer == ACCEPTED
    assert await csms.call("GetLocalListVersion", {}) == {"listVersion": -1}
    assert await send(send_list(8, "Full", [entry("A")])) == "NotSupported"


async def test_a_charger_without_local_lists(nursery: trio.Nursery) -> None:
    csms, charger = await start_pair(nursery, local_auth_list=False)
    assert await csms.call("GetLocalListVersion", {}) == {"listVersion": -1}
    answer = await csms.call("SendLocalList", send_list(1, "Full", [entry("A")]))
    assert answer == {"status": "NotSupported"}
    config = await csms.call(
        "GetConfiguration", {"key": ["SupportedFeatureProfiles", "LocalAuthListEnabled"]}
    )
    assert config["unknownKey"] == ["LocalAuthListEnabled"]
    profiles = config["configurationKey"][0]["value"].split(",")
    assert profiles == ["Core", "Reservation", "RemoteTrigger"]
    assert charger.local_list.entries == {}


async def test_offline_the_local_list_decides_and_the_session_is_sent_when_back(
    nursery: trio.Nursery,
) -> None:
    csms, charger = await start_pair(nursery, {"LISTED": GOOD})
    expired = iso(datetime.now(UTC) - timedelta(days=1))
    listed = [
        entry("LISTED"),
        entry("BLOCKED", "Blocked"),
        entry("EXPIRED", expiryDate=expired),
    ]
    answer = await csms.call("SendLocalList", send_list(1, "Full", listed))
    assert answer == ACCEPTED
    csms.go_down()
    await wait_for(lambda: not charger.registered)
    mark = len(csms.transcript)
    for refused in ["BLOCKED", "EXPIRED", "UNKNOWN"]:
        assert not await charger.charge(2, refused, seconds=60), refused
    assert await charger.charge(1, "LISTED", seconds=0.5)
    assert [m.action for m in charger.queue] == ["StartTransaction", "StopTransaction"]
    assert len(csms.transcript) == mark  # nothing reached the Central System

    csms.come_back()
    await wait_for(lambda: charger.registered and not charger.queue)
    [start] = csms.calls("StartTransaction", mark)
    [stop] = csms.calls("StopTransaction", mark)
    assert (start["idTag"], start["connectorId"]) == ("LISTED", 1)
    assert stop["transactionId"] == 100  # the id the Central System gave on replay
    assert csms.calls("Authorize", mark) == []


async def test_local_pre_authorize_starts_a_listed_tag_without_asking(
    nursery: trio.Nursery,
) -> None:
    csms, charger = await start_pair(nursery, {"ONLINE": GOOD, "LISTED": GOOD})
    answer = await csms.call("SendLocalList", send_list(1, "Full", [entry("LISTED")]))
    assert answer == ACCEPTED
    answer = await csms.call("ChangeConfiguration", {"key": "LocalPreAuthorize", "value": "true"})
    assert answer == ACCEPTED
    await start_session(nursery, charger, 1, "LISTED")
    await start_session(nursery, charger, 2, "ONLINE")
    assert [p["idTag"] for p in csms.calls("Authorize")] == ["ONLINE"]
    stop_session(charger, 1)
    stop_session(charger, 2)


def model_apply(model: dict[str, Payload], update: Payload) -> dict[str, Payload]:
    """The list an accepted update leaves, computed plainly."""
    changes = update.get("localAuthorizationList", [])
    if update["updateType"] == "Full":
        return {c["idTag"]: c["idTagInfo"] for c in changes}
    result = dict(model)
    for change in changes:
        if "idTagInfo" in change:
            result[change["idTag"]] = change["idTagInfo"]
        else:
            result.pop(change["idTag"], None)
    return result


TAGS = st.sampled_from(["T1", "T2", "T3", "T4", "T5", "T6"])
INFOS = st.fixed_dictionaries(
    {"status": st.sampled_from(["Accepted", "Blocked", "Expired", "Invalid"])},
    optional={"parentIdTag": st.sampled_from(["P1", "P2"])},
)


@st.composite
def updates(draw: st.DrawFn) -> list[Payload]:
    """Versioned Full/Differential updates, each version newer than the last."""
    result: list[Payload] = []
    version = 0
    for _ in range(draw(st.integers(1, 8))):
        version += draw(st.integers(1, 3))
        full = draw(st.booleans())
        tags = draw(st.lists(TAGS, unique=True, max_size=4))
        changes = [
            {"idTag": t, "idTagInfo": draw(INFOS)} if full or draw(st.booleans()) else {"idTag": t}
            for t in tags
        ]
        result.append(send_list(version, "Full" if full else "Differential", changes))
    return result


@given(updates())
def test_updates_applied_to_the_list_equal_the_same_applied_to_a_dict(
    sequence: list[Payload],
) -> None:
    local_list = LocalAuthList()
    model: dict[str, Payload] = {}
    for update in sequence:
        assert local_list.update(update, max_send=10, max_length=10) == "Accepted"
        model = model_apply(model, update)
        assert local_list.entries == model
        assert local_list.version == update["listVersion"]
        assert local_list.reported_version() == (update["listVersion"] if model else 0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates())
async def test_updates_sent_over_the_wire_give_the_list_of_a_dict(
    sequence: list[Payload],
) -> None:
    async with trio.open_nursery() as nursery:
        csms, charger = await start_pair(nursery)
        model: dict[str, Payload] = {}
        for update in sequence:
            assert await csms.call("SendLocalList", update) == ACCEPTED
            model = model_apply(model, update)
        assert charger.local_list.entries == model
        version = sequence[-1]["listVersion"] if model else 0
        assert await csms.call("GetLocalListVersion", {}) == {"listVersion": version}
        nursery.cancel_scope.cancel()


# -- Remote Trigger ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "connector_id", "expected"),
    [
        ("BootNotification", None, [None]),
        ("DiagnosticsStatusNotification", None, [None]),
        ("FirmwareStatusNotification", None, [None]),
        ("Heartbeat", None, [None]),
        ("Heartbeat", 9, [None]),  # a connector is no matter to a Heartbeat: ignored
        ("MeterValues", None, [1, 2]),
        ("MeterValues", 2, [2]),
        ("MeterValues", 0, [0]),
        ("StatusNotification", None, [0, 1, 2]),
        ("StatusNotification", 1, [1]),
        ("StatusNotification", 0, [0]),
    ],
)
async def test_a_triggered_message_follows_the_answer(
    nursery: trio.Nursery, requested: str, connector_id: int | None, expected: list[int | None]
) -> None:
    csms, charger = await start_pair(nursery, {"DRIVER": GOOD})
    await start_session(nursery, charger, 2, "DRIVER")
    await wait_for(lambda: not charger.queue)  # the session has its transaction id
    request: Payload = {"requestedMessage": requested}
    if connector_id is not None:
        request["connectorId"] = connector_id
    mark = len(csms.transcript)
    assert await csms.call("TriggerMessage", request) == ACCEPTED
    await wait_for(lambda: len(csms.calls(requested, mark)) >= len(expected))
    # the answer went first, then the message it promised
    answer_at = csms.answer_position("TriggerMessage")
    assert csms.first_call_after(requested, mark) > answer_at
    sent = csms.calls(requested, mark)
    assert [p.get("connectorId") for p in sent] == expected
    if requested == "StatusNotification":
        assert [p["status"] for p in sent] == [
            {0: "Available", 1: "Available", 2: "Charging"}[n] for n in expected if n is not None
        ]
    if requested == "MeterValues":
        for payload in sent:
            values = payload["meterValue"][0]["sampledValue"]
            assert {v["context"] for v in values} == {"Trigger"}
            # the running session's transaction, on its connector only
            assert payload.get("transactionId") == (100 if payload["connectorId"] == 2 else None)
    if requested == "BootNotification":
        assert sent[0]["chargePointModel"] == "Simulator"
    if requested in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
        assert sent == [{"status": "Idle"}]
    stop_session(charger, 2)


@pytest.mark.parametrize(
    "request_",
    [
        {"requestedMessage": "MeterValues", "connectorId": 3},  # NumberOfConnectors + 1
        {"requestedMessage": "StatusNotification", "connectorId": 7},
        {"requestedMessage": "MeterValues", "connectorId": -1},
    ],
)
async def test_a_trigger_for_a_connector_that_does_not_exist_is_rejected(
    nursery: trio.Nursery, request_: Payload
) -> None:
    csms, _ = await start_pair(nursery)
    mark = len(csms.transcript)
    assert await csms.call("TriggerMessage", request_) == {"status": "Rejected"}
    # a Heartbeat triggered after it comes back, and nothing else came before it
    assert await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"}) == ACCEPTED
    await wait_for(lambda: csms.calls("Heartbeat", mark))
    assert csms.calls(request_["requestedMessage"], mark) == []


async def test_a_trigger_the_charger_does_not_implement(nursery: trio.Nursery) -> None:
    csms, _ = await start_pair(nursery, trigger_messages=frozenset({"Heartbeat"}))
    mark = len(csms.transcript)
    for requested in ["MeterValues", "StatusNotification", "BootNotification"]:
        answer = await csms.call("TriggerMessage", {"requestedMessage": requested})
        assert answer == {"status": "NotImplemented"}, requested
    assert await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"}) == ACCEPTED
    await wait_for(lambda: csms.calls("Heartbeat", mark))
    charger_calls = [f[2] for d, f in csms.transcript[mark:] if d == "in" and f[0] == 2]
    assert charger_calls == ["Heartbeat"]

    csms, _ = await start_pair(nursery, trigger_messages=frozenset())
    config = await csms.call("GetConfiguration", {"key": ["SupportedFeatureProfiles"]})
    assert config["configurationKey"][0]["value"] == "Core,LocalAuthListManagement,Reservation"
    answer = await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"})
    assert answer == {"status": "NotImplemented"}
