"""A trio-websocket connection behind the RPC endpoint's text-in/text-out interface.

Used by both ends: the server's charge point connections and the simulator's chargers.
"""

from __future__ import annotations

from trio_websocket import ConnectionClosed, WebSocketConnection

from voltaro.ocppj.endpoint import ChannelClosed


class WebSocketChannel:
    """:class:`voltaro.ocppj.endpoint.MessageChannel` over a trio-websocket connection."""

    def __init__(self, websocket: WebSocketConnection) -> None:
        self._websocket = websocket

    async def receive(self) -> str | bytes:
        try:
            return await self._websocket.get_message()
        except ConnectionClosed:
            raise ChannelClosed from None

    async def send(self, text: str) -> None:
        try:
            await self._websocket.send_message(text)
        except ConnectionClosed:
            raise ChannelClosed from None
