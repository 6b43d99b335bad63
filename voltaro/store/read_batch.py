"""Batched reads: many callers' reads of one kind answered by one query.

Why: a read through :meth:`Database.run` costs a crossing into asyncio and a pooled
connection for its round trip. When thousands of chargers connect at once, each one's first
StatusNotification reads its connectors' statuses; one read per charger exhausted the pool
(10 connections) and the reads queued past the database's deadline, answered InternalError.
The group-commit writer's idea for reads instead: one task takes every request queued while
the last query ran and reads all their keys in one query (``WHERE key = ANY($1)``), so
reads grow into batches under load and stay single when idle.

Error handling: a query that fails fails every request of its batch (with
:class:`~voltaro.store.errors.StoreUnavailable` when the database is away or late: the query
has the database's deadline; anything else is a bug, a RuntimeError chained to it). A caller
cancelled while waiting just stops waiting; its key is read anyway. Without the task running
(operator commands, ``background=False``) each request is read alone.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import trio

from voltaro.store.database import Connection, Database
from voltaro.store.errors import StoreUnavailable

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEYS = 1000  # keys per query; beyond this a batch's latency grows for no gain

_STOPPED = StoreUnavailable("the store's batched reads stopped")

ReadMany = Callable[[Connection, list[K]], Awaitable[dict[K, V]]]
"""``(connection, keys) -> {key: value}``; a key left out gets the batcher's default."""


class _Request(Generic[K, V]):
    __slots__ = ("done", "error", "key", "value")

    def __init__(self, key: K) -> None:
        self.key = key
        self.done = trio.Event()
        self.value: V | None = None
        self.error: BaseException | None = None


class ReadBatcher(Generic[K, V]):
    """Reads of one kind, batched (see the module doc). Start :meth:`run` in a nursery, then
    :meth:`get`. Counters (read them): ``queries``, ``keys``."""

    def __init__(
        self,
        database: Database,
        read_many: ReadMany[K, V],
        default: Callable[[], V],
        *,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._database = database
        self._read_many = read_many
        self._default = default
        self._max_keys = max_keys
        self._send, self._receive = trio.open_memory_channel[_Request[K, V]](math.inf)
        self._running = False
        self.queries = 0
        self.keys = 0

    async def get(self, key: K) -> V:
        """``key``'s value, read with whatever else is asked meanwhile. Raises what the
        query raised (StoreUnavailable when the database is away or late)."""
        if not self._running:
            value = (await self._read([key])).get(key)
        else:
            request: _Request[K, V] = _Request(key)
            self._send.send_nowait(request)
            await request.done.wait()
            if request.error is not None:  # shared by the batch: each caller raises its own
                if isinstance(request.error, StoreUnavailable):
                    raise StoreUnavailable(str(request.error)) from request.error
                raise RuntimeError(f"batched read failed: {request.error!r}") from request.error
            value = request.value
        return self._default() if value is None else value

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Answer the queued requests, a batch at a time, until cancelled."""
        self._running = True
        task_status.started()
        try:
            while True:
                batch = [await self._receive.receive()]
                while len(batch) < self._max_keys:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self._answer(batch)
        finally:
            self._running = False
            while True:  # whoever still waits is told, not left hanging
                try:
                    self._fail([self._receive.receive_nowait()], _STOPPED)
                except trio.WouldBlock:
                    break

    async def _answer(self, batch: list[_Request[K, V]]) -> None:
        keys = list(dict.fromkeys(request.key for request in batch))
        try:
            values = await self._read(keys)
        except Exception as error:
            self._fail(batch, error)
            return
        except BaseException:  # cancelled (the store stops): its callers are not left waiting
            self._fail(batch, _STOPPED)
            raise
        for request in batch:
            request.value = values.get(request.key)
            request.done.set()

    @staticmethod
    def _fail(batch: list[_Request[K, V]], error: BaseException) -> None:
        for request in batch:
            request.error = error
            request.done.set()

    async def _read(self, keys: list[K]) -> dict[K, V]:
        self.queries += 1
        self.keys += len(keys)
        return await self._database.run(self._read_many, keys)
