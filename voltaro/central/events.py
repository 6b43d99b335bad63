"""The in-process event bus: what happened to chargers, for live views (the dashboard).

Publishers (the central system, the session registry) call :meth:`EventBus.publish`, which
never blocks and never fails: an event is a frozen dataclass of
:mod:`voltaro.central.domain_events`, published after its data is committed, so a listener
that reads the store on an event sees the change. Each subscriber
gets a bounded channel; a subscriber that falls behind by more than its buffer is dropped
(its channel ends, so it reconnects and reloads) instead of slowing chargers down.
The last events are kept for views that open later (:attr:`EventBus.recent`).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

from voltaro.central.domain_events import DomainEvent
from voltaro.central.timestamps import utc_now

# Fields of the frozen events the bus fills in (see EventBus.publish).
_set = object.__setattr__

SUBSCRIBER_BUFFER = 256  # events a slow subscriber may lag behind before it loses some
RECENT = 50  # events kept for late subscribers


class EventBus:
    def __init__(self, recent: int = RECENT) -> None:
        self._subscribers: dict[int, trio.MemorySendChannel[DomainEvent]] = {}
        self._ids = itertools.count(1)
        self.recent: deque[DomainEvent] = deque(maxlen=recent)
        self._listeners: list[Callable[[DomainEvent], None]] = []

    def add_listener(self, listener: Callable[[DomainEvent], None]) -> None:
        """Call ``listener(event)`` for every event published, synchronously: it must not
        block (unlike a subscriber, it is never dropped: the relay to other instances)."""
        self._listeners.append(listener)

    @contextmanager
    def listening(self, listener: Callable[[DomainEvent], None]) -> Iterator[None]:
        """:meth:`add_listener` for the block. Cheaper than a subscription for a reader that
        wants few of the events (a profile's task): it picks them here, synchronously, and
        no task wakes up for the others (MeterValues, many per second)."""
        self._listeners.append(listener)
        try:
            yield
        finally:
            self._listeners.remove(listener)

    def publish(self, event: DomainEvent) -> DomainEvent:
        """Publish ``event``, made for this call; returns it numbered (``id``) and stamped
        with the time it happened (``at``: now, unless the event says already).

        The event is numbered and stamped in place (the bus owns it from here): a copy per
        event (``dataclasses.replace``) cost ~1.6 µs more on every MeterValues and connection."""
        if event.id:
            raise ValueError(f"event {event.id} is published already; publish a new one")
        _set(event, "id", next(self._ids))
        if event.at is None:
            _set(event, "at", utc_now())
        for listener in self._listeners:
            listener(event)
        self.recent.append(event)
        for key, channel in list(self._subscribers.items()):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:  # too slow: drop it; its stream ends and it reconnects
                self._subscribers.pop(key, None)
                channel.close()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.pop(key, None)
        return event

    @contextmanager
    def subscribe(
        self, buffer: int = SUBSCRIBER_BUFFER
    ) -> Iterator[trio.MemoryReceiveChannel[DomainEvent]]:
        """A channel of the events published while the block runs. It ends (the ``async
        for`` stops) when the subscriber fell too far behind."""
        send, receive = trio.open_memory_channel[DomainEvent](buffer)
        key = next(self._ids)
        self._subscribers[key] = send
        try:
            yield receive
        finally:
            self._subscribers.pop(key, None)
            send.close()
            receive.close()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
