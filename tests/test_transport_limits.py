"""What a hostile or broken client cannot do to the OCPP server any more: pass the frame limit
with multi-byte characters, hold every file descriptor with connections that never speak,
hold a handshake slot with a slow gate, or flood the server faster than its inbound rate."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import resource
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.harness import LiveServer, start_test_server
from voltaro.app import server_options
from voltaro.config import CannotStart, Settings, SettingsError
from voltaro.ocppj.endpoint import ChannelClosed, Handler
from voltaro.sim.charger import connect_websocket
from voltaro.transport import accepting
from voltaro.transport.websocket import (
    FRAME_COST,
    INBOUND_BURST,
    INBOUND_RATE,
    HandshakeFailed,
    WebSocket,
)

Payload = dict[str, Any]
ROOT = Path(__file__).resolve().parent.parent
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


def handlers(charge_point_id: str, server: LiveServer) -> Mapping[str, Handler]:
    async def boot(payload: Payload) -> Payload:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return {"status": "Accepted", "currentTime": now, "interval": 300}

    async def heartbeat(payload: Payload) -> Payload:
        return {"currentTime": "2026-01-01T00:00:00Z"}

    async def data_transfer(payload: Payload) -> Payload:
        return {"status": "Accepted", "data": str(len(payload.get("data", "")))}

    return {"BootNotification": boot, "Heartbeat": heartbeat, "DataTransfer": data_transfer}


async def charger(server: LiveServer, charge_point_id: str, source: str) -> WebSocket:
    websocket, _ = await connect_websocket(
        server.url(charge_point_id), source_address=source, timeout=10
    )
    return websocket


async def call(websocket: WebSocket, action: str, payload: Payload, message_id: str = "1") -> Any:
    await websocket.send(orjson.dumps([2, message_id, action, payload]).decode())
    with trio.fail_after(10):
        return orjson.loads(await websocket.receive())


async def silent(server: LiveServer, source: str) -> trio.SocketStream:
    """A TCP connection from ``source`` that never sends a byte."""
    sock = trio.socket.socket()
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", server.server.port))
    return trio.SocketStream(sock)


async def hung_up(stream: trio.SocketStream) -> bool:
    """True once the server has closed the connection (or reset it)."""
    with trio.fail_after(10):
        try:
            return await stream.receive_some(100) == b""
        except trio.BrokenResourceError:
            return True


async def refused(server: LiveServer, source: str) -> bool:
    """True when a connection from ``source`` is hung up on at once (maybe before connect
    returns)."""
    try:
        stream = await silent(server, source)
    except ConnectionResetError:
        return True
    return await hung_up(stream)


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.01)


# -- the frame limit ------------------------------------------------------------------------


async def test_the_frame_limit_counts_utf8_bytes_not_characters(nursery: trio.Nursery) -> None:
    server = await start_test_server(nursery, handlers, max_frame=65536)
    websocket = await charger(server, "CP1", "127.0.0.1")
    # 16,000 four-byte characters: 64,000 bytes, under the limit
    answer = await call(websocket, "DataTransfer", {"vendorId": "V", "data": "\U0001d11e" * 16000})
    assert answer[0] == 3 and answer[2]["data"] == "16000"
    # 65,000 of them: under 65,536 characters, but 260,000 bytes
    theirs = server.connections["CP1"].websocket
    with contextlib.suppress(ChannelClosed):  # the server may hang up before all is sent
        await call(websocket, "DataTransfer", {"vendorId": "V", "data": "\U0001d11e" * 65000}, "2")
    await until(lambda: theirs.closed is not None)
    assert theirs.closed is not None and theirs.closed.code == 1009


# -- connections in their handshake ---------------------------------------------------------


async def test_handshakes_over_the_per_address_cap_are_refused_at_once(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accepting, "EPISODE_QUIET_SECONDS", 0.2)
    caplog.set_level(logging.INFO, logger="voltaro.transport")
    server = await start_test_server(
        nursery, handlers, max_handshakes_per_address=3, handshake_timeout=30
    )
    held = [await silent(server, "127.0.0.1") for _ in range(3)]
    await until(lambda: server.server.stats().accept.pending_handshakes == 3)
    for _ in range(4):
        assert await refused(server, "127.0.0.1")
    with pytest.raises((ChannelClosed, OSError)):  # an honest charger at that address too
        await charger(server, "CP-SAME", "127.0.0.1")
    websocket = await charger(server, "CP-OTHER", "127.0.0.2")  # another address gets in
    assert (await call(websocket, "BootNotification", BOOT))[2]["status"] == "Accepted"
    stats = server.server.stats().accept
    assert stats.refused_per_address == 5
    assert stats.pending_handshakes == 3  # the silent ones; the admitted one is not pending
    await until(lambda: any("refused 5 connections" in m for m in caplog.messages))
    assert sum("refusing connections from 127.0.0.1" in m for m in caplog.messages) == 1
    assert sum("refused 5 connections over the per-address" in m for m in caplog.messages) == 1
    for stream in held:
        await stream.aclose()


async def test_connections_beyond_the_pending_cap_wait_in_the_listen_queue_and_get_in(
    nursery: trio.Nursery,
) -> None:
    server = await start_test_server(
        nursery, handlers, max_pending_handshakes=2, max_handshakes_per_address=0
    )
    held = [await silent(server, "127.0.0.1") for _ in range(2)]
    await until(lambda: server.server.stats().accept.pending_handshakes == 2)
    booted: list[str] = []

    async def boot(n: int) -> None:
        websocket = await charger(server, f"CP{n}", "127.0.0.1")
        booted.append((await call(websocket, "BootNotification", BOOT))[2]["status"])

    async with trio.open_nursery() as storm:  # ten at once while both places are taken
        for n in range(10):
            storm.start_soon(boot, n)
        await until(lambda: server.server.stats().accept.accept_waits_pending >= 1)
        for stream in held:
            await stream.aclose()
    assert booted == ["Accepted"] * 10  # delayed, not refused
    stats = server.server.stats()
    assert stats.accept.pending_handshakes_peak == 2
    assert stats.accept.refused_per_address == 0
    assert stats.handshake_timeouts == 0


async def test_a_process_behind_on_its_work_takes_on_no_connection_until_it_has_caught_up(
    nursery: trio.Nursery,
) -> None:
    behind = True
    asked = 0

    def busy() -> bool:
        nonlocal asked
        asked += 1
        return behind

    server = await start_test_server(nursery, handlers, busy=busy)
    waiting = await silent(server, "127.0.0.1")  # connected: in the listen queue
    since = asked
    await until(lambda: asked >= since + 3)  # asked again and again, and still behind
    stats = server.server.stats().accept
    assert stats.live_connections == 0
    assert stats.accept_waits_busy == 1  # one pause, however often it asked
    behind = False
    websocket = await charger(server, "CP-LATE", "127.0.0.1")
    assert (await call(websocket, "BootNotification", BOOT))[2]["status"] == "Accepted"
    assert server.server.stats().accept.live_connections == 2  # the one that waited too
    await waiting.aclose()


async def test_a_gate_that_does_not_decide_in_time_gets_503_and_frees_the_place(
    nursery: trio.Nursery,
) -> None:
    async def stuck(charge_point_id: str, password: str | None, address: str) -> Any:
        await trio.sleep_forever()

    server = await start_test_server(nursery, handlers, gate=stuck, handshake_timeout=0.5)
    with pytest.raises(HandshakeFailed) as refused:
        await charger(server, "CP1", "127.0.0.1")
    assert refused.value.status_code == 503
    await until(lambda: server.server.stats().accept.live_connections == 0)
    stats = server.server.stats()
    assert stats.handshake_timeouts == 1
    assert stats.accept.pending_handshakes == 0


async def test_a_connection_that_never_speaks_is_closed_and_counted(
    nursery: trio.Nursery,
) -> None:
    server = await start_test_server(nursery, handlers, handshake_timeout=0.3)
    assert await hung_up(await silent(server, "127.0.0.1"))
    await until(lambda: server.server.stats().accept.live_connections == 0)
    assert server.server.stats().handshake_timeouts == 1


async def test_accepting_waits_at_the_open_file_limit_minus_the_reserve(
    nursery: trio.Nursery,
) -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    server = await start_test_server(nursery, handlers, reserved_files=soft - 4)  # room for 4
    chargers = [await charger(server, f"CP{n}", "127.0.0.1") for n in range(4)]
    for websocket in chargers:
        assert (await call(websocket, "BootNotification", BOOT))[0] == 3
    fifth: list[str] = []

    async def connect_fifth() -> None:
        websocket = await charger(server, "CP5", "127.0.0.1")
        fifth.append((await call(websocket, "BootNotification", BOOT))[2]["status"])

    async with trio.open_nursery() as waiting:
        waiting.start_soon(connect_fifth)
        await until(lambda: server.server.stats().accept.accept_waits_files >= 1)
        with trio.fail_after(5):
            await chargers[0].aclose()
    assert fifth == ["Accepted"]
    stats = server.server.stats().accept
    assert stats.accept_errors == {}
    assert stats.live_connections <= 4


async def test_a_reserve_that_leaves_no_descriptors_stops_the_start(nursery: trio.Nursery) -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    with pytest.raises(CannotStart, match="VOLTARO_RESERVED_FILES"):
        await start_test_server(nursery, handlers, reserved_files=soft)


async def test_running_out_of_file_descriptors_is_logged_once_and_accepting_resumes() -> None:
    """In a process of its own (``tests/emfile_child.py``): it takes every descriptor."""
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-m", "tests.emfile_child"], cwd=ROOT, capture_stdout=True
        )
    report = json.loads(done.stdout)
    assert report["booted"] == ["Accepted"] * 3
    assert report["accept_errors"]["EMFILE"] >= 3
    logs = report["logs"]
    assert sum(m.startswith("cannot accept connections: EMFILE") for m in logs) == 1
    assert sum(m.startswith("accept failures stopped") for m in logs) == 1
    assert not any("Traceback" in m for m in logs)


# -- inbound pacing -------------------------------------------------------------------------


async def test_a_client_sending_faster_than_the_inbound_rate_is_paced_not_dropped(
    nursery: trio.Nursery,
) -> None:
    server = await start_test_server(nursery, handlers, inbound_rate=200_000, inbound_burst=16_384)
    websocket = await charger(server, "CP1", "127.0.0.1")
    for n in range(12):  # 12 x 6 KB back to back, the burst is 16 KiB
        await websocket.send(
            orjson.dumps(
                [2, f"m{n}", "DataTransfer", {"vendorId": "V", "data": "x" * 6000}]
            ).decode()
        )
    answers = [orjson.loads(await websocket.receive()) for _ in range(12)]
    assert [(a[0], a[1]) for a in answers] == [(3, f"m{n}") for n in range(12)]
    assert server.server.stats().paced_reads > 0
    assert server.connections["CP1"].websocket.paced_reads > 0
    assert websocket.paced_reads == 0  # a client's reads are never paced


async def test_tiny_frames_are_paced_by_their_frame_cost(nursery: trio.Nursery) -> None:
    server = await start_test_server(nursery, handlers, inbound_rate=100_000, inbound_burst=8192)
    websocket = await charger(server, "CP1", "127.0.0.1")
    assert 40 * len('[2,"h40","Heartbeat",{}]') < 8192 < 40 * FRAME_COST
    for n in range(40):
        assert (await call(websocket, "Heartbeat", {}, f"h{n}"))[0] == 3
    assert server.server.stats().paced_reads > 0


# -- settings -------------------------------------------------------------------------------


def test_the_limits_are_settings_that_reach_the_server() -> None:
    settings = Settings.from_env(
        {
            "VOLTARO_MAX_PENDING_HANDSHAKES": "50",
            "VOLTARO_MAX_HANDSHAKES_PER_ADDRESS": "0",
            "VOLTARO_RESERVED_FILES": "64",
            "VOLTARO_INBOUND_RATE": "0",
            "VOLTARO_INBOUND_BURST": "1024",
        }
    )
    options = server_options(settings)
    assert (options.max_pending_handshakes, options.max_handshakes_per_address) == (50, 0)
    assert (options.reserved_files, options.inbound_rate, options.inbound_burst) == (64, 0, 1024)
    defaults = server_options(Settings())
    assert defaults.accept_limits() == accepting.AcceptLimits()
    assert (defaults.inbound_rate, defaults.inbound_burst) == (INBOUND_RATE, INBOUND_BURST)
    for variable in ("VOLTARO_MAX_PENDING_HANDSHAKES", "VOLTARO_INBOUND_BURST"):
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env({variable: "0"})
    with pytest.raises(SettingsError, match="VOLTARO_MAX_HANDSHAKES_PER_ADDRESS"):
        Settings.from_env({"VOLTARO_MAX_HANDSHAKES_PER_ADDRESS": "-1"})
