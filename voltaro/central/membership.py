"""This instance's place in the installation: its lease, and the expiry of dead instances.

Several instances (nodes, worker processes) share one database. Each registers at start
(:meth:`Membership.join`), renews its lease every housekeeping round and retires at
shutdown. An instance that stops without a word (kill -9, a power cut, cut off from the
database for longer than its lease) is expired by whichever live instance notices first:
its chargers are recorded offline, unless they reconnected elsewhere meanwhile (then they
are recorded at their new instance already). See :mod:`voltaro.store.instances`.

After an outage of the database itself every lease may have run out, this instance's
included: nobody could renew. So an instance expires others only once it has renewed its own
lease without a failure for a whole lease period; by then every live instance has renewed
too, and what is still expired is dead.
"""

from __future__ import annotations

import logging
import os
import socket

import trio

from voltaro.central.domain_events import WentOffline
from voltaro.central.events import EventBus
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
        self._renewing_since: float | None = None  # trio time of the first renewal in a row

    async def join(self) -> None:
        await self._instances.register(
            self.instance_id, socket.gethostname(), os.getpid(), self.lease
        )

    async def renew(self) -> None:
        try:
            self.alive = await self._instances.renew(self.instance_id, self.lease)
        except BaseException:
            self._renewing_since = None
            raise
        if self._renewing_since is None:
            self._renewing_since = trio.current_time()

    async def expire_dead(self) -> None:
        """Expire the instances whose lease ran out (once this one has renewed its own
        for a whole lease in a row: see the module doc)."""
        since = self._renewing_since
        if since is None or trio.current_time() - since < self.lease:
            return
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
