"""What a hostile or broken client cannot do to the OCPP server any more: pass the frame limit
with multi-byte characters."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import trio

from tests.harness import LiveServer, start_test_server
from voltaro.ocppj.endpoint import ChannelClosed, Handler
from voltaro.sim.charger import connect_websocket
from voltaro.transport.websocket import WebSocket

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
    theirs = server.server.connections["CP1"].websocket
    with contextlib.suppress(ChannelClosed):  # the server may hang up before all is sent
        await call(websocket, "DataTransfer", {"vendorId": "V", "data": "\U0001d11e" * 65000}, "2")
    await until(lambda: theirs.closed is not None)
    assert theirs.closed is not None and theirs.closed.code == 1009
