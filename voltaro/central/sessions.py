"""The session registry: the one record of which chargers are connected to this instance.

The transport hands every admitted connection to :meth:`SessionRegistry.serve`, which

1. builds the charger's RPC endpoint (its handlers, given by the central system) and the
   endpoint's hooks: every frame goes to the message log, marks the charger seen (presence
   and last-seen are derived here, once per inbound frame, never in a handler), and a
   CALLERROR either way is published as an event;
2. registers the session, replacing a live one of the same charge point: the newest
   connection wins and the old one is closed with 1008 (usually a dead TCP connection the
   charger gave up on);
3. records the charger online (unless it already was, through the session it replaced),
   serves the endpoint until the connection ends, then records it offline (unless a newer
   session has taken its place).

The online record is presence, not data the charger was promised: it is queued in the
writer before the session reads its first frame and committed while the session serves
(:meth:`voltaro.central.presence.Presence.online_soon`: no task, no waiting), instead of
the session waiting for the commit first (a connect storm's connections then share
batches with their own BootNotifications). Submitted writes commit in submission order, so
whatever the session's CALLs commit is committed with or after its online record, and so is
its offline record, submitted when the session ends. Until the online record is committed
the charger is not a candidate for presence's restore round (see
:meth:`voltaro.central.presence.Presence.restore`).

Each session is stamped with this instance's id and its start, so that what is recorded as
"online" says where; see :mod:`voltaro.central.presence`.

Error handling: the registry only changes its map in synchronous code, so a session's end
(however it comes: the charger leaves, a cancel at shutdown, an error in the endpoint) always
deregisters exactly its own entry; the offline record runs shielded so a cancel at shutdown
still writes it (bounded by the store's deadline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import trio

from voltaro.central.domain_events import CallErrorPassed, Connected, Disconnected
from voltaro.central.events import EventBus
from voltaro.central.presence import Presence
from voltaro.central.profile import Handler
from voltaro.central.redaction import redacted
from voltaro.central.timestamps import utc_now
from voltaro.ocppj.endpoint import FrameDirection, MessageChannel, RpcEndpoint, RpcHooks
from voltaro.ocppj.frames import Call, CallError, CallResult, Frame, encode
from voltaro.ocppj.validation import Deviation, SchemaRegistry

log = logging.getLogger(__name__)
frame_log = logging.getLogger("voltaro.ocppj.frames")  # every frame, at DEBUG
_ARROWS = {"in": "<-", "out": "->"}

CLOSE_POLICY_VIOLATION = 1008  # RFC 6455: the code a replaced or removed connection gets
CLOSE_GOING_AWAY = 1001


class Connection(Protocol):
    """What the registry needs of an admitted connection (the transport's)."""

    @property
    def charge_point_id(self) -> str: ...

    @property
    def websocket(self) -> MessageChannel: ...

    @property
    def lenient(self) -> bool: ...

    @property
    def remote(self) -> str: ...

    async def close(self, code: int, reason: str) -> None:
        """Close the connection (time-bounded by the transport)."""
        ...

    @property
    def how_it_ended(self) -> str:
        """Once it ended: its close code and reason, or that it was lost."""
        ...


@dataclass(eq=False, slots=True)
class Session:
    """One charger's live connection on this instance."""

    charge_point_id: str
    endpoint: RpcEndpoint
    connection: Connection
    instance_id: str
    since: datetime = field(default_factory=utc_now)
    heard: float = field(default_factory=time.monotonic)
    """When the last frame or pong arrived (monotonic seconds)."""
    overdue: bool = False
    """Declared offline for silence while connected (until it speaks again)."""


class FrameSink(Protocol):
    """Where the frames of every session are written down (the message log)."""

    def __call__(
        self,
        charge_point_id: str,
        direction: str,
        message_id: str | None,
        action: str | None,
        payload: object,
        error_code: str | None = None,
        *,
        size: int | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class SessionParts:
    """What the registry builds sessions from (given by the central system)."""

    schemas: SchemaRegistry
    handlers: Callable[[str], Mapping[str, Handler]]
    presence: Presence
    events: EventBus
    log_frame: FrameSink
    count_deviation: Callable[[str, Deviation], None]
    call_timeout: float
    observer: RpcHooks = field(default_factory=RpcHooks)
    """Further hooks every endpoint reports to (the metrics)."""


class SessionRegistry:
    """Live sessions by charge point id (see the module doc)."""

    def __init__(self, parts: SessionParts) -> None:
        self.instance_id = parts.presence.instance_id
        self._parts = parts
        self._sessions: dict[str, Session] = {}

    def get(self, charge_point_id: str) -> Session | None:
        return self._sessions.get(charge_point_id)

    def __contains__(self, charge_point_id: object) -> bool:
        return charge_point_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    async def serve(self, connection: Connection) -> None:
        """Serve one admitted connection until it ends (the transport's session callback)."""
        parts = self._parts
        charge_point_id = connection.charge_point_id
        endpoint = RpcEndpoint(
            connection.websocket,
            parts.schemas,
            parts.handlers(charge_point_id),
            name=charge_point_id,
            call_timeout=parts.call_timeout,
            lenient=connection.lenient,
            hooks=self._hooks(charge_point_id),
            dialect=parts.schemas.dialect,
        )
        session = Session(charge_point_id, endpoint, connection, self.instance_id)
        previous = self._sessions.get(charge_point_id)
        self._sessions[charge_point_id] = session
        try:
            if previous is None:  # queued before the first frame, committed meanwhile
                parts.presence.online_soon(charge_point_id)
            else:
                log.info(
                    "%s: a new connection from %s replaces the one from %s",
                    charge_point_id,
                    connection.remote,
                    previous.connection.remote,
                )
                await previous.connection.close(
                    CLOSE_POLICY_VIOLATION, "replaced by a newer connection"
                )
            parts.events.publish(Connected(charge_point_id=charge_point_id))
            await endpoint.serve()
        finally:
            await self._ended(session)

    async def _ended(self, session: Session) -> None:
        charge_point_id = session.charge_point_id
        if self._sessions.get(charge_point_id) is not session:
            return  # replaced: the charger stays online through its newer session
        del self._sessions[charge_point_id]
        how = session.connection.how_it_ended
        with trio.CancelScope(shield=True):
            await self._parts.presence.offline(charge_point_id, how)
        self._parts.events.publish(Disconnected(charge_point_id=charge_point_id, reason=how))

    def seen(self, charge_point_id: str) -> None:
        """A frame or a WebSocket pong arrived from the charger; cheap."""
        session = self._sessions.get(charge_point_id)
        if session is not None:
            self._heard(session)

    def _heard(self, session: Session) -> None:
        session.heard = time.monotonic()
        self._parts.presence.seen(session.charge_point_id)
        if session.overdue:
            session.overdue = False
            self._parts.presence.spoke_again(session.charge_point_id)

    async def check_overdue(self, overdue_after: float) -> list[str]:
        """Record offline every connected charger silent for longer than ``overdue_after``
        seconds (its connection stays: a charger may be quiet and still there); returns
        their ids."""
        now = time.monotonic()
        silent = [
            session
            for session in self._sessions.values()
            if not session.overdue and now - session.heard > overdue_after
        ]
        for session in silent:
            await self._parts.presence.overdue(session.charge_point_id)
            session.overdue = True
        return [session.charge_point_id for session in silent]

    async def close(self, charge_point_id: str, code: int, reason: str) -> bool:
        """Close the charge point's live connection; False when it has none here."""
        session = self._sessions.get(charge_point_id)
        if session is None:
            return False
        await session.connection.close(code, reason)
        return True

    async def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "") -> None:
        """Close every live connection, concurrently (shutdown)."""
        async with trio.open_nursery() as nursery:
            for session in list(self._sessions.values()):
                nursery.start_soon(session.connection.close, code, reason)

    def _hooks(self, charge_point_id: str) -> RpcHooks:
        observer = self._parts.observer
        hooks = _SessionHooks(charge_point_id, self, self._parts)
        return RpcHooks(
            on_frame=hooks.on_frame,
            on_deviation=hooks.on_deviation,
            on_handled=observer.on_handled,
            on_call=observer.on_call,
        )


class _SessionHooks:
    """What one session's endpoint reports to (:meth:`SessionRegistry._hooks`): a slotted
    object with two bound methods is half of what two closures over the same names cost
    every connection (~0.25 KiB less)."""

    __slots__ = (
        "_charge_point_id",
        "_count_deviation",
        "_events",
        "_log_frame",
        "_observed",
        "_registry",
    )

    def __init__(
        self, charge_point_id: str, registry: SessionRegistry, parts: SessionParts
    ) -> None:
        self._charge_point_id = charge_point_id
        self._registry = registry
        self._log_frame = parts.log_frame
        self._events = parts.events
        self._observed = parts.observer.on_frame
        self._count_deviation = parts.count_deviation

    def on_frame(
        self, direction: FrameDirection, frame: Frame, action: str | None, size: int
    ) -> None:
        charge_point_id = self._charge_point_id
        if direction == "in":
            self._registry.seen(charge_point_id)
        if frame_log.isEnabledFor(logging.DEBUG):
            shown = _shown(frame, action)
            frame_log.debug("%s %s %s", charge_point_id, _ARROWS[direction], shown)
        if self._observed is not None:
            self._observed(direction, frame, action, size)
        if isinstance(frame, CallError):
            payload = {"errorDescription": frame.description, "errorDetails": frame.details}
            self._log_frame(
                charge_point_id,
                direction,
                frame.message_id,
                action,
                payload,
                frame.error_code,
                size=size,
            )
            self._events.publish(
                CallErrorPassed(
                    charge_point_id=charge_point_id,
                    direction=direction,
                    action=action,
                    code=str(frame.error_code),
                    description=frame.description,
                )
            )
        elif isinstance(frame, Call | CallResult):
            self._log_frame(
                charge_point_id, direction, frame.message_id, action, frame.payload, size=size
            )

    def on_deviation(self, action: str, deviation: Deviation) -> None:
        self._count_deviation(self._charge_point_id, deviation)


def _shown(frame: Frame, action: str | None) -> str:
    """A frame as logged at DEBUG: its wire form, secret configuration values of its
    ``action`` (an answer's is the call's) redacted."""
    if isinstance(frame, Call):
        frame = Call(frame.message_id, frame.action, redacted(action, frame.payload))
    elif isinstance(frame, CallResult):
        frame = CallResult(frame.message_id, redacted(action, frame.payload))
    return encode(frame)
