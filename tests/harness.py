"""Test harness: an OCPP server on an ephemeral port, and a raw charger that speaks frames."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio
from trio_websocket import WebSocketConnection, connect_websocket_url

from voltaro.ocppj.endpoint import Handler, RpcEndpoint
from voltaro.ocppj.validation import SchemaRegistry
from voltaro.transport.server import (
    Admission,
    ChargePointConnection,
    OcppServer,
    ServerOptions,
)

REGISTRY = SchemaRegistry.load()
RECEIVE_TIMEOUT = 10.0

HandlerFactory = Callable[[str, "LiveServer"], Mapping[str, Handler]]


async def admit_everyone(
    charge_point_id: str, password: str | None, address: str = ""
) -> Admission:
    return Admission()


@dataclass
class LiveServer:
    server: OcppServer
    endpoints: dict[str, RpcEndpoint] = field(default_factory=dict)
    connections: dict[str, ChargePointConnection] = field(default_factory=dict)
    """Live connections by charge point id (the transport keeps no such record)."""
    connected: dict[str, trio.Event] = field(default_factory=dict)

    def url(self, charge_point_id: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ocpp/{charge_point_id}"

    async def endpoint(self, charge_point_id: str) -> RpcEndpoint:
        """The server-side endpoint of a charger, once it is connected."""
        await self.connected.setdefault(charge_point_id, trio.Event()).wait()
        return self.endpoints[charge_point_id]


async def start_test_server(
    nursery: trio.Nursery,
    handlers: HandlerFactory,
    *,
    gate: Callable[[str, str | None], Any] = admit_everyone,
    call_timeout: float = 5.0,
    on_pong: Callable[[str], None] | None = None,
    busy: Callable[[], bool] | None = None,
    **options: Any,
) -> LiveServer:
    holder: list[LiveServer] = []

    async def session(connection: ChargePointConnection) -> None:
        test_server = holder[0]
        endpoint = RpcEndpoint(
            connection.websocket,
            REGISTRY,
            handlers(connection.charge_point_id, test_server),
            name=connection.charge_point_id,
            call_timeout=call_timeout,
            lenient=connection.lenient,
        )
        test_server.endpoints[connection.charge_point_id] = endpoint
        test_server.connections[connection.charge_point_id] = connection
        test_server.connected.setdefault(connection.charge_point_id, trio.Event()).set()
        try:
            await endpoint.serve()
        finally:
            if test_server.connections.get(connection.charge_point_id) is connection:
                del test_server.connections[connection.charge_point_id]

    # Tests end by cancelling both sides at once: nobody answers the close handshake.
    options.setdefault("close_timeout", 0.5)
    server_options = ServerOptions(host="127.0.0.1", port=0, **options)
    server = OcppServer(server_options, gate, session, on_pong=on_pong, busy=busy)
    holder.append(LiveServer(server))
    await nursery.start(server.run)
    return holder[0]


class RawCharger:
    """A charge point that sends and reads raw frames, for checking the wire exactly."""

    _ids = itertools.count(1)

    def __init__(self, websocket: WebSocketConnection) -> None:
        self.websocket = websocket

    @classmethod
    async def connect(
        cls, nursery: trio.Nursery, url: str, subprotocols: list[str] | None = None
    ) -> RawCharger:
        protocols = ["ocpp1.6"] if subprotocols is None else subprotocols
        websocket = await connect_websocket_url(nursery, url, subprotocols=protocols)
        return cls(websocket)

    async def send_text(self, text: str | bytes) -> None:
        await self.websocket.send_message(text)

    async def send(self, frame: list[Any]) -> None:
        await self.send_text(orjson.dumps(frame).decode())

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> list[Any]:
        with trio.fail_after(timeout):
            message = await self.websocket.get_message()
        decoded: list[Any] = orjson.loads(message)
        return decoded

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL and return the frame that answers it (skipping nothing else)."""
        message_id = f"t{next(self._ids)}"
        await self.send([2, message_id, action, payload])
        frame = await self.receive()
        assert frame[1] == message_id, frame
        return frame

    async def close(self) -> None:
        await self.websocket.aclose()
