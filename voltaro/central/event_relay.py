"""Domain events across instances: what happens at one instance shows on every dashboard.

A browser's live stream comes from the instance it talks to, the charger may be on another.
Each instance collects the events published on its bus and, while other instances are alive
(:class:`~voltaro.central.membership.Membership`), sends them every :data:`FLUSH_PERIOD`
seconds on ``voltaro_events`` (NOTIFY, a JSON list per notification, split to fit
PostgreSQL's 8,000-byte payload limit); every other instance with a dashboard publishes them
on its own bus, marked with their ``origin``, and never relays them again (the workers of
``voltaro serve --workers`` have none and do not listen). Alone, an instance sends nothing.

Live events are a view, not a record: a batch that cannot be sent (the database away, more
than :data:`MAX_PENDING` waiting) is dropped and counted, never retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
import trio

from voltaro.central.domain_events import DomainEvent, event_from_json, event_json
from voltaro.central.events import EventBus
from voltaro.store import StoreError
from voltaro.store.database import Connection, Database

log = logging.getLogger(__name__)

CHANNEL = "voltaro_events"
FLUSH_PERIOD = 0.2  # seconds between batches
MAX_PAYLOAD = 7_900  # bytes of one notification (PostgreSQL's limit is 8,000)
MAX_PENDING = 10_000  # events waiting for a batch; beyond, they are dropped


class EventRelay:
    def __init__(
        self,
        bus: EventBus,
        database: Database,
        instance_id: str,
        peers: Callable[[], int],
    ) -> None:
        """``peers()``: how many other instances are alive now."""
        self._bus = bus
        self._database = database
        self.instance_id = instance_id
        self._peers = peers
        self._pending: list[bytes] = []
        self.dropped = 0
        bus.add_listener(self._published)

    def _published(self, event: DomainEvent) -> None:
        if event.origin is not None or self._peers() < 1:
            return  # relayed already, or nobody to tell
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append(orjson.dumps(event_json(event)))

    def received(self, payload: str) -> None:
        """A ``voltaro_events`` notification: publish another instance's events here."""
        try:
            batch = orjson.loads(payload)
            origin, events = str(batch["from"]), batch["events"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.error("unreadable event notification %.200r; ignored", payload)
            return
        if origin == self.instance_id:
            return
        for data in events:
            event = event_from_json(data, origin) if isinstance(data, dict) else None
            if event is not None:
                self._bus.publish(event)

    async def run(self) -> None:
        while True:
            await trio.sleep(FLUSH_PERIOD)
            if self._pending:
                pending, self._pending = self._pending, []
                try:
                    await self._database.run(self._send, pending)
                except StoreError:
                    self.dropped += len(pending)

    async def _send(self, connection: Connection, events: list[bytes]) -> None:
        head = b'{"from":' + orjson.dumps(self.instance_id) + b',"events":['
        batch: list[bytes] = []
        size = len(head) + 2
        for event in events:
            if batch and size + len(event) + 1 > MAX_PAYLOAD:
                await _notify(connection, head, batch)
                batch, size = [], len(head) + 2
            if len(head) + len(event) + 2 > MAX_PAYLOAD:
                self.dropped += 1  # one event too large to send (a long description)
                continue
            batch.append(event)
            size += len(event) + 1
        if batch:
            await _notify(connection, head, batch)


async def _notify(connection: Connection, head: bytes, batch: list[bytes]) -> None:
    payload = (head + b",".join(batch) + b"]}").decode()
    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
