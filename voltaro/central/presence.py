"""Presence as recorded in the database: who is online, at which instance, since when, last
seen when, and why they went offline.

The session registry (:mod:`voltaro.central.sessions`) knows who is connected; this module
writes it down. Events (``presence_events``): online with reason ``connected`` (or ``message
received`` after being declared overdue, or after the database had it offline while its
session lived, or ``instance lease renewed``, see below); offline with ``disconnected: ...``
or ``heartbeat overdue`` (or ``instance lease expired``, written by another instance).

Every record names the instance (``instance_id``) holding the session. An offline record
applies only while the charger is recorded as that instance's, so one instance never marks
offline a charger that meanwhile connected to another; at start and at shutdown an instance
marks offline only its own chargers.

Last-seen is noted in memory on every inbound frame and written every few seconds in one
statement for all chargers (never a commit per heartbeat). At the same rhythm the chargers
heard since the last round are checked against the database (one statement): any recorded
offline while their session lives here are recorded online again, so whatever marked them
offline wrongly (another process starting on the same data, an operator's SQL) is undone by
their next message. One recorded online at another instance has moved there: the session
registry closes the one here.

Order: a charger's presence records are written in the order they were made. All of them go
through the writer's submitted queue (committed in submission order), none as a background
write (those are taken after submitted ones, so a background "online" could commit after a
later "offline" and show a charger online that had left). A record that fails for an
outage is queued again, unless a later record of the same charger has been made meanwhile:
that one is the truth (an online record failing after its session's offline record had been
queued would otherwise be committed after it).

An instance expired while it ran (too busy or cut off for longer than its lease, see
:mod:`voltaro.central.membership`) had its chargers recorded offline by another instance:
:meth:`Presence.reclaim` records online again, at once, every charger it had recorded online
whose session still lives here.

Whenever a connected charger is recorded online again (any of the three ways above), once
the record is committed, ``on_back_online`` hears it (the central system publishes
:class:`~voltaro.central.domain_events.BackOnline`: the dashboard's "offline" turns back).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from voltaro.central.timestamps import utc_now
from voltaro.store import StoreError, StoreUnavailable
from voltaro.store.charge_points import ChargePointRepository

log = logging.getLogger(__name__)

RESTORED = "message received"
RECLAIMED = "instance lease renewed"


class Presence:
    """Presence records of one instance's sessions (see the module doc)."""

    def __init__(
        self,
        charge_points: ChargePointRepository,
        instance_id: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_back_online: Callable[[str, str], object] = lambda charge_point_id, reason: None,
    ) -> None:
        self._charge_points = charge_points
        self._on_back_online = on_back_online
        self.instance_id = instance_id
        self._clock = clock
        self._unflushed: dict[str, datetime] = {}
        self._heard: set[str] = set()  # spoke since the last restore round
        self._online: set[str] = set()  # recorded online by this instance, last it knows
        # Records not yet committed, by charger: how many, and the number of the latest made
        # (a failed one is queued again only if it is still the latest).
        self._pending: dict[str, tuple[int, int]] = {}
        self._made = 0  # records made so far: the next one's number

    async def online(self, charge_point_id: str) -> None:
        """A session began (no other session of this charger was live here): recorded
        online, returning once committed (or queued again, during an outage)."""
        self._unflushed[charge_point_id] = self._clock()
        self._online.add(charge_point_id)
        await self._record(charge_point_id, True, "connected")

    def online_soon(self, charge_point_id: str) -> None:
        """Like :meth:`online`, without waiting: the record is queued in the writer now
        (before anything the session submits after this call) and committed while the
        session serves. Until then the charger is left out of the restore round: the
        database has it offline only because the record is on its way, and a round in
        between would take it for wrongly offline."""
        at = self._unflushed[charge_point_id] = self._clock()
        self._online.add(charge_point_id)
        self._soon(charge_point_id, True, "connected", at)

    async def offline(self, charge_point_id: str, reason: str) -> None:
        """The charger's session ended (``reason``: how)."""
        self._heard.discard(charge_point_id)
        self._online.discard(charge_point_id)
        await self._record(charge_point_id, False, f"disconnected: {reason}")

    async def overdue(self, charge_point_id: str) -> None:
        """Nothing heard for too long although its session lives: recorded offline (raises
        StoreError when it could not be: the caller tries again later)."""
        at = self._clock()
        number = self._make(charge_point_id)
        self._online.discard(charge_point_id)
        try:
            await self._charge_points.presence(
                charge_point_id, False, "heartbeat overdue", at, self.instance_id
            )
        except BaseException:
            self._online.add(charge_point_id)
            raise
        finally:
            self._settle(charge_point_id, number)
        log.info("charge point %s: heartbeat overdue, marked offline", charge_point_id)

    def spoke_again(self, charge_point_id: str) -> None:
        """A charger declared overdue sent something: online again (not awaited)."""
        self._online.add(charge_point_id)
        self._soon(charge_point_id, True, RESTORED, self._clock(), back=True)

    def seen(self, charge_point_id: str) -> None:
        """A frame or a pong arrived: cheap, synchronous, called for every frame."""
        self._unflushed[charge_point_id] = self._clock()
        self._heard.add(charge_point_id)

    async def _record(self, charge_point_id: str, online: bool, reason: str) -> None:
        """Commit a presence event; during an outage, queue it again instead of failing the
        transport's connect or disconnect (the writer retries it when the database is back)."""
        at = self._clock()
        number = self._make(charge_point_id)
        failed: StoreError | None = None
        try:
            await self._charge_points.presence(
                charge_point_id, online, reason, at, self.instance_id
            )
        except StoreError as exc:
            failed = exc
        finally:
            latest = self._settle(charge_point_id, number)
        if failed is not None:
            self._failed(charge_point_id, online, reason, at, failed, latest)

    def _soon(
        self, charge_point_id: str, online: bool, reason: str, at: datetime, back: bool = False
    ) -> None:
        """Queue a presence event in the writer without waiting (see the module doc);
        ``back``: it records a connected charger online again."""
        number = self._make(charge_point_id)

        def done(error: BaseException | None) -> None:
            latest = self._settle(charge_point_id, number)
            if error is not None:
                self._failed(charge_point_id, online, reason, at, error, latest, back)
            elif back:
                self._on_back_online(charge_point_id, reason)

        try:
            self._charge_points.presence_soon(
                charge_point_id, online, reason, at, self.instance_id, done
            )
        except StoreError as error:  # the writer has stopped (shutdown): nothing to retry
            self._settle(charge_point_id, number)
            log.debug("charge point %s: presence event dropped (%s)", charge_point_id, error)

    def _failed(
        self,
        charge_point_id: str,
        online: bool,
        reason: str,
        at: datetime,
        error: BaseException,
        latest: bool,
        back: bool = False,
    ) -> None:
        """A record failed: queued again after an outage (unless a later one was made)."""
        if not isinstance(error, StoreUnavailable):  # rejected: it would be again
            log.error("charge point %s: presence record failed: %r", charge_point_id, error)
        elif latest:
            # the outage is the store's to log, once; this is one of its many effects
            log.debug("charge point %s: presence event queued again (%s)", charge_point_id, error)
            self._soon(charge_point_id, online, reason, at, back)
        else:
            log.debug("charge point %s: presence event superseded (%s)", charge_point_id, error)

    def _make(self, charge_point_id: str) -> int:
        """A record of the charger is being made: its number (see ``_pending``)."""
        self._made += 1
        count, _ = self._pending.get(charge_point_id, (0, 0))
        self._pending[charge_point_id] = (count + 1, self._made)
        return self._made

    def _settle(self, charge_point_id: str, number: int) -> bool:
        """The record ``number`` is committed or failed; returns whether it is still the
        charger's latest."""
        count, latest = self._pending.pop(charge_point_id, (1, number))
        if count > 1:
            self._pending[charge_point_id] = (count - 1, latest)
        return latest == number

    def flush(self) -> None:
        """Hand the last-seen times gathered since the last flush to the writer."""
        seen, self._unflushed = self._unflushed, {}
        self._charge_points.post_last_seen(seen)

    async def restore(self, live: Callable[[str], bool]) -> list[str]:
        """Record online here every charger heard since the last round whose session is
        ``live`` but whom the database has offline; returns their ids. One with a presence
        record not yet committed is left for a later round (its next frame is heard)."""
        heard, self._heard = self._heard, set()
        pending = self._pending
        ids = [cp for cp in heard if live(cp) and cp not in pending]
        restored = await self._restore(ids, live, RESTORED)
        for charge_point_id in restored:
            if live(charge_point_id):
                log.warning(
                    "charge point %s was recorded offline while connected here: online again",
                    charge_point_id,
                )
        return restored

    async def reclaim(self, live: Callable[[str], bool]) -> list[str]:
        """This instance was expired while it ran: record online again every charger it
        had recorded online whose session is ``live``, and whom the database has offline
        (not those that connected to another instance meanwhile); returns their ids."""
        return await self._restore([cp for cp in self._online if live(cp)], live, RECLAIMED)

    async def _restore(self, ids: list[str], live: Callable[[str], bool], reason: str) -> list[str]:
        restored = await self._charge_points.restore_online(
            ids, self.instance_id, reason, self._clock()
        )
        for charge_point_id in restored:
            if live(charge_point_id):
                self._online.add(charge_point_id)
                self._on_back_online(charge_point_id, reason)
            else:  # its session ended while the round ran: offline after all
                await self._record(charge_point_id, False, "disconnected")
        return restored

    async def forget_all(self, reason: str) -> list[str]:
        """Record offline every charger recorded online at this instance (start, shutdown)."""
        self._online.clear()
        return await self._charge_points.mark_instance_offline(
            self.instance_id, reason, self._clock()
        )
