"""Voltaro's Reservation, Remote Trigger and Local Auth List Management profiles against
Voltaro's own simulated chargers, end to end: a real Voltaro (database, OCPP server, admin
API), real :class:`~voltaro.sim.charger.SimulatedChargePoint` s over WebSockets, and every
command sent through the admin API over HTTP, as an operator would.

Reservation: every answer the simulator gives to ReserveNow (Accepted, Occupied, Faulted,
Unavailable, Rejected) and the record Voltaro keeps of it; CancelReservation Accepted and
Rejected; connector 0; a reservation used (the simulator's StartTransaction carries its id),
used by a tag of the same group, refused to another tag, expired on both sides, and ended by a
ChangeAvailability Inoperative. Remote Trigger: every requestedMessage, with and without a
connector where one applies, the answer in the API and the triggered message stored by
Voltaro; NotImplemented and Rejected. Local Auth List Management: the Full list at boot,
then a Differential after tags are blocked and added through the API (debounced: one for
both), a VersionMismatch resynced (GetLocalListVersion, then a Full), lists split and cut by
the charger's SendLocalListMaxLength and LocalAuthListMaxLength, a charger without lists
(version -1, SendLocalList NotSupported) recorded and left alone, and a tag on the list
authorized by the charger while Voltaro is out of reach (a blocked or unknown one not).

Waits are bounded polls of the API or the database (changes that follow a charger's message
are applied after the message is answered); nothing asserts a time.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.e2e import fetch
from tests.sim.helpers import REGISTRY, add_tags, base_url, start, start_charger, wait_for
from voltaro.app import Voltaro
from voltaro.config import Settings
from voltaro.sim.charger import ChargerOptions, SimulatedChargePoint
from voltaro.sim.profiles import profile
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]

TOKEN = "profiles-with-simulator-token"
# No sessions of their own: every session here is one the test starts.
QUIET = profile("realistic", connect_window=0).with_changes(sessions_per_day=0.0)
WAIT = 20.0  # seconds any one state may take to settle (a loaded machine; never asserted)


def later(seconds: float = 3600) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Rig:
    """One Voltaro, its admin API, and the simulated chargers of a test."""

    voltaro: Voltaro
    http: httpx.AsyncClient
    nursery: trio.Nursery
    skipped: list[tuple[str, int, str, str]] = field(default_factory=list)
    """Transitions a test expects Voltaro to flag unexpected (charge point, connector,
    from, to): the statuses a charger could not report while offline."""

    async def charger(self, charge_point_id: str, **options: Any) -> SimulatedChargePoint:
        return await start_charger(
            self.nursery, self.voltaro, charge_point_id, sim_profile=QUIET, **options
        )

    async def command(
        self, charge_point_id: str, action: str, **body: Any
    ) -> tuple[int, dict[str, Any]]:
        path = f"/api/v1/charge-points/{charge_point_id}/commands/{action}"
        response = await self.http.post(path, json=body)
        return response.status_code, response.json()

    async def reserve(self, charge_point_id: str, **body: Any) -> tuple[str, int]:
        """ReserveNow through the API: the charger's answer and the id Voltaro allocated."""
        body.setdefault("connectorId", 1)
        body.setdefault("idTag", "RES-TAG")
        body.setdefault("expiryDate", later())
        code, answer = await self.command(charge_point_id, "ReserveNow", **body)
        assert code == 200, answer
        return answer["result"]["status"], answer["allocated"]["reservationId"]

    async def reservation(self, reservation_id: int) -> dict[str, Any]:
        listed = await self.http.get("/api/v1/reservations", params={"limit": 1000})
        return next(r for r in listed.json()["items"] if r["reservationId"] == reservation_id)

    async def settles(self, reservation_id: int, status: str) -> dict[str, Any]:
        """The reservation once it has ``status`` (or as it is when the wait runs out)."""
        found: dict[str, Any] = {}

        async def has_it() -> bool:
            nonlocal found
            found = await self.reservation(reservation_id)
            return found["status"] == status

        with contextlib.suppress(trio.TooSlowError):
            await wait_for(has_it, WAIT)
        return found

    async def connectors(self, charge_point_id: str) -> dict[int, str]:
        """Each connector's status as Voltaro holds it."""
        detail = (await self.http.get(f"/api/v1/charge-points/{charge_point_id}")).json()
        return {c["connectorId"]: c["status"] for c in detail["connectors"]}

    async def connector_becomes(self, charge_point_id: str, connector_id: int, status: str) -> str:
        seen = ""

        async def is_it() -> bool:
            nonlocal seen
            seen = (await self.connectors(charge_point_id)).get(connector_id, "")
            return seen == status

        with contextlib.suppress(trio.TooSlowError):
            await wait_for(is_it, WAIT)
        return seen

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return await fetch(self.voltaro, sql, *args)


@contextlib.asynccontextmanager
async def rig(
    nursery: trio.Nursery, settings: Settings, tmp_path: Path, **changes: Any
) -> AsyncIterator[Rig]:
    """A Voltaro (``changes``: to its settings) with its admin API, for one test."""
    voltaro = await start(
        nursery, settings, admin_port=0, admin_token=TOKEN, data_dir=tmp_path / "data", **changes
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        base_url=voltaro.admin_url or "", headers=headers, timeout=30
    ) as http:
        made = Rig(voltaro, http, nursery)
        yield made
        # Every status the simulator reported was a transition section 4.9 allows
        unexpected = await fetch(
            voltaro,
            "SELECT charge_point_id, connector_id, previous_status, status"
            " FROM connector_status_history WHERE unexpected ORDER BY id",
        )
        assert [tuple(row.values()) for row in unexpected] == made.skipped


async def session_started(charger: SimulatedChargePoint, connector_id: int) -> None:
    """Until the charger's session on the connector has its transaction id from Voltaro."""

    def started() -> bool:
        session = charger.connectors[connector_id].session
        return session is not None and session.local_id in charger.transaction_ids

    await wait_for(started, WAIT)


# ---- Reservation ------------------------------------------------------------------------


async def test_every_answer_to_reserve_now_from_the_simulator_is_recorded(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        await add_tags(r.voltaro, "DRIVER")
        charger = await r.charger("SIM-RES-ANSWERS", connectors=4)
        # connector 2 charging, 3 faulted, 4 made Inoperative by the operator
        nursery.start_soon(lambda: charger.charge(2, "DRIVER", seconds=3600))
        await session_started(charger, 2)
        await charger.fault(3)
        code, changed = await r.command(
            "SIM-RES-ANSWERS", "ChangeAvailability", connectorId=4, type="Inoperative"
        )
        assert (code, changed) == (200, {"result": {"status": "Accepted"}})
        assert await r.connector_becomes("SIM-RES-ANSWERS", 3, "Faulted") == "Faulted"
        assert await r.connector_becomes("SIM-RES-ANSWERS", 4, "Unavailable") == "Unavailable"

        answers = {}
        for connector in (1, 2, 3, 4, 9):  # 9: no such connector
            answers[connector] = await r.reserve("SIM-RES-ANSWERS", connectorId=connector)
        refusing = await r.charger("SIM-RES-NONE", reservations=False)
        not_taking = await r.reserve("SIM-RES-NONE", connectorId=1)

        assert {c: status for c, (status, _) in answers.items()} == {
            1: "Accepted",
            2: "Occupied",
            3: "Faulted",
            4: "Unavailable",
            9: "Rejected",
        }
        assert not_taking[0] == "Rejected"  # a charger that takes no reservations
        await r.charger("SIM-RES-NO-ZERO", reserve_connector_zero=False)
        no_zero = await r.reserve("SIM-RES-NO-ZERO", connectorId=0)
        assert no_zero[0] == "Rejected"  # ReserveConnectorZeroSupported false
        assert (await r.reservation(no_zero[1]))["status"] == "Rejected"
        for connector, (status, reservation_id) in [*answers.items(), (1, not_taking)]:
            record = await r.reservation(reservation_id)
            assert record["status"] == status
            assert [h["status"] for h in record["history"]] == ["Requested", status]
            assert record["connectorId"] == connector
        # what the simulator holds is what Voltaro holds: the one Accepted reservation
        accepted_id = answers[1][1]
        assert list(charger.reservations) == [accepted_id] and refusing.reservations == {}
        assert await r.connector_becomes("SIM-RES-ANSWERS", 1, "Reserved") == "Reserved"
        active = await r.http.get(
            "/api/v1/reservations", params={"chargePointId": "SIM-RES-ANSWERS", "active": "true"}
        )
        assert [item["reservationId"] for item in active.json()["items"]] == [accepted_id]


async def test_a_reservation_is_cancelled_and_an_unknown_one_is_rejected_by_the_simulator(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        charger = await r.charger("SIM-RES-CANCEL")
        status, reservation_id = await r.reserve("SIM-RES-CANCEL", connectorId=2)
        assert status == "Accepted"
        assert await r.connector_becomes("SIM-RES-CANCEL", 2, "Reserved") == "Reserved"

        code, cancelled = await r.command(
            "SIM-RES-CANCEL", "CancelReservation", reservationId=reservation_id
        )
        assert (code, cancelled) == (200, {"result": {"status": "Accepted"}})
        assert charger.reservations == {}
        assert await r.connector_becomes("SIM-RES-CANCEL", 2, "Available") == "Available"

        code, again = await r.command(
            "SIM-RES-CANCEL", "CancelReservation", reservationId=reservation_id
        )
        assert (code, again) == (200, {"result": {"status": "Rejected"}})
        record = await r.reservation(reservation_id)
        assert record["status"] == "Cancelled"
        assert [h["status"] for h in record["history"]] == [
            "Requested",
            "Accepted",
            "Cancelled",
            "CancelRejected",
        ]


async def test_a_reservation_is_used_by_the_simulators_transaction_that_names_it(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        await add_tags(r.voltaro, "RES-TAG")
        charger = await r.charger("SIM-RES-USED")
        status, reservation_id = await r.reserve("SIM-RES-USED", connectorId=1)
        assert status == "Accepted"
        assert await r.connector_becomes("SIM-RES-USED", 1, "Reserved") == "Reserved"

        nursery.start_soon(lambda: charger.charge(1, "RES-TAG", seconds=3600))
        await session_started(charger, 1)
        used = await r.settles(reservation_id, "Used")
        [transaction] = await r.rows(
            "SELECT transaction_id, connector_id, id_tag, reservation_id FROM transactions"
            " WHERE charge_point_id = 'SIM-RES-USED'"
        )
        assert transaction["reservation_id"] == reservation_id  # StartTransaction named it
        assert (transaction["connector_id"], transaction["id_tag"]) == (1, "RES-TAG")
        assert used["status"] == "Used"
        assert used["transactionId"] == transaction["transaction_id"]
        assert [h["status"] for h in used["history"]] == ["Requested", "Accepted", "Used"]
        assert charger.reservations == {}
        assert await r.connector_becomes("SIM-RES-USED", 1, "Charging") == "Charging"


async def test_a_reservation_of_connector_0_is_used_on_any_connector_of_the_simulator(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        await add_tags(r.voltaro, "ANY-TAG", "OTHER-TAG")
        charger = await r.charger("SIM-RES-ZERO")
        status, reservation_id = await r.reserve("SIM-RES-ZERO", connectorId=0, idTag="ANY-TAG")
        assert status == "Accepted"
        assert [res.connector_id for res in charger.reservations.values()] == [0]
        detail = (await r.http.get("/api/v1/charge-points/SIM-RES-ZERO")).json()
        assert [a["connectorId"] for a in detail["activeReservations"]] == [0]
        # one of two connectors is enough for it: no connector shows Reserved
        assert await r.connectors("SIM-RES-ZERO") == {
            0: "Available",
            1: "Available",
            2: "Available",
        }
        # two connectors: a second connector-0 reservation fits, a third would leave none
        _, other_id = await r.reserve("SIM-RES-ZERO", connectorId=0, idTag="OTHER-TAG")
        assert (await r.reservation(other_id))["status"] == "Accepted"
        assert (await r.reserve("SIM-RES-ZERO", connectorId=0, idTag="THIRD"))[0] == "Occupied"
        # both free connectors are kept for the two: they show Reserved (OCA TC_049)
        assert await r.connector_becomes("SIM-RES-ZERO", 1, "Reserved") == "Reserved"
        assert await r.connector_becomes("SIM-RES-ZERO", 2, "Reserved") == "Reserved"

        nursery.start_soon(lambda: charger.charge(2, "ANY-TAG", seconds=3600))
        await session_started(charger, 2)
        used = await r.settles(reservation_id, "Used")
        # the other one's tag still has connector 1, and only that tag
        assert await r.connector_becomes("SIM-RES-ZERO", 2, "Charging") == "Charging"
        assert (await r.connectors("SIM-RES-ZERO"))[1] == "Reserved"
        assert [res.reservation_id for res in charger.reservations.values()] == [other_id]
        code, cancelled = await r.command(
            "SIM-RES-ZERO", "CancelReservation", reservationId=other_id
        )
        assert (code, cancelled) == (200, {"result": {"status": "Accepted"}})
        assert await r.connector_becomes("SIM-RES-ZERO", 1, "Available") == "Available"
        [transaction] = await r.rows(
            "SELECT transaction_id, connector_id, reservation_id FROM transactions"
            " WHERE charge_point_id = 'SIM-RES-ZERO'"
        )
        assert (transaction["connector_id"], transaction["reservation_id"]) == (
            2,
            reservation_id,
        )
        assert used["status"] == "Used" and used["transactionId"] == transaction["transaction_id"]
        assert used["history"][-1]["detail"].endswith("connector 2")


async def test_a_reserved_connector_of_the_simulator_refuses_another_tag_and_admits_the_group(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        for tag, body in (("FLEET", {}), ("DRIVER-A", {"parentIdTag": "FLEET"})):
            assert (await r.http.put(f"/api/v1/id-tags/{tag}", json=body)).status_code < 300
        assert (
            await r.http.put("/api/v1/id-tags/DRIVER-B", json={"parentIdTag": "FLEET"})
        ).status_code < 300
        await add_tags(r.voltaro, "STRANGER")
        charger = await r.charger("SIM-RES-TAGS")
        status, reservation_id = await r.reserve("SIM-RES-TAGS", connectorId=1, idTag="DRIVER-A")
        assert status == "Accepted"
        # Voltaro sent the tag's parent from the id tag table
        assert charger.reservations[reservation_id].parent_id_tag == "FLEET"
        assert await r.connector_becomes("SIM-RES-TAGS", 1, "Reserved") == "Reserved"

        assert await charger.charge(1, "STRANGER", seconds=60) is False  # refused at the charger
        assert charger.stats.sessions_refused == 1
        assert (
            await r.rows("SELECT 1 FROM transactions WHERE charge_point_id = 'SIM-RES-TAGS'") == []
        )
        assert (await r.reservation(reservation_id))["status"] == "Accepted"
        assert (await r.connectors("SIM-RES-TAGS"))[1] == "Reserved"

        nursery.start_soon(lambda: charger.charge(1, "DRIVER-B", seconds=3600))  # same parent
        await session_started(charger, 1)
        used = await r.settles(reservation_id, "Used")
        [transaction] = await r.rows(
            "SELECT id_tag, reservation_id FROM transactions WHERE charge_point_id = 'SIM-RES-TAGS'"
        )
        assert transaction == {"id_tag": "DRIVER-B", "reservation_id": reservation_id}
        assert used["status"] == "Used"


async def test_a_reservation_expires_on_both_sides(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        charger = await r.charger("SIM-RES-EXPIRE")
        status, reservation_id = await r.reserve("SIM-RES-EXPIRE", expiryDate=later(2))
        assert status == "Accepted"
        assert await r.connector_becomes("SIM-RES-EXPIRE", 1, "Reserved") == "Reserved"

        expired = await r.settles(reservation_id, "Expired")
        assert expired["status"] == "Expired"
        assert [h["status"] for h in expired["history"]] == ["Requested", "Accepted", "Expired"]
        # the simulator freed the connector at the expiry too, and said so
        assert await r.connector_becomes("SIM-RES-EXPIRE", 1, "Available") == "Available"
        assert charger.reservations == {} and charger.connectors[1].status == "Available"
        history = await r.rows(
            "SELECT status FROM connector_status_history"
            " WHERE charge_point_id = 'SIM-RES-EXPIRE' AND connector_id = 1 ORDER BY id"
        )
        assert [row["status"] for row in history] == ["Available", "Reserved", "Available"]


async def test_a_reservation_ends_when_the_operator_makes_its_connector_inoperative(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        charger = await r.charger("SIM-RES-OFF")
        _, first = await r.reserve("SIM-RES-OFF", connectorId=1)
        _, second = await r.reserve("SIM-RES-OFF", connectorId=2)
        assert await r.connector_becomes("SIM-RES-OFF", 1, "Reserved") == "Reserved"

        code, answer = await r.command(
            "SIM-RES-OFF", "ChangeAvailability", connectorId=1, type="Inoperative"
        )
        assert (code, answer) == (200, {"result": {"status": "Accepted"}})
        ended = await r.settles(first, "ConnectorUnavailable")
        assert ended["status"] == "ConnectorUnavailable"
        assert ended["history"][-1]["detail"] == "connector 1 became Unavailable"
        assert list(charger.reservations) == [second]
        assert (await r.reservation(second))["status"] == "Accepted"
        assert await r.connector_becomes("SIM-RES-OFF", 1, "Unavailable") == "Unavailable"

        # the whole charger Inoperative: the other reservation ends as well
        code, answer = await r.command(
            "SIM-RES-OFF", "ChangeAvailability", connectorId=0, type="Inoperative"
        )
        assert (code, answer) == (200, {"result": {"status": "Accepted"}})
        assert (await r.settles(second, "ConnectorUnavailable"))["status"] == (
            "ConnectorUnavailable"
        )
        assert charger.reservations == {}


async def test_a_remote_start_on_a_reserved_connector_of_the_simulator(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        await add_tags(r.voltaro, "RES-TAG", "STRANGER")
        charger = await r.charger("SIM-RES-REMOTE")
        status, reservation_id = await r.reserve("SIM-RES-REMOTE", connectorId=1)
        assert status == "Accepted"
        assert await r.connector_becomes("SIM-RES-REMOTE", 1, "Reserved") == "Reserved"
        # a triggered StatusNotification repeats Reserved: no transition, nothing ends
        code, answer = await r.command(
            "SIM-RES-REMOTE", "TriggerMessage", requestedMessage="StatusNotification", connectorId=1
        )
        assert (code, answer) == (200, {"result": {"status": "Accepted"}})

        code, refused = await r.command(
            "SIM-RES-REMOTE", "RemoteStartTransaction", connectorId=1, idTag="STRANGER"
        )
        assert (code, refused) == (200, {"result": {"status": "Rejected"}})
        code, accepted = await r.command(
            "SIM-RES-REMOTE", "RemoteStartTransaction", connectorId=1, idTag="RES-TAG"
        )
        assert (code, accepted) == (200, {"result": {"status": "Accepted"}})
        await session_started(charger, 1)
        used = await r.settles(reservation_id, "Used")
        [transaction] = await r.rows(
            "SELECT transaction_id, id_tag, reservation_id FROM transactions"
            " WHERE charge_point_id = 'SIM-RES-REMOTE'"
        )
        assert (transaction["id_tag"], transaction["reservation_id"]) == ("RES-TAG", reservation_id)
        assert used["status"] == "Used" and used["transactionId"] == transaction["transaction_id"]


async def test_a_reservation_ends_when_its_connector_of_the_simulator_faults(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        charger = await r.charger("SIM-RES-FAULT")
        _, reservation_id = await r.reserve("SIM-RES-FAULT", connectorId=2)
        assert await r.connector_becomes("SIM-RES-FAULT", 2, "Reserved") == "Reserved"
        await charger.fault(2)
        ended = await r.settles(reservation_id, "ConnectorFaulted")
        assert ended["status"] == "ConnectorFaulted"
        assert charger.reservations == {}
        await charger.repair(2)
        assert await r.connector_becomes("SIM-RES-FAULT", 2, "Available") == "Available"
        assert (await r.reservation(reservation_id))["status"] == "ConnectorFaulted"


# ---- Remote Trigger ---------------------------------------------------------------------


# The CALLs a charger makes (the log keeps a charger's CALLRESULTs with their CALL's action).
CHARGER_ACTIONS = [
    "Authorize",
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
]


async def inbound(r: Rig, charge_point_id: str) -> dict[str, int]:
    """How many CALLs of each action Voltaro has logged from the charger."""
    rows = await r.rows(
        "SELECT action, count(*) AS n FROM message_log WHERE charge_point_id = $1"
        " AND direction = 'in' AND action = ANY($2) GROUP BY action",
        charge_point_id,
        CHARGER_ACTIONS,
    )
    return {row["action"]: row["n"] for row in rows}


async def test_every_requested_message_is_triggered_in_the_simulator_and_stored(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    cp = "SIM-TRIG-ALL"
    # (body, the CALLs the simulator then sends)
    cases: list[tuple[dict[str, Any], dict[str, int]]] = [
        ({"requestedMessage": "BootNotification"}, {"BootNotification": 1}),
        (
            {"requestedMessage": "DiagnosticsStatusNotification"},
            {"DiagnosticsStatusNotification": 1},
        ),
        ({"requestedMessage": "FirmwareStatusNotification"}, {"FirmwareStatusNotification": 1}),
        ({"requestedMessage": "Heartbeat"}, {"Heartbeat": 1}),
        ({"requestedMessage": "MeterValues"}, {"MeterValues": 2}),  # each connector
        ({"requestedMessage": "MeterValues", "connectorId": 0}, {"MeterValues": 1}),
        ({"requestedMessage": "MeterValues", "connectorId": 2}, {"MeterValues": 1}),
        ({"requestedMessage": "StatusNotification"}, {"StatusNotification": 3}),  # 0, 1, 2
        ({"requestedMessage": "StatusNotification", "connectorId": 1}, {"StatusNotification": 1}),
        ({"requestedMessage": "Heartbeat", "connectorId": 7}, {"Heartbeat": 1}),  # ignored (5.17)
    ]
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        charger = await r.charger(cp)
        await boot_logged(r, cp)
        for body, expected in cases:
            before = await inbound(r, cp)
            code, answer = await r.command(cp, "TriggerMessage", **body)
            assert (code, answer) == (200, {"result": {"status": "Accepted"}}), body
            wanted = {action: before.get(action, 0) + n for action, n in expected.items()}
            now: dict[str, int] = {}

            async def arrived(wanted: dict[str, int] = wanted) -> bool:
                nonlocal now
                now = await inbound(r, cp)
                return all(now.get(action, 0) >= n for action, n in wanted.items())

            with contextlib.suppress(trio.TooSlowError):
                await wait_for(arrived, WAIT)
            assert {a: now.get(a, 0) for a in wanted} == wanted, body

        stored = await r.rows(
            "SELECT connector_id, transaction_id, meter_value FROM meter_value_sets"
            " WHERE charge_point_id = $1 ORDER BY id",
            cp,
        )
        detail = (await r.http.get(f"/api/v1/charge-points/{cp}")).json()
    # Outside a transaction, stored against the connector (0: the charger), not refused:
    assert [(row["connector_id"], row["transaction_id"]) for row in stored] == [
        (1, None),
        (2, None),
        (0, None),
        (2, None),
    ]
    contexts = {
        v["context"] for row in stored for m in row["meter_value"] for v in m["sampledValue"]
    }
    assert contexts == {"Trigger"}
    assert detail["registrationStatus"] == "Accepted"  # the triggered boot keeps it Accepted
    assert detail["firmwareStatus"] == "Idle" and detail["diagnosticsStatus"] == "Idle"
    assert {c["connectorId"]: c["status"] for c in detail["connectors"]} == {
        0: "Available",
        1: "Available",
        2: "Available",
    }
    assert charger.answered.count("TriggerMessage") == len(cases)
    assert charger.stats.call_errors == {}  # Voltaro answered every triggered message


async def boot_logged(r: Rig, cp: str, connectors: int = 2) -> None:
    """Until the message log holds the charger's boot and its first StatusNotifications (the
    log is written in batches, after the answers): counts taken then are settled."""

    async def logged() -> bool:
        seen = await inbound(r, cp)
        return seen.get("BootNotification", 0) >= 1 and (
            seen.get("StatusNotification", 0) >= connectors + 1
        )

    await wait_for(logged, WAIT)


async def test_a_triggered_meter_values_during_a_transaction_carries_it(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        await add_tags(r.voltaro, "DRIVER")
        charger = await r.charger("SIM-TRIG-TX")
        nursery.start_soon(lambda: charger.charge(1, "DRIVER", seconds=3600))
        await session_started(charger, 1)
        [transaction] = await r.rows(
            "SELECT transaction_id FROM transactions WHERE charge_point_id = 'SIM-TRIG-TX'"
        )
        code, answer = await r.command(
            "SIM-TRIG-TX", "TriggerMessage", requestedMessage="MeterValues", connectorId=1
        )
        assert (code, answer) == (200, {"result": {"status": "Accepted"}})

        async def stored() -> list[dict[str, Any]]:
            return await r.rows(
                "SELECT connector_id, transaction_id FROM meter_value_sets"
                " WHERE charge_point_id = 'SIM-TRIG-TX'"
            )

        await wait_for(stored, WAIT)
        assert await stored() == [
            {"connector_id": 1, "transaction_id": transaction["transaction_id"]}
        ]


async def test_trigger_message_not_implemented_and_rejected_by_the_simulator(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        charger = await r.charger(
            "SIM-TRIG-NO", trigger_messages=frozenset({"Heartbeat", "MeterValues"})
        )
        await boot_logged(r, "SIM-TRIG-NO")
        before = await inbound(r, "SIM-TRIG-NO")
        answers = [
            await r.command("SIM-TRIG-NO", "TriggerMessage", **body)
            for body in (
                {"requestedMessage": "FirmwareStatusNotification"},
                {"requestedMessage": "StatusNotification", "connectorId": 1},
                {"requestedMessage": "MeterValues", "connectorId": 3},  # no such connector
                {"requestedMessage": "Heartbeat"},  # then one it does: the last thing sent
            )
        ]
        assert answers == [
            (200, {"result": {"status": "NotImplemented"}}),
            (200, {"result": {"status": "NotImplemented"}}),
            (200, {"result": {"status": "Rejected"}}),
            (200, {"result": {"status": "Accepted"}}),
        ]
        wanted = before.get("Heartbeat", 0) + 1
        await wait_for(lambda: _count_at_least(r, "SIM-TRIG-NO", "Heartbeat", wanted), WAIT)
        after = await inbound(r, "SIM-TRIG-NO")
        # nothing was sent for the refusals: only the Heartbeat is new
        assert {a: n - before.get(a, 0) for a, n in after.items() if n != before.get(a, 0)} == {
            "Heartbeat": 1
        }
        assert charger.answered.count("TriggerMessage") == 4


async def _count_at_least(r: Rig, cp: str, action: str, n: int) -> bool:
    return (await inbound(r, cp)).get(action, 0) >= n


async def test_a_pending_simulator_is_registered_by_a_triggered_boot_notification(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    """An operator accepts a Pending charger and triggers its BootNotification (issue 18
    offers that button): the Accepted answer registers the charger at once, as a real one's
    would, not at its next Pending retry a minute later."""
    async with rig(nursery, voltaro_settings, tmp_path, unknown_chargers="pending") as r:
        charger = SimulatedChargePoint(
            ChargerOptions("SIM-TRIG-PENDING", base_url(r.voltaro), QUIET, call_timeout=5),
            REGISTRY,
        )
        await nursery.start(charger.run)

        async def pending() -> bool:
            # Voltaro commits the charger Pending before it answers: the simulator counts
            # the boot when the answer comes (a CI run once read the status in between)
            found = await r.http.get("/api/v1/charge-points/SIM-TRIG-PENDING")
            status = found.json()["registrationStatus"] if found.status_code == 200 else None
            return status == "Pending" and charger.boots == 1

        await wait_for(pending, WAIT)
        assert not charger.registered
        accepted = await r.http.put(
            "/api/v1/charge-points/SIM-TRIG-PENDING", json={"registrationStatus": "Accepted"}
        )
        assert accepted.status_code == 200
        code, answer = await r.command(
            "SIM-TRIG-PENDING", "TriggerMessage", requestedMessage="BootNotification"
        )
        assert (code, answer) == (200, {"result": {"status": "Accepted"}})
        with contextlib.suppress(trio.TooSlowError):
            await wait_for(lambda: charger.registered, WAIT)
        assert charger.registered
        # registered: it reports its connectors, as after any accepted boot
        assert await r.connector_becomes("SIM-TRIG-PENDING", 2, "Available") == "Available"
        assert charger.boots == 1  # the Pending retry had not come yet


async def test_a_reservation_used_offline_in_time_is_used_when_its_start_arrives_late(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    """The driver came in time, but the charger was offline: its StartTransaction naming the
    reservation arrives after the expiry, when Voltaro has marked it Expired. The transaction
    started before the expiry (its timestamp), so the reservation was Used."""
    async with rig(nursery, voltaro_settings, tmp_path) as r:
        await add_tags(r.voltaro, "RES-TAG")
        charger = await r.charger("SIM-RES-LATE")
        # the tag charges once online, so that the charger's cache knows it when offline
        nursery.start_soon(lambda: charger.charge(2, "RES-TAG", seconds=3600))
        await session_started(charger, 2)
        session = charger.connectors[2].session
        assert session is not None
        session.stop("Local")
        await wait_for(lambda: charger.connectors[2].session is None and not charger.queue, WAIT)

        status, reservation_id = await r.reserve("SIM-RES-LATE", connectorId=1, expiryDate=later(3))
        assert status == "Accepted"
        assert await r.connector_becomes("SIM-RES-LATE", 1, "Reserved") == "Reserved"
        charger.network_down()
        nursery.start_soon(lambda: charger.charge(1, "RES-TAG", seconds=3600))
        await wait_for(lambda: charger.connectors[1].session is not None, WAIT)
        assert charger.reservations == {}  # used at the charger, in time
        assert (await r.settles(reservation_id, "Expired"))["status"] == "Expired"

        charger.network_up()
        # Preparing and Charging could not be sent offline: Voltaro sees Reserved -> Charging
        r.skipped.append(("SIM-RES-LATE", 1, "Reserved", "Charging"))
        await wait_for(lambda: len(charger.transaction_ids) == 2, WAIT)
        used = await r.settles(reservation_id, "Used")
        rows = await r.rows(
            "SELECT transaction_id, reservation_id FROM transactions"
            " WHERE charge_point_id = 'SIM-RES-LATE' AND connector_id = 1"
        )
        assert [row["reservation_id"] for row in rows] == [reservation_id]
        assert used["status"] == "Used"
        assert used["transactionId"] == rows[0]["transaction_id"]
        assert [h["status"] for h in used["history"]] == [
            "Requested",
            "Accepted",
            "Expired",
            "Used",
        ]


# ---- Local Auth List Management -----------------------------------------------------------

LISTS = {"local_list_debounce": 1.0}  # changes made within a second go in one update


async def list_updates(r: Rig, charge_point_id: str, count: int) -> list[dict[str, Any]]:
    """The SendLocalLists Voltaro sent the charger, as the message log has them, once there
    are ``count`` (or as many as there are when the wait runs out)."""
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal found
        rows = await r.rows(
            "SELECT payload FROM message_log WHERE charge_point_id = $1 AND direction = 'out'"
            " AND action = 'SendLocalList' AND payload ? 'updateType' ORDER BY id",
            charge_point_id,
        )
        found = [
            row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"])
            for row in rows
        ]
        return len(found) >= count

    with contextlib.suppress(trio.TooSlowError):
        await wait_for(enough, WAIT)
    return found


async def list_record(r: Rig, charge_point_id: str, **wanted: Any) -> dict[str, Any]:
    """The charger's item of ``GET /api/v1/local-lists`` once it has ``wanted`` (or as it is
    when the wait runs out: an answer is recorded after the charger sent it)."""
    item: dict[str, Any] = {}

    async def has_it() -> bool:
        nonlocal item
        page = await r.http.get("/api/v1/local-lists", params={"chargePointId": charge_point_id})
        item = page.json()["items"][0] if page.json()["items"] else {}
        return all(item.get(key) == value for key, value in wanted.items())

    with contextlib.suppress(trio.TooSlowError):
        await wait_for(has_it, WAIT)
    return item


def listed(*tags: str, status: str = "Accepted") -> dict[str, dict[str, Any]]:
    return {tag: {"status": status} for tag in tags}


async def test_the_simulators_local_list_full_differential_mismatch_resync_and_split(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path, **LISTS) as r:
        await add_tags(r.voltaro, "LL-A", "LL-B", "LL-C")
        charger = await r.charger("SIM-LL")
        # Online: its version asked, then the whole list as one Full.
        await wait_for(lambda: charger.local_list.entries == listed("LL-A", "LL-B", "LL-C"), WAIT)
        assert charger.answered[:1] == ["GetLocalListVersion"]
        synced = await list_record(r, "SIM-LL", version=1, inSync=True)
        assert (synced["state"], synced["entries"]) == ("synced", 3)

        # Through the API, a tag blocked and one added: one Differential with both changes.
        assert (await r.http.put("/api/v1/id-tags/LL-B", json={"status": "Blocked"})).is_success
        assert (await r.http.put("/api/v1/id-tags/LL-D", json={})).is_success
        wanted = listed("LL-A", "LL-C", "LL-D") | listed("LL-B", status="Blocked")
        await wait_for(lambda: charger.local_list.entries == wanted, WAIT)
        sent = await list_updates(r, "SIM-LL", 2)
        assert [(m["updateType"], m["listVersion"]) for m in sent] == [
            ("Full", 1),
            ("Differential", 2),
        ]
        assert sorted(e["idTag"] for e in sent[1]["localAuthorizationList"]) == ["LL-B", "LL-D"]
        assert charger.local_list.version == 2
        assert (await list_record(r, "SIM-LL", version=2, inSync=True))["inSync"] is True

        # Its list moved on without Voltaro (another Central System, a service tool): the
        # next Differential is answered VersionMismatch; Voltaro asks the version and sends
        # the whole list, one version further.
        charger.local_list.version = 50
        mark = len(charger.answered)
        assert (await r.http.delete("/api/v1/id-tags/LL-A")).is_success
        await wait_for(lambda: charger.local_list.version == 51, WAIT)
        assert charger.answered[mark:] == ["SendLocalList", "GetLocalListVersion", "SendLocalList"]
        assert charger.local_list.entries == listed("LL-C", "LL-D") | listed(
            "LL-B", status="Blocked"
        )
        resync = (await list_updates(r, "SIM-LL", 4))[2:]
        assert [(m["updateType"], m["listVersion"]) for m in resync] == [
            ("Differential", 3),
            ("Full", 51),
        ]
        assert (await list_record(r, "SIM-LL", version=51, inSync=True))["state"] == "synced"

        # A charger that takes 2 entries a message and holds 2: a Full of the first two tags
        # (by id) in one message; with room for 3, a Full of 2 and a Differential of 1.
        small = await r.charger(
            "SIM-LL-SMALL", send_local_list_max_length=2, local_list_max_length=3
        )
        await wait_for(lambda: len(small.local_list.entries) == 3, WAIT)
        assert small.local_list.entries == listed("LL-C", "LL-D") | listed("LL-B", status="Blocked")
        split = await list_updates(r, "SIM-LL-SMALL", 2)
        assert [(m["updateType"], len(m["localAuthorizationList"])) for m in split] == [
            ("Full", 2),
            ("Differential", 1),
        ]
        await add_tags(r.voltaro, "LL-0")  # first by id: LL-D no longer fits
        await wait_for(lambda: "LL-0" in small.local_list.entries, WAIT)
        assert sorted(small.local_list.entries) == ["LL-0", "LL-B", "LL-C"]
        item = await list_record(r, "SIM-LL-SMALL", version=3, inSync=True)
        assert (item["entries"], item["inSync"]) == (3, True)


async def test_a_simulator_without_local_lists_is_recorded_and_left_alone(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    async with rig(nursery, voltaro_settings, tmp_path, **LISTS) as r:
        await add_tags(r.voltaro, "LL-A")
        without = await r.charger("SIM-LL-NONE", local_auth_list=False)
        listening = await r.charger("SIM-LL-YES")
        await wait_for(lambda: listening.local_list.version == 1, WAIT)
        minus = await list_record(r, "SIM-LL-NONE", state="not_supported")
        assert (minus["lastAnswer"], minus["reportedVersion"]) == ("listVersion -1", -1)

        # An operator's SendLocalList is answered NotSupported, and recorded so.
        full = {"listVersion": 1, "updateType": "Full", "localAuthorizationList": []}
        code, answer = await r.command("SIM-LL-NONE", "SendLocalList", **full)
        assert (code, answer) == (200, {"result": {"status": "NotSupported"}})
        refused = await list_record(r, "SIM-LL-NONE", lastAnswer="NotSupported")
        assert (refused["state"], refused["inSync"]) == ("not_supported", False)

        # A tag change reaches the other charger; this one gets nothing more.
        await add_tags(r.voltaro, "LL-B")
        await wait_for(lambda: listening.local_list.version == 2, WAIT)
        assert without.answered == ["GetLocalListVersion", "SendLocalList"]
        assert without.local_list.entries == {}


async def test_offline_the_simulator_authorizes_from_the_local_list_voltaro_sent(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    """A tag Voltaro put on the list (never presented online, so in no cache) charges while
    Voltaro is out of reach, one blocked through the API does not, nor an unknown one; the
    session is recorded when the charger is back."""
    async with rig(nursery, voltaro_settings, tmp_path, **LISTS) as r:
        await add_tags(r.voltaro, "LL-DRIVER", "LL-STOLEN")
        charger = await r.charger("SIM-LL-OFF")
        await wait_for(lambda: charger.local_list.version == 1, WAIT)
        assert (
            await r.http.put("/api/v1/id-tags/LL-STOLEN", json={"status": "Blocked"})
        ).is_success
        await wait_for(lambda: charger.local_list.version == 2, WAIT)
        assert charger.auth_cache.entries == {}

        charger.network_down()
        assert not await charger.charge(2, "LL-STOLEN", seconds=1)
        assert not await charger.charge(2, "NOT-LISTED", seconds=1)
        assert await charger.charge(1, "LL-DRIVER", seconds=1)  # started and ended offline
        assert [item.action for item in charger.queue] == ["StartTransaction", "StopTransaction"]

        charger.network_up()
        await wait_for(lambda: not charger.queue and len(charger.transaction_ids) == 1, WAIT)
        query = (
            "SELECT id_tag, id_tag_status, stopped_at IS NOT NULL AS stopped FROM transactions"
            " WHERE charge_point_id = 'SIM-LL-OFF'"
        )
        await wait_for(lambda: stopped_rows(r, query), WAIT)
        rows = await r.rows(query)
        assert [tuple(row.values()) for row in rows] == [("LL-DRIVER", "Accepted", True)]


async def stopped_rows(r: Rig, query: str) -> bool:
    rows = await r.rows(query)
    return bool(rows) and all(row["stopped"] for row in rows)
