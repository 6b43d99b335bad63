"""The admin API's lists page, sort and search in the database: ``sort``/``order`` (an
unknown field is refused naming the allowed ones), ``q`` (part of an id, any case, its
wildcards literal), newest first for what happens; the message log across all chargers;
and the refused id tags, recorded where Authorize and StartTransaction refuse."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from ocpp.v16 import ChargePoint, call

from tests.admin.conftest import Live
from tests.admin.test_resources import assert_problem
from tests.threaded import run_asyncio

CHARGER = "LISTS-CP"


def ids(response: httpx.Response, field: str) -> list[Any]:
    assert response.status_code == 200, response.text
    return [item[field] for item in response.json()["items"]]


def eventually(read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """``read()`` once ``done`` says so (background writes land with the next batch)."""
    for _ in range(200):
        value = read()
        if done(value):
            return value
        time.sleep(0.05)
    return value


async def _refusals_and_transactions(url: str) -> list[int]:
    """Authorize an unknown tag twice and a blocked one once; start transactions with an
    accepted, an unknown and an accepted tag (in that order)."""
    async with websockets.connect(url, subprotocols=["ocpp1.6"]) as ws:
        charger = ChargePoint(CHARGER, ws)
        listener = asyncio.create_task(charger.start())
        try:
            await charger.call(
                call.BootNotification(charge_point_model="M", charge_point_vendor="V")
            )
            answers = [
                (await charger.call(call.Authorize(id_tag=tag))).id_tag_info["status"]
                for tag in ("NOPE-1", "nope-1", "BLK-1", "LIST-OK")
            ]
            assert answers == ["Invalid", "Invalid", "Blocked", "Accepted"]
            started = []
            for connector, tag, at in (
                (1, "LIST-OK", "2026-11-20T10:00:00Z"),
                (2, "NOPE-1", "2026-11-22T10:00:00Z"),
                (3, "OTHER-OK", "2026-11-21T10:00:00Z"),
            ):
                answer = await charger.call(
                    call.StartTransaction(
                        connector_id=connector, id_tag=tag, meter_start=0, timestamp=at
                    )
                )
                started.append(answer.transaction_id)
            return started
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


@pytest.fixture(scope="module")
def fleet(live: Live) -> list[int]:
    with live.client() as api:
        for cp in ("LIST-A1", "list-b2", "ELSEWHERE-9", CHARGER):
            assert api.put(f"/api/v1/charge-points/{cp}", json={}).is_success
        for tag, status in (
            ("BLK-1", "Blocked"),
            ("LIST-OK", "Accepted"),
            ("OTHER-OK", "Accepted"),
            ("U_1", "Accepted"),
            ("UX1", "Expired"),
        ):
            assert api.put(f"/api/v1/id-tags/{tag}", json={"status": status}).is_success
    started = run_asyncio(_refusals_and_transactions(live.ws_url(CHARGER)))
    with live.client() as api:  # the refusals are written with the next batch
        eventually(
            lambda: api.get("/api/v1/id-tags/refused").json()["items"],
            lambda items: sum(item["times"] for item in items) >= 4,
        )
    return started


def test_charge_points_search_sort_and_page(api: httpx.Client, fleet: list[int]) -> None:
    listed = api.get("/api/v1/charge-points", params={"q": "LiSt-", "sort": "chargePointId"})
    assert ids(listed, "chargePointId") == ["LIST-A1", "list-b2"]
    assert listed.json()["total"] == 2
    backwards = api.get(
        "/api/v1/charge-points", params={"q": "list-", "sort": "chargePointId", "order": "desc"}
    )
    assert ids(backwards, "chargePointId") == ["list-b2", "LIST-A1"]
    second = api.get("/api/v1/charge-points", params={"q": "list-", "limit": 1, "offset": 1})
    assert ids(second, "chargePointId") == ["list-b2"]
    assert second.json()["total"] == 2
    assert second.json()["totalCapped"] is False


def test_an_unknown_sort_field_is_refused_naming_the_allowed_ones(api: httpx.Client) -> None:
    problem = assert_problem(
        api.get("/api/v1/charge-points", params={"sort": "password"}), 400, "'sort'"
    )
    for field in ("chargePointId", "online", "registrationStatus", "lastSeen", "firmwareVersion"):
        assert f'"{field}"' in problem["detail"], problem["detail"]
    assert_problem(api.get("/api/v1/transactions", params={"order": "up"}), 400, '"asc", "desc"')
    for path in ("/api/v1/id-tags", "/api/v1/messages", "/api/v1/id-tags/refused"):
        assert_problem(api.get(path, params={"sort": "nothing"}), 400, "'sort'")


def test_search_takes_wildcards_literally(api: httpx.Client, fleet: list[int]) -> None:
    assert ids(api.get("/api/v1/id-tags", params={"q": "u_"}), "idTag") == ["U_1"]
    assert ids(api.get("/api/v1/id-tags", params={"q": "%"}), "idTag") == []
    expired = api.get("/api/v1/id-tags", params={"q": "u", "sort": "status", "order": "desc"})
    assert ids(expired, "idTag")[0] == "UX1"


def test_transactions_newest_first_sorted_and_searched(api: httpx.Client, fleet: list[int]) -> None:
    first, unknown, third = fleet
    mine = {"chargePointId": CHARGER}
    assert ids(api.get("/api/v1/transactions", params=mine), "transactionId") == [
        third,
        unknown,
        first,
    ]
    by_start = api.get("/api/v1/transactions", params={**mine, "sort": "startTimestamp"})
    assert ids(by_start, "transactionId") == [unknown, third, first]
    ascending = {**mine, "sort": "startTimestamp", "order": "asc"}
    assert ids(api.get("/api/v1/transactions", params=ascending), "transactionId") == [
        first,
        third,
        unknown,
    ]
    assert ids(api.get("/api/v1/transactions", params={"q": "-ok"}), "transactionId") == [
        third,
        first,
    ]
    assert ids(api.get("/api/v1/transactions", params={"q": "lists-c"}), "transactionId") == [
        third,
        unknown,
        first,
    ]
    csv = api.get("/api/v1/transactions.csv", params={"q": "nope"}).text.strip().splitlines()
    assert len(csv) == 2 and "NOPE-1" in csv[1]


def test_message_log_across_all_chargers(api: httpx.Client, fleet: list[int]) -> None:
    def read() -> dict[str, Any]:
        params = {"action": "StartTransaction", "direction": "in", "q": "lists-"}
        result: dict[str, Any] = api.get("/api/v1/messages", params=params).json()
        return result

    log = eventually(read, lambda page: page["total"] >= 3)
    assert log["total"] == 3
    assert {m["chargePointId"] for m in log["items"]} == {CHARGER}
    tags = [m["payload"]["idTag"] for m in log["items"]]
    assert tags == ["OTHER-OK", "NOPE-1", "LIST-OK"]  # newest first
    oldest = api.get(
        "/api/v1/messages",
        params={
            "chargePointId": CHARGER,
            "action": "StartTransaction",
            "direction": "in",
            "order": "asc",
        },
    ).json()
    assert [m["payload"]["idTag"] for m in oldest["items"]] == ["LIST-OK", "NOPE-1", "OTHER-OK"]
    nobody = api.get("/api/v1/messages", params={"chargePointId": "NOBODY-EVER"}).json()
    assert nobody["items"] == [] and nobody["total"] == 0
    later = api.get("/api/v1/messages", params={"from": "2999-01-01T00:00:00Z"}).json()
    assert later["items"] == []
    assert_problem(api.get("/api/v1/messages", params={"direction": "up"}), 400, '"in", "out"')


def test_refused_id_tags_are_listed(api: httpx.Client, fleet: list[int]) -> None:
    def read() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = api.get("/api/v1/id-tags/refused").json()["items"]
        return items

    refused = eventually(read, lambda items: sum(item["times"] for item in items) >= 4)
    by_tag = {item["idTag"].upper(): item for item in refused}
    assert set(by_tag) == {"NOPE-1", "BLK-1"}  # accepted tags are not refusals
    nope, blocked = by_tag["NOPE-1"], by_tag["BLK-1"]
    assert (nope["reason"], nope["times"], nope["action"]) == ("unknown", 3, "StartTransaction")
    assert (nope["chargePointId"], nope["currentStatus"]) == (CHARGER, None)
    assert (blocked["reason"], blocked["times"], blocked["currentStatus"]) == (
        "blocked",
        1,
        "Blocked",
    )
    assert nope["firstSeen"] <= nope["lastSeen"]
    assert [item["idTag"].upper() for item in refused] == ["NOPE-1", "BLK-1"]  # last seen first
    only_unknown = api.get("/api/v1/id-tags/refused", params={"reason": "unknown"})
    assert [tag.upper() for tag in ids(only_unknown, "idTag")] == ["NOPE-1"]
    assert ids(api.get("/api/v1/id-tags/refused", params={"q": "blk"}), "idTag") == ["BLK-1"]
    later = api.get("/api/v1/id-tags/refused", params={"from": "2999-01-01T00:00:00Z"})
    assert ids(later, "idTag") == []
    by_times = api.get("/api/v1/id-tags/refused", params={"sort": "times", "order": "asc"})
    assert [tag.upper() for tag in ids(by_times, "idTag")] == ["BLK-1", "NOPE-1"]
    assert_problem(api.get("/api/v1/id-tags/refused", params={"reason": "lost"}), 400, '"unknown"')

    assert api.put("/api/v1/id-tags/NOPE-1", json={}).status_code == 201
    added = {i["idTag"].upper(): i for i in read()}["NOPE-1"]
    assert added["currentStatus"] == "Accepted"


def test_a_tag_named_refused_is_still_an_id_tag(api: httpx.Client) -> None:
    """``/id-tags/refused`` is the list for GET; the tag of that name is written there and
    read in any other case (tags match case-insensitively)."""
    assert api.put("/api/v1/id-tags/refused", json={"status": "Blocked"}).status_code == 201
    assert api.get("/api/v1/id-tags/Refused").json()["status"] == "Blocked"
    assert "items" in api.get("/api/v1/id-tags/refused").json()
    assert api.delete("/api/v1/id-tags/refused").status_code == 204


def test_charge_points_filtered_by_date(api: httpx.Client, fleet: list[int]) -> None:
    """``from``/``to`` bound the time ``dateField`` names: last seen (the default), or when
    the charge point was registered; a charge point never seen is in no period of last
    seen."""
    first = api.put("/api/v1/charge-points/DATE-CP-1", json={}).json()
    second = api.put("/api/v1/charge-points/DATE-CP-2", json={}).json()
    assert first["createdAt"] < second["createdAt"]

    def listed(**params: str) -> list[str]:
        found: list[str] = ids(api.get("/api/v1/charge-points", params=params), "chargePointId")
        return found

    registered = {"q": "date-cp", "dateField": "createdAt"}
    assert listed(**registered, **{"from": second["createdAt"]}) == ["DATE-CP-2"]
    assert listed(**registered, to=second["createdAt"]) == ["DATE-CP-1"]
    assert listed(**registered, **{"from": "2999-01-01T00:00:00Z"}) == []
    assert listed(**registered) == ["DATE-CP-1", "DATE-CP-2"]  # no from/to: no filter

    seen = listed(**{"from": "2000-01-01T00:00:00Z"})
    assert CHARGER in seen  # it connected; the others of the module never did
    assert not {"DATE-CP-1", "LIST-A1", "list-b2"} & set(seen)
    assert listed(to="2000-01-01T00:00:00Z") == []
    offset = listed(dateField="lastSeen", **{"from": "2000-01-01T01:00:00+01:00"})
    assert offset == seen  # any zone, read as the instant it names


def test_id_tags_filtered_by_date(api: httpx.Client) -> None:
    """Id tags by expiry (the default), by when they were added or last changed."""
    for tag, expiry in (("DT-2027", "2027-06-01T00:00:00Z"), ("DT-2028", "2028-06-01T00:00:00Z")):
        assert api.put(f"/api/v1/id-tags/{tag}", json={"expiryDate": expiry}).status_code == 201
    never = api.put("/api/v1/id-tags/DT-NEVER", json={})
    assert never.status_code == 201

    def listed(**params: str) -> list[str]:
        found: list[str] = ids(api.get("/api/v1/id-tags", params={"q": "dt-", **params}), "idTag")
        return found

    in_2027 = {"from": "2027-01-01T00:00:00Z", "to": "2028-01-01T00:00:00Z"}
    assert listed(**in_2027) == ["DT-2027"]
    assert listed(dateField="expiryDate", to="2029-01-01T00:00:00Z") == ["DT-2027", "DT-2028"]
    added = never.json()["createdAt"]
    assert listed(dateField="createdAt", **{"from": added}) == ["DT-NEVER"]
    assert listed(dateField="createdAt", to=added) == ["DT-2027", "DT-2028"]

    changed = api.put("/api/v1/id-tags/DT-2027", json={"status": "Blocked"}).json()
    assert changed["createdAt"] < changed["updatedAt"]
    assert listed(dateField="updatedAt", **{"from": changed["updatedAt"]}) == ["DT-2027"]
    assert listed(dateField="createdAt", **{"from": changed["updatedAt"]}) == []


@pytest.mark.parametrize("route", ["/api/v1/charge-points", "/api/v1/id-tags"])
@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (
            {"from": "next year"},
            "query parameter 'from': \"next year\" is not a date-time: expected one like"
            " 2027-01-01T00:00:00Z",
        ),
        (
            {"to": "2027-01-01T00:00:00"},
            "query parameter 'to': \"2027-01-01T00:00:00\" is not a date-time: expected one"
            " like 2027-01-01T00:00:00Z",
        ),
        (
            {"to": "1969-12-31T23:59:59Z"},
            "'to': '1969-12-31T23:59:59Z': outside the times Voltaro accepts"
            " (1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z); e.g. 2027-01-01T00:00:00Z",
        ),
    ],
)
def test_a_bad_date_filter_is_refused_saying_what_was_expected(
    api: httpx.Client, route: str, params: dict[str, str], detail: str
) -> None:
    assert assert_problem(api.get(route, params=params), 400)["detail"] == detail


def test_an_unknown_date_field_is_refused_naming_the_allowed_ones(api: httpx.Client) -> None:
    problem = assert_problem(
        api.get("/api/v1/charge-points", params={"dateField": "birthday"}), 400
    )
    assert problem["detail"] == (
        'query parameter \'dateField\': "birthday" is not one of "lastSeen", "createdAt"'
    )
    problem = assert_problem(api.get("/api/v1/id-tags", params={"dateField": "lastSeen"}), 400)
    assert '"expiryDate", "createdAt", "updatedAt"' in problem["detail"]
