"""Presence: who is online, since when, last seen when, and why they went offline.

Events (``presence_events``): online with reason ``connected`` (or ``message received``
after being declared overdue); offline with the transport's reason (``disconnected: ...``)
or ``heartbeat overdue`` when nothing was heard for more than twice the heartbeat interval
plus the grace period.

Connections are counted per charge point: when a charger reconnects, the transport may
report the new connection before the old one's end, and the charger must stay online.

Last-seen is kept in memory on every message and written every few seconds in one
statement for all chargers (never a commit per heartbeat).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from voltaro.central.timestamps import utc_now
from voltaro.store import StoreError
from voltaro.store.charge_points import ChargePointRepository

log = logging.getLogger(__name__)


class PresenceTracker:
    def __init__(
        self,
        charge_points: ChargePointRepository,
        overdue_after: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._charge_points = charge_points
        self.overdue_after = overdue_after
        self._monotonic = monotonic
        self._clock = clock
        self._connections: dict[str, int] = {}
        self._heard: dict[str, float] = {}  # monotonic time of the last message
        self._overdue: set[str] = set()  # connected, but declared offline for silence
        self._unflushed: dict[str, datetime] = {}

    def is_online(self, charge_point_id: str) -> bool:
        return (
            self._connections.get(charge_point_id, 0) > 0 and charge_point_id not in self._overdue
        )

    async def connected(self, charge_point_id: str) -> None:
        count = self._connections.get(charge_point_id, 0) + 1
        self._connections[charge_point_id] = count
        self._note(charge_point_id)
        if count == 1:
            self._overdue.discard(charge_point_id)
            await self._record(charge_point_id, True, "connected")

    async def disconnected(self, charge_point_id: str, reason: str) -> None:
        count = self._connections.get(charge_point_id, 0) - 1
        if count > 0:
            self._connections[charge_point_id] = count
            return
        self._connections.pop(charge_point_id, None)
        self._heard.pop(charge_point_id, None)
        was_overdue = charge_point_id in self._overdue
        self._overdue.discard(charge_point_id)
        if not was_overdue:  # already recorded offline when it fell silent
            await self._record(
                charge_point_id, False, f"disconnected: {reason}" if reason else "disconnected"
            )

    async def _record(self, charge_point_id: str, online: bool, reason: str) -> None:
        """Commit a presence event; during an outage, queue it instead of failing the
        transport's connect or disconnect (the writer retries it when the database is back)."""
        at = self._clock()
        try:
            await self._charge_points.presence(charge_point_id, online, reason, at)
        except StoreError as exc:
            # the outage is the store's to log, once; this is one of its many effects
            log.debug("charge point %s: presence event queued (%s)", charge_point_id, exc)
            self._charge_points.post_presence(charge_point_id, online, reason, at)

    def seen(self, charge_point_id: str) -> None:
        """A message arrived: cheap, synchronous, called for every frame."""
        self._note(charge_point_id)
        if charge_point_id in self._overdue:
            self._overdue.discard(charge_point_id)
            self._charge_points.post_presence(
                charge_point_id, True, "message received", self._clock()
            )

    def _note(self, charge_point_id: str) -> None:
        self._heard[charge_point_id] = self._monotonic()
        self._unflushed[charge_point_id] = self._clock()

    def flush(self) -> None:
        """Hand the last-seen times gathered since the last flush to the writer."""
        seen, self._unflushed = self._unflushed, {}
        self._charge_points.post_last_seen(seen)

    async def check_overdue(self) -> list[str]:
        """Declare offline every connected charger silent for longer than ``overdue_after``;
        returns their ids."""
        now = self._monotonic()
        silent = [
            cp
            for cp, count in self._connections.items()
            if count > 0
            and cp not in self._overdue
            and now - self._heard.get(cp, now) > self.overdue_after
        ]
        for cp in silent:
            await self._charge_points.presence(cp, False, "heartbeat overdue", self._clock())
            self._overdue.add(cp)
            log.info("charge point %s: heartbeat overdue, marked offline", cp)
        return silent
