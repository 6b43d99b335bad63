"""WebSocket pings for the quiet connections of a server, from one task.

A connection is looked at every ``interval`` seconds. One whose peer sent a message since
the last look is alive, and is not pinged; a quiet one is pinged, and if its peer sends no
pong within ``timeout`` seconds it is stale, and is ended (:meth:`Keepalive.add`'s
``stale``). Every pong is reported to ``on_pong`` as it arrives (the charger is alive even
when pings replace its Heartbeats: ``WebSocketPingInterval``).

Why not ping every connection: a charger that talks proves its connection alive by itself.
At 20,000 stress-profile chargers (a Heartbeat a minute, MeterValues every 10 s while
charging) a ping for each every 60 s was 333 pings and 333 pongs a second, a fifth more
frames than the chargers' own 1,360 messages, on the server and on every charger. The price:
a connection that dies just after a message is found one interval later, within
2 x ``interval`` + ``timeout`` instead of ``interval`` + ``timeout``.

Why one task and not one per connection: a sleeping task with its nursery and cancel scopes
cost each idle connection about 3 KiB, and the collector walked its objects at every young
collection. Here a connection costs two entries in two queues. The queues stay in time
order by themselves: every connection waits the same ``interval`` for its next ping and the
same ``timeout`` for its pong, so an entry appended later is never due earlier.

Each ping is written by a short task of its own (it ends once the frame is written): a
connection busy sending, or whose peer reads nothing, makes only its own ping wait, and a
peer that reads nothing sends no pong either, so it is stale at the check. A task per ping
is ~10 µs: 50,000 chargers pinged every 60 s cost ~1% of a core.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import Protocol

import trio

from voltaro.ocppj.endpoint import ChannelClosed


class Pingable(Protocol):
    """What the keepalive needs of a connection (:class:`voltaro.transport.websocket.WebSocket`)."""

    @property
    def pongs(self) -> int:
        """Pongs received so far."""
        ...

    @property
    def messages_received(self) -> int:
        """Messages (not pings or pongs) received so far."""
        ...

    @property
    def is_closed(self) -> bool: ...

    async def send_ping(self) -> None:
        """Send a ping, waiting for the connection's turn to write."""
        ...


class _Watched:
    __slots__ = ("ended", "messages_seen", "pongs_at_ping", "stale", "websocket")

    def __init__(self, websocket: Pingable, stale: Callable[[], None]) -> None:
        self.websocket = websocket
        self.stale = stale
        self.pongs_at_ping = 0
        self.messages_seen = websocket.messages_received
        self.ended = False


class Keepalive:
    """Pings the connections it is given (:meth:`add`) until they end (:meth:`remove`); run
    :meth:`run` in a nursery."""

    def __init__(self, interval: float, timeout: float) -> None:
        self._interval = interval
        self._timeout = timeout
        self._pings: deque[tuple[float, _Watched]] = deque()  # (when, connection) in order
        self._checks: deque[tuple[float, _Watched]] = deque()
        self._wake = trio.Event()
        self.stale_connections = 0

    @property
    def enabled(self) -> bool:
        return self._interval > 0

    def add(self, websocket: Pingable, stale: Callable[[], None]) -> _Watched:
        """Ping ``websocket`` from ``interval`` seconds on; ``stale()`` ends it when a pong is
        late. Returns the handle to :meth:`remove` it with."""
        watched = _Watched(websocket, stale)
        if self.enabled:
            self._pings.append((trio.current_time() + self._interval, watched))
            self._wake.set()
        return watched

    @staticmethod
    def remove(watched: _Watched) -> None:
        """The connection ended: its entries are dropped when they come due."""
        watched.ended = True

    async def run(self) -> None:
        """Ping and check until cancelled."""
        if not self.enabled:
            return
        async with trio.open_nursery() as nursery:
            while True:
                due = self._next_due()
                if due is None:
                    self._wake = trio.Event()
                    await self._wake.wait()
                    continue
                await trio.sleep_until(due)
                now = trio.current_time()
                self._check_pongs(now)
                self._send_pings(now, nursery)

    def _next_due(self) -> float | None:
        heads = [queue[0][0] for queue in (self._pings, self._checks) if queue]
        return min(heads) if heads else None

    def _send_pings(self, now: float, nursery: trio.Nursery) -> None:
        pings, checks = self._pings, self._checks
        while pings and pings[0][0] <= now:
            _, watched = pings.popleft()
            websocket = watched.websocket
            if watched.ended or websocket.is_closed:
                continue
            pings.append((now + self._interval, watched))
            messages = websocket.messages_received
            if messages != watched.messages_seen:  # it spoke since the last look: alive
                watched.messages_seen = messages
                continue
            watched.pongs_at_ping = websocket.pongs
            nursery.start_soon(_ping, websocket)
            checks.append((now + self._timeout, watched))

    def _check_pongs(self, now: float) -> None:
        checks = self._checks
        while checks and checks[0][0] <= now:
            _, watched = checks.popleft()
            if watched.ended or watched.websocket.is_closed:
                continue
            if watched.websocket.pongs == watched.pongs_at_ping:
                watched.ended = True
                self.stale_connections += 1
                watched.stale()


async def _ping(websocket: Pingable) -> None:
    with contextlib.suppress(ChannelClosed):
        await websocket.send_ping()
