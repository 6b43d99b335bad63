"""A TCP proxy in front of the test PostgreSQL that can be frozen: what a database whose
processes are stopped (SIGSTOP), whose disk hangs, or whose network is partitioned looks like
to a client. Frozen, it forwards nothing but keeps every socket open, and accepts new
connections without forwarding them either; thawed, it forwards what it held and goes on.

Only the connections made through the proxy freeze: the session's shared server (and every
other test's database) carries on.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

CHUNK = 65536


def socket_path(url: str) -> Path:
    """The Unix socket of an embedded server's URL (``postgresql://user@/db?host=DIR``)."""
    parts = urllib.parse.urlsplit(url)
    directory = urllib.parse.parse_qs(parts.query)["host"][0]
    return Path(directory) / f".s.PGSQL.{parts.port or 5432}"


class FreezableProxy:
    """Start :meth:`run` with ``nursery.start``; then :meth:`url`, :meth:`freeze`,
    :meth:`thaw`."""

    def __init__(self, target_url: str) -> None:
        self._target_url = target_url
        self._socket = socket_path(target_url)
        self._thawed = trio.Event()
        self._thawed.set()
        self.port = 0
        self.accepted = 0

    def url(self) -> str:
        """The target URL, reached through the proxy over TCP."""
        parts = urllib.parse.urlsplit(self._target_url)
        user = parts.username or "postgres"
        # no SSL negotiation: a connect cancelled during it leaves an asyncio future whose
        # error nobody reads, logged at exit (asyncpg's, harmless, noise in the test output)
        return f"postgresql://{user}@127.0.0.1:{self.port}{parts.path}?sslmode=disable"

    @property
    def frozen(self) -> bool:
        return not self._thawed.is_set()

    def freeze(self) -> None:
        if not self.frozen:
            self._thawed = trio.Event()

    def thaw(self) -> None:
        self._thawed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        server = await trio.open_unix_socket(str(self._socket))
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, server, nursery.cancel_scope)
            nursery.start_soon(self._pump, server, client, nursery.cancel_scope)

    async def _pump(
        self, source: trio.abc.Stream, sink: trio.abc.Stream, both: trio.CancelScope
    ) -> None:
        try:
            while True:
                await self._thawed.wait()
                data = await source.receive_some(CHUNK)
                if not data:
                    break
                await self._thawed.wait()  # held, not lost, while frozen
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        both.cancel()  # one side closed: close the other


@pytest.fixture
async def proxy(database_url: str, aio_loop: Any) -> AsyncIterator[FreezableProxy]:
    """A proxy in front of this test's database, running for the test (thawed at the end,
    whatever the test did, so that the connections through it can close)."""
    proxy = FreezableProxy(database_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        try:
            yield proxy
        finally:
            proxy.thaw()
            nursery.cancel_scope.cancel()
