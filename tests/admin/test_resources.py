"""The admin API's resources: auth, problem documents, charge points, id tags, status history,
the message log, transactions and their CSV export (checked against a session driven here by
the `ocpp` package's ChargePoint)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import io
import json
import os
import stat
import time
from typing import Any

import httpx
import pytest
import trio
import websockets
from ocpp.v16 import ChargePoint, call

from tests.admin.conftest import Live, live_settings
from tests.central.helpers import never_throttled
from tests.threaded import run_asyncio
from voltaro import cli_admin
from voltaro.admin.token import AdminToken, admin_token
from voltaro.app import Voltaro, start_voltaro
from voltaro.config import Settings, SettingsError
from voltaro.store.testing import TestPostgres

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    for fragment in fragments:
        assert fragment in problem["detail"], problem
    return problem


# ---- auth, health, docs -----------------------------------------------------------------


def test_api_needs_the_bearer_token(live: Live) -> None:
    url = live.base + "/api/v1/charge-points"
    missing = assert_problem(httpx.get(url), 401, "missing Authorization")
    assert missing["title"] == "Unauthorized"
    wrong = httpx.get(url, headers={"Authorization": "Bearer not-the-token"})
    assert_problem(wrong, 401, "wrong bearer token")
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    basic = httpx.get(url, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert_problem(basic, 401, "Bearer")
    for path in ("/api/v1/openapi.json", "/api/v1/id-tags", "/api/v1/transactions.csv"):
        assert httpx.get(live.base + path).status_code == 401, path


def test_health_metrics_and_docs_need_no_token(live: Live) -> None:
    assert httpx.get(live.base + "/healthz").json() == {"status": "ok", "database": "ok"}
    metrics = httpx.get(live.base + "/metrics")
    assert metrics.status_code == 200
    assert "voltaro_connected_chargers" in metrics.text
    assert "voltaro_db_commit_seconds_bucket" in metrics.text
    docs = httpx.get(live.base + "/api/docs")
    assert docs.headers["content-type"].startswith("text/html")
    assert "/api/v1/openapi.json" in docs.text and "http" not in docs.text.split("<script>")[1]


def test_unknown_route_and_method_are_problems(api: httpx.Client) -> None:
    assert_problem(api.get("/api/v1/nothing-here"), 404, "no route")
    assert_problem(api.post("/api/v1/charge-points"), 405, "POST is not allowed")


def test_generated_token_is_kept_private_and_reused(tmp_path: Any) -> None:
    first = admin_token(None, tmp_path / "data")
    path = tmp_path / "data" / "admin-token"
    assert first.generated_in == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert admin_token(None, tmp_path / "data") == AdminToken(first.value)
    configured = admin_token("configured-token-123456", tmp_path / "data")
    assert configured == AdminToken("configured-token-123456")


def test_a_generated_token_can_follow_an_option_on_the_command_line(tmp_path: Any) -> None:
    """None starts with "-" (argparse would take `--token -x...` for two options)."""
    tokens = [admin_token(None, tmp_path / f"data-{n}").value for n in range(200)]
    assert not [token for token in tokens if token.startswith("-")]
    assert len(set(tokens)) == 200 and all(len(token) >= 32 for token in tokens)


def test_admin_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "VOLTARO_ADMIN_HOST": "0.0.0.0",
            "VOLTARO_ADMIN_PORT": "9090",
            "VOLTARO_ADMIN_TOKEN": "a-long-enough-token",
        }
    )
    assert (settings.admin_host, settings.admin_port, settings.admin_token) == (
        "0.0.0.0",
        9090,
        "a-long-enough-token",
    )
    assert Settings().admin_port == 8080 and Settings().admin_host == "127.0.0.1"
    with pytest.raises(SettingsError, match="VOLTARO_ADMIN_TOKEN"):
        Settings.from_env({"VOLTARO_ADMIN_TOKEN": "short"})
    assert Settings().metrics_token is None
    with pytest.raises(SettingsError, match="VOLTARO_METRICS_TOKEN"):
        Settings.from_env({"VOLTARO_METRICS_TOKEN": "short"})


async def test_configured_token_and_own_port(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    settings = live_settings(voltaro_settings.database_url or "", voltaro_settings.data_dir)
    settings = dataclasses.replace(settings, admin_token="configured-token-123456")
    voltaro: Voltaro = await nursery.start(start_voltaro, settings)
    assert voltaro.admin_url is not None
    async with httpx.AsyncClient(base_url=voltaro.admin_url) as http:
        ok = await http.get(
            "/api/v1/id-tags", headers={"Authorization": "Bearer configured-token-123456"}
        )
        assert ok.status_code == 200
    assert not (settings.data_dir / "admin-token").exists()


async def test_a_metrics_token_guards_metrics_and_only_metrics(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    settings = live_settings(voltaro_settings.database_url or "", voltaro_settings.data_dir)
    settings = dataclasses.replace(
        settings, admin_token="admin-token-1234567", metrics_token="metrics-token-1234567"
    )
    voltaro: Voltaro = await nursery.start(start_voltaro, settings)
    assert voltaro.admin_url is not None
    async with httpx.AsyncClient(base_url=voltaro.admin_url) as http:
        assert_problem(await http.get("/metrics"), 401, "missing Authorization")
        admin = {"Authorization": "Bearer admin-token-1234567"}
        assert_problem(await http.get("/metrics", headers=admin), 401, "wrong bearer token")
        scraper = {"Authorization": "Bearer metrics-token-1234567"}
        scraped = await http.get("/metrics", headers=scraper)
        assert scraped.status_code == 200 and "voltaro_ocpp_frames" in scraped.text
        assert (await http.get("/api/v1/id-tags", headers=scraper)).status_code == 401
        assert (await http.get("/healthz")).status_code == 200


# ---- charge points ------------------------------------------------------------------------


def test_charge_point_create_update_list_delete(api: httpx.Client) -> None:
    created = api.put("/api/v1/charge-points/RES-1", json={"registrationStatus": "Pending"})
    assert created.status_code == 201
    assert created.json()["registrationStatus"] == "Pending"
    updated = api.put(
        "/api/v1/charge-points/RES-1",
        json={"registrationStatus": "Accepted", "lenient": True, "password": "s3cret-key"},
    )
    assert updated.status_code == 200
    detail = updated.json()
    assert (detail["registrationStatus"], detail["lenient"], detail["hasPassword"]) == (
        "Accepted",
        True,
        True,
    )
    assert "password" not in detail and "passwordHash" not in detail
    assert api.put("/api/v1/charge-points/RES-2", json={}).status_code == 201

    listed = api.get("/api/v1/charge-points", params={"registrationStatus": "Accepted"}).json()
    ids = [cp["chargePointId"] for cp in listed["items"]]
    assert "RES-1" in ids and "RES-2" in ids
    page = api.get("/api/v1/charge-points", params={"limit": 1, "offset": 1}).json()
    assert (len(page["items"]), page["limit"], page["offset"]) == (1, 1, 1)
    assert page["total"] >= 2
    offline = api.get("/api/v1/charge-points", params={"online": "false"}).json()["items"]
    assert all(not cp["online"] for cp in offline)

    assert api.delete("/api/v1/charge-points/RES-2").status_code == 204
    assert_problem(api.get("/api/v1/charge-points/RES-2"), 404, "'RES-2' is not known")
    assert_problem(api.delete("/api/v1/charge-points/RES-2"), 404)


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        (b'{"registrationStatus": ', None, "not valid JSON"),
        (b"", None, "JSON object body is required"),
        (b'{"lenient": "yes"}', "$.lenient", "boolean"),
        (b'{"registrationStatus": "Maybe"}', "$.registrationStatus", "Maybe"),
        (b'{"colour": "red"}', "$", "colour"),
        (b'["Accepted"]', "$", "object"),
        (b'{"password": "short"}', "$.password", "short"),
    ],
)
def test_charge_point_bad_bodies(
    api: httpx.Client, body: bytes, path: str | None, fragment: str
) -> None:
    response = api.put(
        "/api/v1/charge-points/RES-BAD", content=body, headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(response, 400, fragment)
    if path is not None:
        assert problem["path"] == path
    assert_problem(api.get("/api/v1/charge-points/RES-BAD"), 404)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": "ten"}, "'limit': 'ten' is not an integer"),
        ({"limit": "0"}, "'limit'"),
        ({"online": "maybe"}, "'online': 'maybe' is not a boolean"),
        ({"registrationStatus": "Asleep"}, "'registrationStatus'"),
        ({"colour": "red"}, "unknown query parameter 'colour'"),
    ],
)
def test_charge_point_list_bad_query(
    api: httpx.Client, params: dict[str, str], fragment: str
) -> None:
    assert_problem(api.get("/api/v1/charge-points", params=params), 400, fragment)


# ---- id tags ----------------------------------------------------------------------------------


def test_id_tags(api: httpx.Client) -> None:
    created = api.put(
        "/api/v1/id-tags/TAG-A1",
        json={"status": "Accepted", "expiryDate": "2027-12-31T23:59:59Z", "parentIdTag": "GROUP"},
    )
    assert created.status_code == 201
    tag = created.json()
    assert tag == {
        "idTag": "TAG-A1",
        "status": "Accepted",
        "expiryDate": "2027-12-31T23:59:59Z",
        "parentIdTag": "GROUP",
        "createdAt": tag["createdAt"],
        "updatedAt": tag["createdAt"],  # added, not changed since
    }
    assert tag["createdAt"].endswith("Z")
    assert api.get("/api/v1/id-tags/tag-a1").json()["idTag"] == "TAG-A1"  # CiString20
    blocked = api.put("/api/v1/id-tags/TAG-A1", json={"status": "Blocked"})
    assert blocked.status_code == 200
    assert blocked.json()["expiryDate"] is None
    assert api.put("/api/v1/id-tags/TAG-A2", json={}).json()["status"] == "Accepted"
    listed = api.get("/api/v1/id-tags", params={"status": "Blocked"}).json()
    assert [t["idTag"] for t in listed["items"]] == ["TAG-A1"]
    assert api.delete("/api/v1/id-tags/TAG-A1").status_code == 204
    assert_problem(api.get("/api/v1/id-tags/TAG-A1"), 404, "'TAG-A1' is not known")
    assert_problem(api.delete("/api/v1/id-tags/TAG-A1"), 404)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"status": "Lost"}, "$.status"),
        ({"expiryDate": "tomorrow"}, "$.expiryDate"),
        ({"expiryDate": 20271231}, "$.expiryDate"),
        ({"parentIdTag": "P" * 21}, "$.parentIdTag"),
        ({"idTag": "X"}, "$"),
    ],
)
def test_id_tag_bad_bodies(api: httpx.Client, body: dict[str, Any], path: str) -> None:
    problem = assert_problem(api.put("/api/v1/id-tags/TAG-BAD", json=body), 400)
    assert problem["path"] == path


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"status": "Banned"},
            '$.status: "Banned" is not one of "Accepted", "Blocked", "Expired", "Invalid"',
        ),
        (
            {"expiryDate": "next year"},
            '$.expiryDate: "next year" is not a date-time: expected one like'
            " 2027-01-01T00:00:00Z (or null)",
        ),
        (
            {"expiryDate": 20271231},
            "$.expiryDate: 20271231 is not a date-time: expected one like"
            " 2027-01-01T00:00:00Z (or null)",
        ),
        (
            {"parentIdTag": "P" * 21},
            f'$.parentIdTag: "{"P" * 21}" is 21 characters long, the maximum is 20',
        ),
        ({"parentIdTag": 7}, "$.parentIdTag: expected string or null, got 7"),
    ],
)
def test_body_errors_say_what_was_expected(
    api: httpx.Client, body: dict[str, Any], detail: str
) -> None:
    """Every allowed value named, a date-time shown by example, a length against its limit."""
    problem = assert_problem(api.put("/api/v1/id-tags/TAG-SAYS", json=body), 400)
    assert problem["detail"] == f"request body {detail}"


@pytest.mark.parametrize(
    ("route", "params", "detail"),
    [
        (
            "/api/v1/charge-points",
            {"registrationStatus": "Asleep"},
            'query parameter \'registrationStatus\': "Asleep" is not one of "Accepted",'
            ' "Pending", "Rejected"',
        ),
        (
            "/api/v1/transactions",
            {"from": "yesterday"},
            "query parameter 'from': \"yesterday\" is not a date-time: expected one like"
            " 2027-01-01T00:00:00Z",
        ),
    ],
)
def test_query_errors_say_what_was_expected(
    api: httpx.Client, route: str, params: dict[str, str], detail: str
) -> None:
    assert assert_problem(api.get(route, params=params), 400)["detail"] == detail


def test_id_tag_too_long_and_status_filter(api: httpx.Client) -> None:
    too_long = assert_problem(api.put("/api/v1/id-tags/" + "T" * 21, json={}), 400)
    # the same words as `voltaro idtag add` (tests/central/test_cli_bulk.py)
    assert too_long["detail"] == (
        f"path parameter 'idTag': \"{'T' * 21}\" is 21 characters long, the maximum is 20"
    )
    assert_problem(api.get("/api/v1/id-tags/A%00B"), 400, "U+0000")
    assert_problem(api.put("/api/v1/id-tags/NUL", json={"parentIdTag": "A\u0000"}), 400)
    assert_problem(api.get("/api/v1/id-tags", params={"status": "Lost"}), 400, "'status'")


# ---- a session: status history, message log, transactions, CSV -------------------------------


async def _session(url: str) -> list[int]:
    async with websockets.connect(url, subprotocols=["ocpp1.6"]) as ws:
        charger = ChargePoint("SESSION-1", ws)
        listener = asyncio.create_task(charger.start())
        try:
            await charger.call(
                call.BootNotification(charge_point_model="M", charge_point_vendor="V")
            )
            await charger.call(
                call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing")
            )
            ids = []
            for start, stop, meter_start, meter_stop, reason in (
                ("2026-11-24T10:00:00Z", "2026-11-24T10:30:00Z", 1000, 1750, "Local"),
                ("2026-11-24T12:00:00Z", "2026-11-24T13:00:00Z", 1750, 9000, "EVDisconnected"),
            ):
                started = await charger.call(
                    call.StartTransaction(
                        connector_id=1, id_tag="BILL-1", meter_start=meter_start, timestamp=start
                    )
                )
                await charger.call(
                    call.MeterValues(
                        connector_id=1,
                        transaction_id=started.transaction_id,
                        meter_value=[
                            {
                                "timestamp": start.replace(":00:00", ":15:00"),
                                "sampledValue": [{"value": str(meter_start + 100), "unit": "Wh"}],
                            }
                        ],
                    )
                )
                await charger.call(
                    call.StopTransaction(
                        meter_stop=meter_stop,
                        timestamp=stop,
                        transaction_id=started.transaction_id,
                        reason=reason,
                    )
                )
                ids.append(started.transaction_id)
            running = await charger.call(
                call.StartTransaction(
                    connector_id=2, id_tag="OTHER", meter_start=5, timestamp="2026-11-25T08:00:00Z"
                )
            )
            await charger.call(
                call.StatusNotification(connector_id=1, error_code="NoError", status="Available")
            )
            ids.append(running.transaction_id)
            return ids
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


@pytest.fixture(scope="module")
def session(live: Live) -> list[int]:
    return run_asyncio(_session(live.ws_url("SESSION-1")))


def test_transactions_list_filters_and_detail(api: httpx.Client, session: list[int]) -> None:
    first, second, running = session
    listing = api.get("/api/v1/transactions", params={"chargePointId": "SESSION-1"}).json()
    assert [t["transactionId"] for t in listing["items"]] == [running, second, first]
    t = listing["items"][-1]
    assert (t["idTag"], t["meterStart"], t["meterStop"], t["energyWh"], t["stopReason"]) == (
        "BILL-1",
        1000,
        1750,
        750,
        "Local",
    )
    assert (t["startTimestamp"], t["stopTimestamp"]) == (
        "2026-11-24T10:00:00Z",
        "2026-11-24T10:30:00Z",
    )
    active = api.get(
        "/api/v1/transactions", params={"chargePointId": "SESSION-1", "active": "true"}
    )
    assert [t["transactionId"] for t in active.json()["items"]] == [running]
    by_tag = api.get("/api/v1/transactions", params={"idTag": "bill-1"}).json()["items"]
    assert [t["transactionId"] for t in by_tag] == [second, first]
    window = api.get(
        "/api/v1/transactions",
        params={"from": "2026-11-24T11:00:00Z", "to": "2026-11-25T00:00:00+00:00"},
    ).json()["items"]
    assert [t["transactionId"] for t in window] == [second]

    detail = api.get(f"/api/v1/transactions/{first}").json()
    assert [
        (v["value"], v["measurand"], v["unit"], v["source"]) for v in detail["meterValues"]
    ] == [("1100", "Energy.Active.Import.Register", "Wh", "MeterValues")]
    assert_problem(api.get("/api/v1/transactions/999999"), 404, "999999")
    assert_problem(api.get("/api/v1/transactions/abc"), 400, "not an integer")

    cp = api.get("/api/v1/charge-points/SESSION-1").json()
    assert [t["transactionId"] for t in cp["activeTransactions"]] == [running]
    assert [(c["connectorId"], c["status"], c["errorCode"]) for c in cp["connectors"]] == [
        (1, "Available", "NoError")
    ]
    assert (cp["chargePointVendor"], cp["chargePointModel"]) == ("V", "M")


@pytest.mark.parametrize(
    "params",
    [{"from": "yesterday"}, {"from": "2026-11-24T10:00:00"}, {"active": "1"}, {"idTag": "X" * 21}],
)
def test_transactions_bad_filters(api: httpx.Client, params: dict[str, str]) -> None:
    assert_problem(api.get("/api/v1/transactions", params=params), 400)
    assert_problem(api.get("/api/v1/transactions.csv", params=params), 400)


def test_transactions_csv_matches_the_session(api: httpx.Client, session: list[int]) -> None:
    first, second, running = session
    response = api.get("/api/v1/transactions.csv", params={"chargePointId": "SESSION-1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "transactions.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == [
        "transactionId",
        "chargePointId",
        "connectorId",
        "idTag",
        "startTimestamp",
        "stopTimestamp",
        "meterStart",
        "meterStop",
        "energyWh",
        "stopReason",
        "energyAnomaly",
    ]
    assert [list(row.values()) for row in rows] == [
        [str(first), "SESSION-1", "1", "BILL-1", "2026-11-24T10:00:00Z", "2026-11-24T10:30:00Z",
         "1000", "1750", "750", "Local", ""],
        [str(second), "SESSION-1", "1", "BILL-1", "2026-11-24T12:00:00Z", "2026-11-24T13:00:00Z",
         "1750", "9000", "7250", "EVDisconnected", ""],
        [str(running), "SESSION-1", "2", "OTHER", "2026-11-25T08:00:00Z", "", "5", "", "0", "",
         ""],
    ]  # fmt: skip
    stopped = api.get("/api/v1/transactions.csv", params={"active": "false", "idTag": "BILL-1"})
    assert len(stopped.text.strip().splitlines()) == 3


def test_status_history_and_message_log(api: httpx.Client, session: list[int]) -> None:
    history = api.get("/api/v1/charge-points/SESSION-1/status-history").json()
    assert [(h["connectorId"], h["status"], h["previousStatus"]) for h in history["items"]] == [
        (1, "Available", "Preparing"),
        (1, "Preparing", None),
    ]
    base = "/api/v1/charge-points/SESSION-1/status-history"
    assert api.get(base, params={"from": "2999-01-01T00:00:00Z"}).json()["items"] == []
    window = {"from": "2000-01-01T00:00:00Z", "to": "2999-01-01T00:00:00Z", "order": "asc"}
    oldest_first = api.get(base, params=window).json()["items"]
    assert [h["status"] for h in oldest_first] == ["Preparing", "Available"]
    for _ in range(100):  # the message log is written in the background
        log = api.get(
            "/api/v1/charge-points/SESSION-1/messages",
            params={"action": "StartTransaction", "direction": "in"},
        ).json()
        if log["total"] >= 3:
            break
        time.sleep(0.05)
    assert log["total"] == 3
    assert log["items"][-1]["payload"]["idTag"] == "BILL-1"  # newest first
    everything = api.get("/api/v1/charge-points/SESSION-1/messages", params={"limit": 1000}).json()
    assert {m["direction"] for m in everything["items"]} == {"in", "out"}
    later = api.get(
        "/api/v1/charge-points/SESSION-1/messages", params={"from": "2999-01-01T00:00:00Z"}
    ).json()
    assert later["items"] == []
    assert_problem(
        api.get("/api/v1/charge-points/SESSION-1/messages", params={"direction": "up"}), 400
    )
    assert_problem(api.get("/api/v1/charge-points/NOBODY/messages"), 404)
    assert_problem(api.get("/api/v1/charge-points/NOBODY/status-history"), 404)


def test_password_set_through_the_api_is_required_at_the_handshake(
    live: Live, api: httpx.Client
) -> None:
    assert api.put("/api/v1/charge-points/LOCKED-1", json={"password": "s3cret-key"}).is_success
    unthrottled(live.voltaro)

    async def handshake(password: str | None) -> int:
        url = live.ws_url("LOCKED-1")
        if password is not None:
            url = url.replace("ws://", f"ws://LOCKED-1:{password}@")
        try:
            async with websockets.connect(url, subprotocols=["ocpp1.6"]):
                return 101
        except websockets.InvalidStatus as rejected:
            return int(rejected.response.status_code)

    assert run_asyncio(handshake(None)) == 401
    assert run_asyncio(handshake("wrong-key")) == 401
    assert run_asyncio(handshake("s3cret-key")) == 101


def test_keep_alive_survives_answers_given_before_the_body_was_needed(
    live: Live, api: httpx.Client
) -> None:
    """A body left unread by an early answer (bad path, 404, 405, 401, 413) must not stall
    the next request on the same keep-alive connection."""
    with httpx.Client(base_url=live.base, headers={"Authorization": "Bearer nope"}) as stranger:
        for size in (0, 100, 5000):
            body = {"status": "Accepted", "padding": "x" * size}
            assert api.put("/api/v1/id-tags/" + "T" * 21, json=body).status_code == 400
            assert api.post("/api/v1/nothing", json=body).status_code == 404
            assert api.post("/api/v1/id-tags", json=body).status_code == 405
            assert stranger.put("/api/v1/id-tags/OK", json=body).status_code == 401
            assert stranger.get("/api/v1/id-tags/OK", timeout=5).status_code == 401
            assert api.get("/api/v1/id-tags/A%00B", timeout=5).status_code == 400
    assert_problem(api.put("/api/v1/id-tags/BIG", content=b"x" * (2 << 20)), 413, "larger")
    assert api.get("/api/v1/id-tags", timeout=5).status_code == 200


def unthrottled(voltaro: Voltaro) -> None:
    """Failed logins judged on the password alone (see ``never_throttled``)."""
    voltaro.central.admitter.throttle = never_throttled()


def register_accepted(api: httpx.Client, *charge_point_ids: str) -> None:
    for charge_point_id in charge_point_ids:
        path = f"/api/v1/charge-points/{charge_point_id}"
        assert api.put(path, json={"registrationStatus": "Accepted"}).is_success


async def close_code(ws: Any) -> int | None:
    """The code the server closes ``ws`` with (waits up to 5 s for it)."""
    with contextlib.suppress(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), timeout=5)
    close: int | None = ws.close_code
    return close


def test_removing_a_connected_charge_point_closes_its_connection(
    live: Live, api: httpx.Client
) -> None:
    register_accepted(api, "GONE-1")

    async def connected_then_removed() -> int | None:
        async with websockets.connect(live.ws_url("GONE-1"), subprotocols=["ocpp1.6"]) as ws:
            await asyncio.to_thread(api.delete, "/api/v1/charge-points/GONE-1")
            return await close_code(ws)

    assert run_asyncio(connected_then_removed()) == 1008
    assert_problem(api.get("/api/v1/charge-points/GONE-1"), 404)


def test_a_charge_point_removed_by_the_cli_loses_its_connection(
    live: Live, api: httpx.Client
) -> None:
    """The CLI is another process: the server hears of the removal through NOTIFY."""
    register_accepted(api, "GONE-2")

    async def connected_then_removed() -> tuple[int, int | None]:
        async with websockets.connect(live.ws_url("GONE-2"), subprotocols=["ocpp1.6"]) as ws:
            args = argparse.Namespace(id="GONE-2")
            code = await asyncio.to_thread(
                cli_admin.chargepoint_remove, args, live.voltaro.settings
            )
            return code, await close_code(ws)

    assert run_asyncio(connected_then_removed()) == (0, 1008)


def test_a_charge_point_removed_and_added_back_at_once_stays_connected(
    live: Live, api: httpx.Client, pg_server: TestPostgres
) -> None:
    """The removal is announced at commit, when the row is back: that charger stays, while
    one removed by the same statement is closed."""
    register_accepted(api, "BACK-1", "GONE-3")
    database = pg_server.database_name(live.voltaro.settings.database_url)

    async def both_connected() -> tuple[int | None, list[Any]]:
        async with (
            websockets.connect(live.ws_url("BACK-1"), subprotocols=["ocpp1.6"]) as back,
            websockets.connect(live.ws_url("GONE-3"), subprotocols=["ocpp1.6"]) as gone,
        ):
            await asyncio.to_thread(
                pg_server.execute,
                "DELETE FROM charge_points WHERE id IN ('BACK-1', 'GONE-3');"
                " INSERT INTO charge_points (id, registration_status)"
                " VALUES ('BACK-1', 'Accepted')",
                database,
            )
            gone_code = await close_code(gone)
            await asyncio.sleep(0.5)  # BACK-1, were it to be closed, would be by now
            await back.send('[2,"hb-1","Heartbeat",{}]')
            answer = json.loads(await asyncio.wait_for(back.recv(), timeout=5))
            return gone_code, answer

    gone_code, answer = run_asyncio(both_connected())
    assert gone_code == 1008
    assert answer[:2] == [3, "hb-1"]
