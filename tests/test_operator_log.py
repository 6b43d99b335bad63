"""What ``voltaro serve`` logs at INFO for an operator to follow, read from a real server's
stderr as JSON lines (``VOLTARO_LOG_FORMAT=json``): boots and their registration result,
refused authorizations with the tag, transactions started and stopped, CALLERRORs sent,
operator actions and who did them, and failed handshakes with why."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionRejected, connect_websocket_url

from tests.harness import RawCharger

TOKEN = "operator-log-test-token"
WAIT = 30.0  # seconds any expected line may take (a generous bound, not a measurement)


def records(log_file: Path) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be one JSON object."""
    lines = log_file.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


async def wait_for(log_file: Path, pattern: str) -> re.Match[str]:
    with trio.fail_after(WAIT):
        while True:
            for record in records(log_file):
                match = re.search(pattern, record["message"])
                if match:
                    return match
            await trio.sleep(0.05)


async def refused(url: str, headers: list[tuple[bytes, bytes]]) -> int:
    """The HTTP status a handshake to ``url`` is refused with."""
    statuses = []
    try:
        async with trio.open_nursery() as nursery:
            await connect_websocket_url(
                nursery, url, subprotocols=["ocpp1.6"], extra_headers=headers
            )
    except* ConnectionRejected as group:
        statuses = [error.status_code for error in group.exceptions]  # type: ignore[attr-defined]
    assert len(statuses) == 1, "the handshake was not refused"
    return int(statuses[0])


def basic(charge_point_id: str, password: str) -> list[tuple[bytes, bytes]]:
    credentials = base64.b64encode(f"{charge_point_id}:{password}".encode())
    return [(b"Authorization", b"Basic " + credentials)]


async def test_the_operator_log_as_json_lines(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "VOLTARO_DATABASE_URL": database_url,
        "VOLTARO_DATA_DIR": str(tmp_path / "data"),
        "VOLTARO_OCPP_HOST": "127.0.0.1",
        "VOLTARO_OCPP_PORT": "0",
        "VOLTARO_ADMIN_PORT": "0",
        "VOLTARO_ADMIN_TOKEN": TOKEN,
        "VOLTARO_UNKNOWN_CHARGERS": "reject",
        "VOLTARO_LOG_FORMAT": "json",
        "VOLTARO_LOG_LEVEL": "INFO",
    }
    log_file = tmp_path / "voltaro.log"
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "voltaro", "serve"], env=env, stdout=out, stderr=out
        )
    try:
        port = int((await wait_for(log_file, r"Voltaro is ready: .*:(\d+)/ocpp/"))[1])
        admin = (await wait_for(log_file, r"admin API on (http://\S+)"))[1]
        url = f"ws://127.0.0.1:{port}/ocpp/"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=admin, headers=headers) as api:
            created = await api.put(
                "/api/v1/charge-points/LOG-CP", json={"password": "pw-LOG-CP-1"}
            )
            assert created.status_code == 201
            assert (await api.put("/api/v1/id-tags/LOG-TAG", json={})).status_code == 201

        async with trio.open_nursery() as nursery:
            websocket = await connect_websocket_url(
                nursery,
                url + "LOG-CP",
                subprotocols=["ocpp1.6"],
                extra_headers=basic("LOG-CP", "pw-LOG-CP-1"),
            )
            charger = RawCharger(websocket)
            boot = await charger.call(
                "BootNotification", {"chargePointVendor": "Test", "chargePointModel": "Log"}
            )
            assert boot[2]["status"] == "Accepted"
            authorized = await charger.call("Authorize", {"idTag": "BAD-TAG"})
            assert authorized[2]["idTagInfo"]["status"] == "Invalid"
            started = await charger.call(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": "LOG-TAG",
                    "meterStart": 100,
                    "timestamp": "2026-12-01T08:00:00Z",
                },
            )
            transaction_id = started[2]["transactionId"]
            await charger.call(
                "StopTransaction",
                {
                    "transactionId": transaction_id,
                    "meterStop": 2600,
                    "timestamp": "2026-12-01T09:00:00Z",
                    "reason": "Local",
                },
            )
            error = await charger.call("NoSuchAction", {})
            assert error[0] == 4 and error[2] == "NotImplemented"
            await charger.close()

        assert await refused(url + "LOG-UNKNOWN", []) == 404
        assert await refused(url + "LOG-CP", []) == 401
        await trio.sleep(1.5)  # past the 1 s back-off the failed login put on this address
        assert await refused(url + "LOG-CP", basic("LOG-CP", "not-the-password")) == 401

        expected = [
            (
                "voltaro.audit",
                r"^operator @admin-token \(admin, api\): putChargePoint on LOG-CP: created$",
            ),
            ("voltaro.audit", r"^operator @admin-token \(admin, api\): putIdTag LOG-TAG: created$"),
            ("voltaro.fleet", r"^charge point LOG-CP booted \(Test Log\): registration Accepted$"),
            (
                "voltaro.central.profiles.core",
                r"^charge point LOG-CP: Authorize refused id tag BAD-TAG: Invalid$",
            ),
            (
                "voltaro.fleet",
                rf"^charge point LOG-CP: transaction {transaction_id} started on connector 1 "
                r"by id tag LOG-TAG$",
            ),
            (
                "voltaro.fleet",
                rf"^charge point LOG-CP: transaction {transaction_id} stopped \(Local\), "
                r"meter 2600 Wh$",
            ),
            (
                "voltaro.fleet",
                r"^charge point LOG-CP: CALLERROR NotImplemented sent to it on NoSuchAction: ",
            ),
            (
                "voltaro.transport",
                r"^refused LOG-UNKNOWN from \S+: HTTP 404 \(unknown charge point id\)$",
            ),
            ("voltaro.central.system", r"^login failed for LOG-CP from \S+: no Basic credentials$"),
            ("voltaro.central.system", r"^login failed for LOG-CP from \S+: wrong password$"),
        ]
        for _, pattern in expected:
            await wait_for(log_file, pattern)
        found = records(log_file)
        for logger, pattern in expected:
            assert any(
                r["logger"] == logger and r["level"] == "INFO" and re.search(pattern, r["message"])
                for r in found
            ), (logger, pattern)
        text = log_file.read_text()
        assert "pw-LOG-CP-1" not in text and "not-the-password" not in text
        assert all({"time", "level", "logger", "message"} <= set(r) for r in found)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_json_line_is_one_line_whatever_the_message_holds() -> None:
    import logging

    from voltaro.logformat import JsonLineFormatter

    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord(
            "voltaro.x", logging.WARNING, __file__, 1, "forged\n%s", ("\x1b[2J",), sys.exc_info()
        )
    line = JsonLineFormatter("w1").format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "forged\n\x1b[2J"
    assert parsed["process"] == "w1" and parsed["level"] == "WARNING"
    assert "ValueError: bad" in parsed["exception"]


def test_a_pending_chargers_retries_stay_out_of_info(caplog: Any) -> None:
    """A charger left Pending boots again every interval: its first Pending boot is an INFO
    line, the retries DEBUG, until its registration changes (then Pending counts again)."""
    import logging

    from voltaro.central.domain_events import Booted
    from voltaro.central.fleet_log import FleetLog

    listener = FleetLog()
    caplog.set_level(logging.DEBUG, logger="voltaro.fleet")
    for status in ("Pending", "Pending", "Pending", "Accepted", "Pending", "Pending"):
        listener(Booted(charge_point_id="WAITING", status=status, vendor="V", model="M"))
    listener(Booted(charge_point_id="OTHER", status="Pending", vendor="V", model="M"))
    listener(
        Booted(charge_point_id="RELAYED", status="Accepted", vendor="V", model="M", origin="b")
    )
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        (level, f"charge point {cp} booted (V M): registration {status}")
        for level, cp, status in [
            ("INFO", "WAITING", "Pending"),
            ("DEBUG", "WAITING", "Pending"),
            ("DEBUG", "WAITING", "Pending"),
            ("INFO", "WAITING", "Accepted"),
            ("INFO", "WAITING", "Pending"),
            ("DEBUG", "WAITING", "Pending"),
            ("INFO", "OTHER", "Pending"),
        ]
    ]
