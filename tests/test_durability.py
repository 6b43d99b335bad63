"""Nothing acknowledged is lost: SIGKILL the server mid-stream, restart it, and find every
value a charger got a CALLRESULT for; StartTransaction retries are de-duplicated across the
restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import trio
import trio_asyncio
from trio_websocket import ConnectionClosed, HandshakeError

from tests.harness import RawCharger
from voltaro.store.testing import TestPostgres, pg_server

__all__ = ["pg_server"]

READY = re.compile(r"Voltaro is ready: chargers connect to ws://[^:]+:(\d+)/")
CHARGERS = 6


@contextmanager
def voltaro_process(
    database_url: str, log_file: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``voltaro serve`` as a child process; yields it and its OCPP port once ready."""
    env = {
        **os.environ,
        "VOLTARO_DATABASE_URL": database_url,
        "VOLTARO_OCPP_HOST": "127.0.0.1",
        "VOLTARO_OCPP_PORT": "0",
        "VOLTARO_ADMIN_PORT": "0",  # not 8080: another server on the machine may hold it
        "VOLTARO_UNKNOWN_CHARGERS": "accept",
        "VOLTARO_DATA_DIR": str(log_file.parent),
    }
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "voltaro", "serve"], env=env, stdout=log, stderr=log
        )
    try:
        yield process, _wait_ready(process, log_file)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def _wait_ready(process: subprocess.Popen[bytes], log_file: Path) -> int:
    for _ in range(600):
        match = READY.search(log_file.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"voltaro serve exited early:\n{log_file.read_text()}")
        trio.run(trio.sleep, 0.05)
    raise TimeoutError(f"voltaro serve did not become ready:\n{log_file.read_text()}")


def meter_values(charger: int, seq: int) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "meterValue": [
            {
                "timestamp": "2026-11-24T12:00:00Z",
                "sampledValue": [
                    {"value": f"{charger}.{seq}", "measurand": "Voltage", "unit": "V"}
                ],
            }
        ],
    }


async def stream_until_killed(port: int, acknowledged: set[str], killed: trio.Event) -> None:
    async def one_charger(number: int) -> None:
        url = f"ws://127.0.0.1:{port}/ocpp/DUR-{number}"
        async with trio.open_nursery() as nursery:
            charger = await RawCharger.connect(nursery, url)
            seq = 0
            try:
                while True:
                    seq += 1
                    answer = await charger.call("MeterValues", meter_values(number, seq))
                    assert answer[0] == 3, answer
                    acknowledged.add(f"{number}.{seq}")
            except (ConnectionClosed, HandshakeError, trio.TooSlowError):
                assert killed.is_set(), "the connection dropped before the server was killed"
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for number in range(CHARGERS):
            nursery.start_soon(one_charger, number)


async def stored_values(database_url: str) -> set[str]:
    async with trio_asyncio.open_loop():
        connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
        try:
            rows = await trio_asyncio.aio_as_trio(connection.fetch)(
                "SELECT value FROM meter_values WHERE charge_point_id LIKE 'DUR-%'"
            )
        finally:
            await trio_asyncio.aio_as_trio(connection.close)()
    return {row["value"] for row in rows}


def test_sigkill_mid_stream_loses_nothing_acknowledged(
    pg_server: TestPostgres, tmp_path: Path
) -> None:
    database_url = pg_server.new_database()
    acknowledged: set[str] = set()
    with voltaro_process(database_url, tmp_path / "first.log") as (process, port):

        async def drive() -> None:
            killed = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream_until_killed, port, acknowledged, killed)
                while len(acknowledged) < 300:
                    await trio.sleep(0.01)
                killed.set()
                process.send_signal(signal.SIGKILL)

        trio.run(drive)
        assert process.wait(10) == -signal.SIGKILL
    with voltaro_process(database_url, tmp_path / "second.log"):
        stored = trio.run(stored_values, database_url)
    assert len(acknowledged) >= 300
    missing = acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged values lost, e.g. {sorted(missing)[:5]}"


START = {"connectorId": 1, "idTag": "RETRY", "meterStart": 500, "timestamp": "2026-11-24T08:00:00Z"}


async def start_transaction(port: int, message_id: str) -> list[Any]:
    async with trio.open_nursery() as nursery:
        charger = await RawCharger.connect(nursery, f"ws://127.0.0.1:{port}/ocpp/DEDUP")
        await charger.send([2, message_id, "StartTransaction", START])
        answer = await charger.receive()
        await charger.close()
        return answer


def test_start_transaction_retry_after_restart_returns_same_id(
    pg_server: TestPostgres, tmp_path: Path
) -> None:
    database_url = pg_server.new_database()
    with voltaro_process(database_url, tmp_path / "first.log") as (_, port):
        first = trio.run(start_transaction, port, "first-try")
    with voltaro_process(database_url, tmp_path / "second.log") as (_, port):
        retry = trio.run(start_transaction, port, "second-try-new-id")
    assert first[0] == retry[0] == 3
    assert first[2]["transactionId"] == retry[2]["transactionId"]

    async def count() -> int:
        async with trio_asyncio.open_loop():
            connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
            try:
                return int(
                    await trio_asyncio.aio_as_trio(connection.fetchval)(
                        "SELECT count(*) FROM transactions WHERE charge_point_id = 'DEDUP'"
                    )
                )
            finally:
                await trio_asyncio.aio_as_trio(connection.close)()

    assert trio.run(count) == 1


async def wait_for_close(port: int, process: subprocess.Popen[bytes]) -> int:
    async with trio.open_nursery() as nursery:
        charger = await RawCharger.connect(nursery, f"ws://127.0.0.1:{port}/ocpp/BYE")
        assert (await charger.call("Heartbeat", {}))[0] == 3
        process.send_signal(signal.SIGTERM)
        try:
            await charger.receive(timeout=20)
        except ConnectionClosed as closed:
            assert closed.reason is not None
            return closed.reason.code
    raise AssertionError("the server sent a frame instead of closing")


def test_sigterm_closes_connections_with_1001_and_exits_cleanly(
    pg_server: TestPostgres, tmp_path: Path
) -> None:
    database_url = pg_server.new_database()
    with voltaro_process(database_url, tmp_path / "serve.log") as (process, port):
        assert trio.run(wait_for_close, port, process) == 1001
        assert process.wait(30) == 0
    log = (tmp_path / "serve.log").read_text()
    assert "SIGTERM received" in log and "Voltaro stopped" in log
