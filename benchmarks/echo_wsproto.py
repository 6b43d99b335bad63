"""The echo server of :mod:`benchmarks.echo_server` on Voltaro's own WebSocket connection
(:mod:`voltaro.transport.websocket`, wsproto read and written straight off the socket):
one side of the WebSocket-layer comparison, :mod:`benchmarks.echo_websockets_trio` the other.

    python -m benchmarks.echo_wsproto --port 0     # prints "ready PORT" when listening
"""

from __future__ import annotations

import argparse

import orjson
import trio

from benchmarks.echo_server import FIXED
from voltaro.ocppj.endpoint import ChannelClosed
from voltaro.process_limits import raise_open_file_limit
from voltaro.transport.websocket import HandshakeFailed, read_upgrade_request


async def _handler(stream: trio.SocketStream) -> None:
    try:
        request = await read_upgrade_request(stream, max_message=1 << 20)
        if request is None:
            return
        websocket = await request.accept(subprotocol="ocpp1.6")
        while True:
            frame = orjson.loads(await websocket.receive())
            if frame[0] == 2:
                reply = orjson.dumps([3, frame[1], FIXED.get(frame[2], {})])
                await websocket.send(reply.decode())
    except (ChannelClosed, HandshakeFailed):
        return


async def main(host: str, port: int) -> None:
    listeners = await trio.open_tcp_listeners(port, host=host)
    print(f"ready {listeners[0].socket.getsockname()[1]}", flush=True)
    await trio.serve_listeners(_handler, listeners)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_open_file_limit()
    trio.run(main, args.host, args.port)
