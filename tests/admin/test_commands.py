"""Operator commands against the `ocpp` package's v16 ChargePoint, connected and answering:
every command's round trip, what it records (known configuration, message log), and the
400/404/409/502/504 answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from ocpp.exceptions import NotSupportedError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from tests.admin.conftest import Live, booted_peer
from tests.threaded import run_asyncio
from voltaro import cli

PROBLEM = "application/problem+json"


class Charger(ChargePoint):  # type: ignore[misc]
    """A charger that answers every Core command and starts a session on RemoteStart."""

    def __init__(self, charge_point_id: str, connection: Any) -> None:
        super().__init__(charge_point_id, connection)
        self.configuration = {"HeartbeatInterval": "300", "MeterValueSampleInterval": "60"}

    @on(Action.reset)
    def on_reset(self, type: str) -> Any:
        return call_result.Reset(status="Accepted")

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        keys = [k for k in self.configuration if not key or k in key]
        return call_result.GetConfiguration(
            configuration_key=[
                {"key": k, "readonly": False, "value": self.configuration[k]} for k in keys
            ],
            unknown_key=[k for k in key or [] if k not in self.configuration] or None,
        )

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> Any:
        if key not in self.configuration:
            return call_result.ChangeConfiguration(status="NotSupported")
        self.configuration[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str) -> Any:
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.clear_cache)
    def on_clear_cache(self) -> Any:
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        if vendor_id == "refuse":
            raise NotSupportedError("vendor refused", {"hint": "test"})
        if vendor_id == "slow":
            await asyncio.sleep(2)
        return call_result.DataTransfer(status="Accepted", data="pong")

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> Any:
        return call_result.RemoteStartTransaction(status="Accepted")

    @after(Action.remote_start_transaction)
    async def start_session(self, id_tag: str, connector_id: int | None = None, **_: Any) -> None:
        asyncio.get_running_loop().create_task(self._start(id_tag, connector_id or 1))

    async def _start(self, id_tag: str, connector_id: int) -> None:
        await self.call(
            call.StartTransaction(
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start=500,
                timestamp="2026-11-24T11:00:00Z",
            )
        )

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> Any:
        return call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.unlock_connector)
    def on_unlock(self, connector_id: int) -> Any:
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.trigger_message)
    def on_trigger(self, requested_message: str, connector_id: int | None = None) -> Any:
        return call_result.TriggerMessage(status="Accepted")


def connected(live: Live, charge_point_id: str) -> contextlib.AbstractAsyncContextManager[Charger]:
    return booted_peer(live, charge_point_id, Charger)


def run(live: Live, charge_point_id: str, scenario: Callable[..., Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with connected(live, charge_point_id) as charger, live.async_client() as http:
            return await scenario(http, charger)

    return run_asyncio(main())


def logged(live: Live, charge_point_id: str, action: str, count: int) -> list[dict[str, Any]]:
    """The message log of ``action`` once it has ``count`` entries (it is written in the
    background, by the next group commit)."""
    with live.client() as api:
        for _ in range(200):
            items: list[dict[str, Any]] = api.get(
                f"/api/v1/charge-points/{charge_point_id}/messages",
                params={"action": action, "order": "asc"},
            ).json()["items"]
            if len(items) >= count:
                return items
            time.sleep(0.02)
    return items


def command_path(charge_point_id: str, action: str) -> str:
    return f"/api/v1/charge-points/{charge_point_id}/commands/{action}"


def test_every_core_command_round_trips(live: Live) -> None:
    bodies: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "Reset": ({"type": "Soft"}, {"status": "Accepted"}),
        "ChangeAvailability": ({"connectorId": 1, "type": "Inoperative"}, {"status": "Accepted"}),
        "ClearCache": ({}, {"status": "Accepted"}),
        "DataTransfer": (
            {"vendorId": "acme", "data": "ping"},
            {"status": "Accepted", "data": "pong"},
        ),
        "RemoteStopTransaction": ({"transactionId": 42}, {"status": "Accepted"}),
        "UnlockConnector": ({"connectorId": 1}, {"status": "Unlocked"}),
        "TriggerMessage": ({"requestedMessage": "Heartbeat"}, {"status": "Accepted"}),
    }

    async def scenario(http: httpx.AsyncClient, charger: Charger) -> dict[str, Any]:
        answers = {}
        for action, (body, _) in bodies.items():
            response = await http.post(command_path("CMD-1", action), json=body)
            answers[action] = (response.status_code, response.json())
        return answers

    answers = run(live, "CMD-1", scenario)
    for action, (_, expected) in bodies.items():
        assert answers[action] == (200, {"result": expected}), action

    log = logged(live, "CMD-1", "Reset", 2)
    assert [(m["direction"], m["payload"]) for m in log] == [
        ("out", {"type": "Soft"}),
        ("in", {"status": "Accepted"}),
    ]


def test_configuration_is_read_changed_and_remembered(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: Charger) -> list[Any]:
        got = await http.post(command_path("CMD-CFG", "GetConfiguration"), json={})
        changed = await http.post(
            command_path("CMD-CFG", "ChangeConfiguration"),
            json={"key": "HeartbeatInterval", "value": "120"},
        )
        refused = await http.post(
            command_path("CMD-CFG", "ChangeConfiguration"), json={"key": "Nope", "value": "1"}
        )
        return [got.json(), changed.json(), refused.json()]

    got, changed, refused = run(live, "CMD-CFG", scenario)
    assert {"key": "HeartbeatInterval", "readonly": False, "value": "300"} in got["result"][
        "configurationKey"
    ]
    assert changed == {"result": {"status": "Accepted"}}
    assert refused == {"result": {"status": "NotSupported"}}
    with live.client() as api:
        detail = api.get("/api/v1/charge-points/CMD-CFG").json()
    known = {c["key"]: (c["value"], c["readonly"]) for c in detail["configuration"]}
    assert known == {"HeartbeatInterval": ("120", False), "MeterValueSampleInterval": ("60", False)}


def test_remote_start_really_starts_a_session(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: Charger) -> Any:
        response = await http.post(
            command_path("CMD-RS", "RemoteStartTransaction"),
            json={"idTag": "REMOTE-1", "connectorId": 1},
        )
        for _ in range(200):
            listing = await http.get("/api/v1/transactions", params={"chargePointId": "CMD-RS"})
            if listing.json()["items"]:
                break
            await asyncio.sleep(0.02)
        return response.json(), listing.json()["items"]

    answer, transactions = run(live, "CMD-RS", scenario)
    assert answer == {"result": {"status": "Accepted"}}
    assert [(t["idTag"], t["meterStart"], t["active"]) for t in transactions] == [
        ("REMOTE-1", 500, True)
    ]


def test_callerror_is_502_with_code_description_details(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: Charger) -> httpx.Response:
        return await http.post(command_path("CMD-ERR", "DataTransfer"), json={"vendorId": "refuse"})

    response = run(live, "CMD-ERR", scenario)
    assert response.status_code == 502
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert (problem["code"], problem["description"], problem["details"]) == (
        "NotSupported",
        "vendor refused",
        {"hint": "test"},
    )
    assert "NotSupported" in problem["detail"]
    log = logged(live, "CMD-ERR", "DataTransfer", 2)
    assert [(m["direction"], m["errorCode"]) for m in log] == [
        ("out", None),
        ("in", "NotSupported"),
    ]


def test_no_answer_in_time_is_504(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: Charger) -> httpx.Response:
        return await http.post(
            command_path("CMD-SLOW", "DataTransfer"),
            params={"timeout": "0.3"},
            json={"vendorId": "slow"},
        )

    response = run(live, "CMD-SLOW", scenario)
    assert response.status_code == 504
    assert "within 0.3 s" in response.json()["detail"]
    # the command and its outcome are in the message log, though no answer frame came
    entries = logged(live, "CMD-SLOW", "DataTransfer", 2)
    outcomes = [e["payload"] for e in entries if e["direction"] == "in"]
    assert outcomes and outcomes[0]["outcome"] == "timeout"
    assert "within 0.3 s" in outcomes[0]["description"]
    with live.client() as api:
        metrics = api.get("/metrics").text
    assert 'voltaro_ocpp_outbound_call_seconds_count{action="DataTransfer",outcome="timeout"}' in (
        metrics
    )


def test_offline_unknown_and_invalid_commands(live: Live, api: httpx.Client) -> None:
    assert api.put("/api/v1/charge-points/OFFLINE-1", json={}).status_code == 201
    offline = api.post(command_path("OFFLINE-1", "Reset"), json={"type": "Hard"})
    assert offline.status_code == 409
    assert offline.json()["detail"] == "charge point 'OFFLINE-1' is not connected"
    refused = logged(live, "OFFLINE-1", "Reset", 1)
    assert refused[0]["payload"]["outcome"] == "not connected"

    unknown = api.post(command_path("NOBODY", "Reset"), json={"type": "Hard"})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM

    bad_enum = api.post(command_path("OFFLINE-1", "Reset"), json={"type": "Medium"})
    assert bad_enum.status_code == 400
    assert bad_enum.json()["path"] == "$.type"
    assert "Medium" in bad_enum.json()["detail"]

    wrong_type = api.post(command_path("OFFLINE-1", "UnlockConnector"), json={"connectorId": "1"})
    assert (wrong_type.status_code, wrong_type.json()["path"]) == (400, "$.connectorId")

    extra = api.post(command_path("OFFLINE-1", "Reset"), json={"type": "Hard", "now": True})
    assert (extra.status_code, extra.json()["path"]) == (400, "$.now")

    missing = api.post(command_path("OFFLINE-1", "Reset"), json={})
    assert (missing.status_code, missing.json()["path"]) == (400, "$.type")

    malformed = api.post(command_path("OFFLINE-1", "Reset"), content=b'{"type": ')
    assert malformed.status_code == 400
    assert "not valid JSON" in malformed.json()["detail"]

    not_object = api.post(command_path("OFFLINE-1", "Reset"), json=["Hard"])
    assert not_object.status_code == 400

    for action in ("BootNotification", "MakeCoffee", "SetChargingProfile"):
        refused = api.post(command_path("OFFLINE-1", action), json={})
        assert refused.status_code == 400, action
        assert action in refused.json()["detail"]

    bad_timeout = api.post(
        command_path("OFFLINE-1", "Reset"), params={"timeout": "-1"}, json={"type": "Hard"}
    )
    assert bad_timeout.status_code == 400

    no_token = httpx.post(live.base + command_path("OFFLINE-1", "Reset"), json={"type": "Hard"})
    assert no_token.status_code == 401


def test_metrics_count_frames_errors_and_latencies(live: Live) -> None:
    async def scenario(http: httpx.AsyncClient, charger: Charger) -> None:
        assert (await http.post(command_path("CMD-MET", "ClearCache"), json={})).status_code == 200
        refused = await http.post(
            command_path("CMD-MET", "DataTransfer"), json={"vendorId": "refuse"}
        )
        assert refused.status_code == 502
        metrics = (await http.get("/metrics")).text
        connected = [m for m in metrics.splitlines() if m.startswith("voltaro_connected_chargers ")]
        assert float(connected[0].split()[1]) >= 1
        for line in (
            'voltaro_ocpp_frames_total{action="ClearCache",direction="out",kind="call"}',
            'voltaro_ocpp_frames_total{action="ClearCache",direction="in",kind="result"}',
            'voltaro_ocpp_frames_total{action="BootNotification",direction="in",kind="call"}',
            'voltaro_ocpp_callerrors_total{code="NotSupported",direction="in"}',
            'voltaro_ocpp_inbound_handling_seconds_count{action="BootNotification",outcome="result"}',
            'voltaro_ocpp_outbound_call_seconds_count{action="ClearCache",outcome="result"}',
            'voltaro_ocpp_outbound_call_seconds_count{action="DataTransfer",outcome="error"}',
            "voltaro_db_batch_size_count",
        ):
            assert any(
                m.startswith(line.split("{")[0]) and _labels(m) == _labels(line)
                for m in metrics.splitlines()
                if not m.startswith("#")
            ), line

    run(live, "CMD-MET", scenario)


def _labels(line: str) -> set[str]:
    inside = line.partition("{")[2].partition("}")[0]
    return set(inside.split(",")) if inside else set()


def test_the_cli_sends_commands_through_the_running_servers_api(
    live: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--url", live.base, "--token", live.token]

    async def scenario(http: httpx.AsyncClient, charger: Charger) -> list[int]:
        def cli_run(*argv: str) -> int:
            return cli.main(["command", *argv, *flags])

        return [
            await asyncio.to_thread(
                cli_run, "GetConfiguration", "CMD-CLI", "--key", "Nope, HeartbeatInterval"
            ),
            await asyncio.to_thread(cli_run, "Reset", "CMD-CLI", "--type", "Hard"),
            await asyncio.to_thread(cli_run, "UnlockConnector", "CMD-CLI", "--connector-id", "one"),
            await asyncio.to_thread(cli_run, "Reset", "NOBODY", "--type", "Soft"),
        ]

    codes = run(live, "CMD-CLI", scenario)
    out, err = capsys.readouterr()
    assert codes == [0, 0, 1, 1]
    shown, _ = json.JSONDecoder().raw_decode(out)
    assert shown["configurationKey"] == [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
    ]
    assert '"status": "Accepted"' in out
    assert "error: --connector-id: Connector must be a whole number" in err
    assert "error: charge point 'NOBODY' is not known (HTTP 404)" in err
    assert (
        cli.main(
            [
                "command",
                "Reset",
                "CMD-CLI",
                "--type",
                "Soft",
                "--url",
                "http://127.0.0.1:1",
                "--token",
                "x",
            ]
        )
        == 2
    )
    assert "no admin API at http://127.0.0.1:1" in capsys.readouterr().err
