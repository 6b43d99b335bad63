"""Closing live connections for what happened elsewhere: a charge point removed (by the CLI,
SQL by hand, another instance) and a charger whose newer connection went to another
instance. Both are heard on the store's LISTEN connection, in its callback, where nothing
may block: they are queued here and closed by :meth:`Evictions.run`'s tasks.

- removed: closed with 1008 unless it was added again meanwhile (the removal is the last
  word when the database cannot be asked);
- moved (``voltaro_sessions``: the charger is recorded online at another instance now):
  closed with 1008, the newest connection winning across instances as within one. The
  closing session records nothing: the charger is recorded at its new instance.
"""

from __future__ import annotations

import logging

import orjson
import trio

from voltaro.central.sessions import CLOSE_POLICY_VIOLATION, SessionRegistry
from voltaro.store import StoreUnavailable
from voltaro.store.charge_points import ChargePointRepository

log = logging.getLogger(__name__)

SESSIONS_CHANNEL = "voltaro_sessions"
QUEUED = 10_000  # evictions waiting for their connection to be closed
REMOVED = "charge point removed"
MOVED = "replaced by a newer connection on another instance"


class Evictions:
    def __init__(
        self, sessions: SessionRegistry, charge_points: ChargePointRepository, instance_id: str
    ) -> None:
        self._sessions = sessions
        self._charge_points = charge_points
        self._instance_id = instance_id
        self._send, self._receive = trio.open_memory_channel[tuple[str, str]](QUEUED)

    def removed(self, charge_point_id: str) -> None:
        """A charge point was removed anywhere."""
        self._queue(charge_point_id, REMOVED)

    def moved(self, payload: str) -> None:
        """A ``voltaro_sessions`` notification: ``{"id", "instance"}``."""
        try:
            change = orjson.loads(payload)
            charge_point_id, instance = str(change["id"]), str(change["instance"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.error("unreadable session notification %.200r; ignored", payload)
            return
        if instance != self._instance_id and charge_point_id in self._sessions:
            self._queue(charge_point_id, MOVED)

    def _queue(self, charge_point_id: str, why: str) -> None:
        if charge_point_id not in self._sessions:
            return
        try:
            self._send.send_nowait((charge_point_id, why))
        except trio.WouldBlock:
            log.warning("%s: %s; its connection here stays open", charge_point_id, why)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for charge_point_id, why in self._receive:
                nursery.start_soon(self._close, charge_point_id, why)

    async def _close(self, charge_point_id: str, why: str) -> None:
        if why == REMOVED:
            try:
                if await self._charge_points.get(charge_point_id) is not None:
                    return  # added again meanwhile: the charger may stay
            except StoreUnavailable:
                pass  # its removal is the last thing known about it
        if await self._sessions.close(charge_point_id, CLOSE_POLICY_VIOLATION, why):
            log.info("%s: connection closed: %s", charge_point_id, why)
