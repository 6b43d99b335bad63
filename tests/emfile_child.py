"""Run by ``tests/test_transport_limits.py`` in a process of its own: the OCPP server while the
process has no file descriptor left (EMFILE), then once it has again. Prints a JSON report:
the chargers' BootNotification answers, the server's failed accepts, its log messages.

Its own process because it takes every descriptor the process may open, and lowers the
open-file limit to make that quick.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import resource

import orjson
import trio

from tests.harness import start_test_server
from tests.test_transport_limits import BOOT, handlers, until
from voltaro.transport import accepting
from voltaro.transport.websocket import WebSocket, open_client

FILE_LIMIT = 256
CHARGERS = 3


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage() + ("Traceback" if record.exc_info else ""))


async def _boot(sock: trio.socket.SocketType, port: int, name: str) -> tuple[str, WebSocket]:
    """Connect and boot; the WebSocket is returned to be kept (dropped, it closes a socket,
    and the descriptor freed would end the famine)."""
    await sock.connect(("127.0.0.1", port))
    websocket = await open_client(
        trio.SocketStream(sock), f"127.0.0.1:{port}", f"/ocpp/{name}", subprotocols=["ocpp1.6"]
    )
    await websocket.send(orjson.dumps([2, "1", "BootNotification", BOOT]).decode())
    with trio.fail_after(10):
        return str(orjson.loads(await websocket.receive())[2]["status"]), websocket


async def main() -> dict[str, object]:
    messages = _Messages()
    logging.getLogger("voltaro.transport").addHandler(messages)
    logging.getLogger("voltaro.transport").setLevel(logging.INFO)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, hard))
    accepting.EPISODE_QUIET_SECONDS = 0.2  # the end of the famine is logged after 0.2 s quiet
    booted: list[str] = []
    kept: list[WebSocket] = []
    async with trio.open_nursery() as nursery:
        server = await start_test_server(nursery, handlers, reserved_files=0)
        port = server.server.port
        kept.append((await _boot(trio.socket.socket(), port, "WARM-UP"))[1])  # code imported
        # the chargers' sockets first, then every descriptor left is taken
        sockets = [trio.socket.socket() for _ in range(CHARGERS)]
        taken = []
        try:
            while True:
                taken.append(os.dup(0))
        except OSError as error:
            assert error.errno == errno.EMFILE

        async def boot(n: int) -> None:
            status, websocket = await _boot(sockets[n], port, f"CP{n}")
            booted.append(status)
            kept.append(websocket)

        async with trio.open_nursery() as chargers:
            for n in range(CHARGERS):
                chargers.start_soon(boot, n)
            await until(lambda: server.server.stats().accept.accept_errors.get("EMFILE", 0) >= 3)
            for fd in taken:
                os.close(fd)
        await until(lambda: any(m.startswith("accept failures stopped") for m in messages.messages))
        stats = server.server.stats().accept
        nursery.cancel_scope.cancel()
    return {"booted": booted, "accept_errors": stats.accept_errors, "logs": messages.messages}


if __name__ == "__main__":
    print(json.dumps(trio.run(main)))
