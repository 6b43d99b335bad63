"""The echo server of :mod:`benchmarks.echo_server` on the ``websockets`` package's trio
implementation (``websockets.trio``, its sans-io core with C speedups): the other side of
the WebSocket-layer comparison with :mod:`benchmarks.echo_wsproto`. Compression off and no
pings, as Voltaro's connection has neither on.

    python -m benchmarks.echo_websockets_trio --port 0     # prints "ready PORT"
"""

from __future__ import annotations

import argparse
import functools

import orjson
import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.server import ServerConnection, serve

from benchmarks.echo_server import FIXED
from voltaro.process_limits import raise_open_file_limit


async def _handler(websocket: ServerConnection) -> None:
    try:
        while True:
            frame = orjson.loads(await websocket.recv())
            if frame[0] == 2:
                reply = orjson.dumps([3, frame[1], FIXED.get(frame[2], {})])
                await websocket.send(reply.decode())
    except ConnectionClosed:
        return


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            functools.partial(
                serve,
                _handler,
                port,
                host=host,
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                compression=None,
                ping_interval=None,
                max_size=1 << 20,
            )
        )
        print(f"ready {server.listeners[0].socket.getsockname()[1]}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_open_file_limit()
    trio.run(main, args.host, args.port)
