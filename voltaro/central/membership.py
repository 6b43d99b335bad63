"""This instance's place in the installation: its lease, and the expiry of dead instances.

Several instances (nodes, worker processes) share one database. Each registers at start
(:meth:`Membership.join`), renews its lease every housekeeping round and retires at
shutdown. An instance that stops without a word (kill -9, a power cut, cut off from the
database for longer than its lease) is expired by whichever live instance notices first:
its chargers are recorded offline, unless they reconnected elsewhere meanwhile (then they
are recorded at their new instance already). See :mod:`voltaro.store.instances`.
"""

from __future__ import annotations

import logging
import os
import socket

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

    async def join(self) -> None:
        await self._instances.register(
            self.instance_id, socket.gethostname(), os.getpid(), self.lease
        )

    async def renew(self) -> None:
        self.alive = await self._instances.renew(self.instance_id, self.lease)

    async def expire_dead(self) -> None:
        for expired in await self._instances.expire_dead(EXPIRED):
            log.warning(
                "instance %s stopped renewing its lease: %d of its chargers recorded offline",
                expired.instance_id,
                len(expired.charge_point_ids),
            )
            for charge_point_id in expired.charge_point_ids:
                self._events.publish(WentOffline(charge_point_id=charge_point_id, reason=EXPIRED))

    async def leave(self) -> None:
        await self._instances.retire(self.instance_id)
