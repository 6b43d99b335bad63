"""The Reservation profile against the `ocpp` package's v16 ChargePoint: ReserveNow with every
answer a charger can give, CancelReservation, and what happens to a reservation after it is
Accepted (used by its transaction, by its tag or a tag of the same group, on its connector or
any for connector 0; cancelled; expired; ended by its connector becoming Unavailable or
Faulted), as the listing, the charge point's detail and the dashboard show it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from ocpp.exceptions import InternalError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from tests.admin.conftest import Live, booted_peer
from tests.threaded import run_asyncio
from voltaro import cli

RESERVE = "/api/v1/charge-points/{}/commands/ReserveNow"
CANCEL = "/api/v1/charge-points/{}/commands/CancelReservation"


def later(seconds: float = 3600) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class ReservingCharger(ChargePoint):  # type: ignore[misc]
    """Answers ReserveNow as told (``answer``), holds what it accepted, reports Reserved."""

    def __init__(self, charge_point_id: str, connection: Any) -> None:
        super().__init__(charge_point_id, connection)
        self.answer = "Accepted"
        self.reserved: dict[int, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []

    @on(Action.reserve_now)
    def on_reserve_now(self, **request: Any) -> Any:
        self.requests.append(request)
        if self.answer == "error":
            raise InternalError("the reservation store is broken")
        if self.answer == "Accepted":
            self.reserved[request["reservation_id"]] = request
        return call_result.ReserveNow(status=self.answer)

    @after(Action.reserve_now)
    async def report_reserved(self, connector_id: int, **_: Any) -> None:
        if self.answer == "Accepted" and connector_id != 0:
            await self.status(connector_id, "Reserved")

    @on(Action.cancel_reservation)
    def on_cancel(self, reservation_id: int) -> Any:
        held = self.reserved.pop(reservation_id, None)
        return call_result.CancelReservation(status="Accepted" if held else "Rejected")

    async def status(self, connector_id: int, status: str, error: str = "NoError") -> None:
        await self.call(
            call.StatusNotification(connector_id=connector_id, error_code=error, status=status)
        )

    async def start_transaction(
        self,
        id_tag: str,
        connector_id: int,
        reservation_id: int | None = None,
        timestamp: str | None = None,
    ) -> int:
        started = await self.call(
            call.StartTransaction(
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start=0,
                timestamp=timestamp or later(0),
                reservation_id=reservation_id,
            )
        )
        transaction_id: int = started.transaction_id
        return transaction_id


def connected(
    live: Live, charge_point_id: str
) -> contextlib.AbstractAsyncContextManager[ReservingCharger]:
    return booted_peer(live, charge_point_id, ReservingCharger)


def run(
    live: Live,
    charge_point_id: str,
    scenario: Callable[[httpx.AsyncClient, ReservingCharger], Awaitable[Any]],
) -> Any:
    async def main() -> Any:
        async with connected(live, charge_point_id) as charger, live.async_client() as http:
            return await scenario(http, charger)

    return run_asyncio(main())


async def reserve(
    http: httpx.AsyncClient, charge_point_id: str, **body: Any
) -> tuple[int, dict[str, Any]]:
    body.setdefault("connectorId", 1)
    body.setdefault("idTag", "RES-TAG")
    body.setdefault("expiryDate", later())
    response = await http.post(RESERVE.format(charge_point_id), json=body)
    return response.status_code, response.json()


async def reservation(http: httpx.AsyncClient, reservation_id: int) -> dict[str, Any]:
    listed = (await http.get("/api/v1/reservations", params={"limit": 1000})).json()["items"]
    return next(r for r in listed if r["reservationId"] == reservation_id)


async def settles(
    http: httpx.AsyncClient, reservation_id: int, status: str, seconds: float = 20
) -> dict[str, Any]:
    """The reservation once it has ``status`` (changes that follow a charger's message are
    applied after the message is answered)."""
    deadline = time.monotonic() + seconds
    while True:
        found = await reservation(http, reservation_id)
        if found["status"] == status or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


def test_every_answer_to_reserve_now_is_recorded(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        answers = []
        for answer in ("Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"):
            charger.answer = answer
            answers.append(await reserve(http, "RES-ANSWERS", reservationId=999))
        return [answers, charger.requests]

    answers, requests = run(live, "RES-ANSWERS", scenario)
    ids = [body["allocated"]["reservationId"] for _, body in answers]
    assert [(status, body["result"]) for status, body in answers] == [
        (200, {"status": s}) for s in ("Accepted", "Faulted", "Occupied", "Rejected", "Unavailable")
    ]
    assert 999 not in ids and len(set(ids)) == 5  # Voltaro's ids, not the operator's
    assert [r["reservation_id"] for r in requests] == ids
    assert all("parent_id_tag" not in r for r in requests)  # RES-TAG is in no group
    with httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {live.token}"}) as api:
        listed = api.get("/api/v1/reservations", params={"chargePointId": "RES-ANSWERS"}).json()
    assert listed["total"] == 5
    by_id = {item["reservationId"]: item for item in listed["items"]}
    assert [by_id[i]["status"] for i in ids] == [
        "Accepted",
        "Faulted",
        "Occupied",
        "Rejected",
        "Unavailable",
    ]
    assert [h["status"] for h in by_id[ids[1]]["history"]] == ["Requested", "Faulted"]
    assert by_id[ids[0]]["connectorId"] == 1 and by_id[ids[0]]["idTag"] == "RES-TAG"


def test_a_reservation_is_used_by_its_transaction_or_by_its_group(live: Live) -> None:
    with live.client() as api:
        api.put("/api/v1/id-tags/FLEET", json={})
        api.put("/api/v1/id-tags/DRIVER-A", json={"parentIdTag": "FLEET"})
        api.put("/api/v1/id-tags/DRIVER-B", json={"parentIdTag": "FLEET"})

    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        _, named = await reserve(http, "RES-USED", connectorId=1, idTag="DRIVER-A")
        named_id = named["allocated"]["reservationId"]
        transaction = await charger.start_transaction("DRIVER-A", 1, reservation_id=named_id)
        used_by_id = await settles(http, named_id, "Used")
        _, grouped = await reserve(http, "RES-USED", connectorId=2, idTag="DRIVER-A")
        grouped_id = grouped["allocated"]["reservationId"]
        await charger.start_transaction("STRANGER", 2)  # not the tag, not its group: still reserved
        await charger.start_transaction(
            "DRIVER-B", 3
        )  # the group, another connector: still reserved
        await charger.start_transaction("driver-b", 2)  # the group (tags match case-insensitively)
        used_by_group = await settles(http, grouped_id, "Used")
        return [transaction, used_by_id, used_by_group, charger.requests[-1]]

    transaction, used_by_id, used_by_group, sent = run(live, "RES-USED", scenario)
    assert used_by_id["status"] == "Used" and used_by_id["transactionId"] == transaction
    assert [h["status"] for h in used_by_id["history"]] == ["Requested", "Accepted", "Used"]
    assert used_by_group["status"] == "Used"
    assert used_by_group["history"][-1]["detail"].endswith("on connector 2")
    assert sent["parent_id_tag"] == "FLEET"  # the tag's parent, from the id tag table


def test_a_reservation_of_connector_0_is_for_any_connector(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        _, body = await reserve(http, "RES-ANY", connectorId=0, idTag="ANY-TAG")
        reservation_id = body["allocated"]["reservationId"]
        detail = (await http.get("/api/v1/charge-points/RES-ANY")).json()
        await charger.start_transaction("ANY-TAG", 3)
        return [body, detail, await settles(http, reservation_id, "Used")]

    body, detail, used = run(live, "RES-ANY", scenario)
    assert body["result"] == {"status": "Accepted"}
    [active] = detail["activeReservations"]
    assert active["connectorId"] == 0 and active["idTag"] == "ANY-TAG"
    assert detail["connectorNotes"]["0"].startswith("any connector reserved for ANY-TAG until")
    assert used["status"] == "Used" and used["history"][-1]["detail"].endswith("connector 3")


def test_a_reservation_is_cancelled_and_a_refused_cancellation_is_kept(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        _, body = await reserve(http, "RES-CANCEL")
        reservation_id = body["allocated"]["reservationId"]
        path = CANCEL.format("RES-CANCEL")
        first = await http.post(path, json={"reservationId": reservation_id})
        again = await http.post(path, json={"reservationId": reservation_id})
        unknown = await http.post(path, json={"reservationId": 2_000_000_000})
        return [first.json(), again.json(), unknown.json(), await reservation(http, reservation_id)]

    first, again, unknown, record = run(live, "RES-CANCEL", scenario)
    assert first == {"result": {"status": "Accepted"}}
    assert again == unknown == {"result": {"status": "Rejected"}}
    assert record["status"] == "Cancelled"
    assert [h["status"] for h in record["history"]] == [
        "Requested",
        "Accepted",
        "Cancelled",
        "CancelRejected",
    ]


def test_a_cancellation_on_another_charge_point_leaves_the_reservation(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        _, body = await reserve(http, "RES-MINE")
        reservation_id = body["allocated"]["reservationId"]
        async with connected(live, "RES-THEIRS") as theirs:
            theirs.reserved[reservation_id] = {"claimed": True}  # it says it holds that id too
            path = CANCEL.format("RES-THEIRS")
            answer = await http.post(path, json={"reservationId": reservation_id})
        return [answer.json(), await reservation(http, reservation_id)]

    answer, record = run(live, "RES-MINE", scenario)
    assert answer == {"result": {"status": "Accepted"}}
    assert record["status"] == "Accepted" and record["chargePointId"] == "RES-MINE"


def test_a_reservation_expires_at_its_expiry(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        _, body = await reserve(http, "RES-EXPIRE", expiryDate=later(2))
        reservation_id = body["allocated"]["reservationId"]
        held = (await http.get("/api/v1/reservations", params={"active": "true"})).json()
        expired = await settles(http, reservation_id, "Expired")
        still = (await http.get("/api/v1/reservations", params={"active": "true"})).json()
        return [reservation_id, held, expired, still]

    reservation_id, held, expired, still = run(live, "RES-EXPIRE", scenario)
    assert reservation_id in [r["reservationId"] for r in held["items"]]
    assert expired["status"] == "Expired"
    assert reservation_id not in [r["reservationId"] for r in still["items"]]


def test_an_expired_reservation_is_used_by_a_late_start_that_began_in_time(live: Live) -> None:
    """A StartTransaction naming an Expired reservation uses it when the transaction began
    before the expiry (it was sent late), not when it began after."""

    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        found = []
        for connector in (1, 2):
            expiry = later(1)
            _, body = await reserve(http, "RES-LATE", connectorId=connector, expiryDate=expiry)
            reservation_id = body["allocated"]["reservationId"]
            await settles(http, reservation_id, "Expired")
            began = later(-30) if connector == 1 else later(5)  # well before / after the expiry
            transaction = await charger.start_transaction(
                "RES-TAG", connector, reservation_id=reservation_id, timestamp=began
            )
            status = "Used" if connector == 1 else "Never"
            found.append((transaction, await settles(http, reservation_id, status, seconds=3)))
        return found

    [(in_time, used), (too_late, expired)] = run(live, "RES-LATE", scenario)
    assert used["status"] == "Used" and used["transactionId"] == in_time
    assert [h["status"] for h in used["history"]] == ["Requested", "Accepted", "Expired", "Used"]
    assert expired["status"] == "Expired" and expired["transactionId"] is None
    assert too_late != in_time


def test_a_reservation_ends_when_its_connector_becomes_unavailable_or_faulted(
    live: Live,
) -> None:
    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        _, one = await reserve(http, "RES-END", connectorId=1)
        _, two = await reserve(http, "RES-END", connectorId=2)
        one_id, two_id = one["allocated"]["reservationId"], two["allocated"]["reservationId"]
        await charger.status(1, "Unavailable")
        first = await settles(http, one_id, "ConnectorUnavailable")
        untouched = await reservation(http, two_id)
        await charger.status(0, "Faulted", "OtherError")  # the whole charger
        return [first, untouched, await settles(http, two_id, "ConnectorFaulted")]

    first, untouched, second = run(live, "RES-END", scenario)
    assert first["status"] == "ConnectorUnavailable"
    assert first["history"][-1]["detail"] == "connector 1 became Unavailable"
    assert untouched["status"] == "Accepted"
    assert second["status"] == "ConnectorFaulted"


def test_a_reserve_now_without_an_answer_is_recorded_and_bad_ones_are_refused(
    live: Live,
) -> None:
    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        charger.answer = "error"
        failed = await reserve(http, "RES-BAD")
        past = await reserve(http, "RES-BAD", expiryDate="2020-01-01T00:00:00Z")
        negative = await reserve(http, "RES-BAD", connectorId=-1)
        listed = await http.get("/api/v1/reservations", params={"chargePointId": "RES-BAD"})
        return [failed, past, negative, listed.json()]

    failed, past, negative, listed = run(live, "RES-BAD", scenario)
    assert failed[0] == 502 and failed[1]["code"] == "InternalError"
    assert past[0] == 400 and past[1]["path"] == "$.expiryDate" and "passed" in past[1]["detail"]
    assert negative[0] == 400 and negative[1]["path"] == "$.connectorId"
    [record] = listed["items"]  # the refused ones were never recorded
    assert record["status"] == "NoAnswer"
    assert "CALLERROR InternalError" in record["history"][-1]["detail"]


def test_the_reservations_are_listed_in_the_api_and_on_the_dashboard(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        _, body = await reserve(http, "RES-SHOWN", connectorId=2, idTag="SHOWN-TAG")
        return [body["allocated"]["reservationId"]]

    [reservation_id] = run(live, "RES-SHOWN", scenario)
    with live.client() as api:
        refused = api.get("/api/v1/reservations", params={"status": "Gone"})
        assert refused.status_code == 400 and "status" in refused.json()["detail"]
        used = api.get("/api/v1/reservations", params={"status": "Used", "limit": 1000}).json()
        assert all(item["status"] == "Used" for item in used["items"])
        document = api.get("/api/v1/openapi.json").json()
    reserve_now = document["components"]["schemas"]["ReserveNowRequest"]
    assert "reservationId" not in reserve_now["required"]
    assert "/api/v1/reservations" in document["paths"]
    with httpx.Client(base_url=live.base) as browser:
        browser.post("/login", data={"token": live.token, "next": "/"})
        page = browser.get("/reservations", params={"chargePointId": "RES-SHOWN"}).text
        assert "SHOWN-TAG" in page and ">Accepted<" in page
        assert '<ol class="compact"><li>Requested · ' in page  # the history, in its cell
        assert '<a href="/reservations"' in page  # in the navigation
        page = browser.get("/charge-points/RES-SHOWN").text
        assert "reserved for SHOWN-TAG until" in page and f"(#{reservation_id})" in page
        assert (
            'data-action="ReserveNow"' in page
            and 'name="reservationId"'
            not in page.split('data-action="ReserveNow"')[1].split("</form>")[0]
        )


def test_the_cli_reserves_and_prints_the_reservation_id(
    live: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--url", live.base, "--token", live.token]

    async def scenario(http: httpx.AsyncClient, charger: ReservingCharger) -> list[Any]:
        argv = ["command", "ReserveNow", "RES-CLI", "--id-tag", "CLI-TAG", *flags]
        argv += ["--connector-id", "0", "--expiry-date", later()]
        code = await asyncio.to_thread(cli.main, argv)
        return [code, charger.requests]

    code, requests = run(live, "RES-CLI", scenario)
    shown = json.loads(capsys.readouterr().out)
    assert code == 0
    assert shown == {"status": "Accepted", "reservationId": requests[0]["reservation_id"]}
