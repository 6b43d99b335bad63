"""This instance's place in the installation: its lease, and the expiry of dead instances.

Several instances (nodes, worker processes) share one database. Each registers at start
(:meth:`Membership.join`), renews its lease every few seconds and retires at shutdown. An
instance that stops without a word (kill -9, a power cut, cut off from the database for
longer than its lease) is expired by whichever live instance notices first: its chargers are
recorded offline, unless they reconnected elsewhere meanwhile (then they are recorded at
their new instance already). See :mod:`voltaro.store.instances`.

A lapse must mean that the instance (or its link to the database) is stuck, not that it is
busy: so the renewal runs on a connection of its own (:meth:`Membership.own_connection`),
never waiting for the pool, which a connection storm's reads can hold for whole deadlines
(before, a worker busy with a storm was expired and thousands of its chargers were shown
offline while connected to it).

An instance that finds at a renewal that it was expired anyway (frozen, or starved of CPU,
for longer than its lease) registers again and must record its chargers online again at
once (:meth:`Membership.after_expiry`): the others recorded them offline, and they would
stay so while connected to it until each spoke again.

After an outage of the database itself every lease may have run out, this instance's
included: nobody could renew. So an instance expires others only once it has renewed its own
lease for a whole lease period in a row (no renewal failed, none came more than a lease after
the one before, and it was not found expired); by then every live instance has renewed too,
and what is still expired is dead.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from voltaro.central.domain_events import WentOffline
from voltaro.central.events import EventBus
from voltaro.store.database import DedicatedConnection
from voltaro.store.instances import InstanceRepository

log = logging.getLogger(__name__)

EXPIRED = "instance lease expired"


class Membership:
    def __init__(
        self, instances: InstanceRepository, instance_id: str, lease: float, events: EventBus
    ) -> None:
        self._instances = instances
        self.instance_id = instance_id
        self.lease = lease
        self._events = events
        self.alive = 1
        """Instances alive at the last renewal, this one included."""
        self.rejoins = 0
        """Renewals that found this instance expired (it registered again)."""
        self._renewing_since: float | None = None  # trio time of the first renewal in a row
        self._renewed_at: float | None = None  # trio time of the last renewal
        self._found_expired = False  # its chargers are not recorded online again yet
        self._link: DedicatedConnection | None = None

    async def join(self) -> None:
        await self._instances.register(
            self.instance_id, socket.gethostname(), os.getpid(), self.lease
        )

    @asynccontextmanager
    async def own_connection(self) -> AsyncIterator[None]:
        """For the block, renewals run on a connection of their own (see the module doc);
        outside it, on the pool."""
        async with self._instances.dedicated() as link:
            self._link = link
            try:
                yield
            finally:
                self._link = None

    async def renew(self) -> None:
        """Extend this instance's lease; raises StoreError when the database is away (the
        renewals in a row start over)."""
        try:
            renewal = await self._instances.renew(
                self.instance_id, self.lease, self._link, host=socket.gethostname(), pid=os.getpid()
            )
        except BaseException:
            self._renewing_since = None
            raise
        now = trio.current_time()
        self.alive = renewal.alive
        late = self._renewed_at is not None and now - self._renewed_at > self.lease
        if renewal.rejoined:
            self.rejoins += 1
            self._found_expired = True
            log.warning(
                "this instance's lease had run out (stuck or starved for longer than %g s):"
                " another instance recorded its chargers offline; recording them online again",
                self.lease,
            )
        if self._renewing_since is None or late or renewal.rejoined:
            self._renewing_since = now
        self._renewed_at = now

    async def after_expiry(self, reclaim: Callable[[], Awaitable[object]]) -> None:
        """If a renewal found this instance expired, ``reclaim`` (record its live chargers
        online again); if that fails, again at the next call."""
        if not self._found_expired:
            return
        self._found_expired = False
        try:
            await reclaim()
        except BaseException:
            self._found_expired = True
            raise

    async def expire_dead(self) -> None:
        """Expire the instances whose lease ran out (once this one has renewed its own
        for a whole lease in a row: see the module doc)."""
        since, now = self._renewing_since, trio.current_time()
        if since is None or now - since < self.lease:
            return
        if self._renewed_at is None or now - self._renewed_at > self.lease:
            return  # its own renewals have stalled: the database may be the one in trouble
        for expired in await self._instances.expire_dead(self.instance_id, EXPIRED):
            log.warning(
                "instance %s stopped renewing its lease: %d of its chargers recorded offline",
                expired.instance_id,
                len(expired.charge_point_ids),
            )
            for charge_point_id in expired.charge_point_ids:
                self._events.publish(WentOffline(charge_point_id=charge_point_id, reason=EXPIRED))

    async def leave(self) -> None:
        await self._instances.retire(self.instance_id)
