"""The ceiling of the transport: trio-websocket answering every CALL with a fixed
CALLRESULT for its action (no validation, no state, nothing stored).

    python -m benchmarks.echo_server --port 0     # prints "ready PORT" when listening
"""

from __future__ import annotations

import argparse
import functools

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from voltaro.process_limits import raise_open_file_limit

_ACCEPTED = {"status": "Accepted"}
FIXED: dict[str, object] = {
    "BootNotification": {
        "status": "Accepted",
        "currentTime": "2026-01-01T00:00:00Z",
        "interval": 300,
    },
    "Heartbeat": {"currentTime": "2026-01-01T00:00:00Z"},
    "Authorize": {"idTagInfo": _ACCEPTED},
    "StartTransaction": {"transactionId": 1, "idTagInfo": _ACCEPTED},
}


async def _handler(request: WebSocketRequest) -> None:
    websocket = await request.accept(subprotocol="ocpp1.6")
    try:
        while True:
            message = await websocket.get_message()
            frame = orjson.loads(message)
            if frame[0] == 2:
                reply = orjson.dumps([3, frame[1], FIXED.get(frame[2], {})])
                await websocket.send_message(reply.decode())
    except ConnectionClosed:
        return


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            functools.partial(serve_websocket, _handler, host, port, ssl_context=None)
        )
        print(f"ready {server.port}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_open_file_limit()  # as voltaro serve does: thousands of chargers
    trio.run(main, args.host, args.port)
