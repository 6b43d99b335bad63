"""What happened to chargers, as the domain tells it: one frozen dataclass per kind of event.

The central system publishes these on its event bus (:mod:`voltaro.central.events`) after the
data they describe is committed, so a listener that reads the store on an event sees the
change. Listeners match on the class (``isinstance(event, TransactionStarted)``), never on
a string. :func:`event_json` is the one wire form of an event (the dashboard's live stream):
``{"id", "type", "chargePointId", "at", ...fields in camelCase}``.

Every event names the charge point it concerns (``charge_point_id``) and when it was
published (``at``, filled in by the bus); ``id`` is the bus's running number.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from voltaro.central.timestamps import format_timestamp, read_timestamp


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """Base of every event. ``kind`` is the event's name on the wire."""

    kind: ClassVar[str] = "event"
    charge_point_id: str
    at: datetime | None = field(default=None, compare=False)
    id: int = field(default=0, compare=False)
    origin: str | None = field(default=None, compare=False)
    """The instance it happened at when that is another one (relayed); None: here."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(DomainEvent):
    """A charger's WebSocket connection was admitted and its session began."""

    kind: ClassVar[str] = "connected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected(DomainEvent):
    """A charger's session ended; ``reason`` says how (the transport's words)."""

    kind: ClassVar[str] = "disconnected"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WentOffline(DomainEvent):
    """A connected charger was declared offline: nothing heard from it for too long."""

    kind: ClassVar[str] = "offline"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BackOnline(DomainEvent):
    """A connected charger recorded offline (silent too long, its instance's lease lapsed,
    an operator's SQL) is recorded online again; ``reason`` is the presence record's."""

    kind: ClassVar[str] = "online"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Booted(DomainEvent):
    """A BootNotification was stored and answered with the registration ``status``."""

    kind: ClassVar[str] = "boot"
    status: str
    vendor: str
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChanged(DomainEvent):
    """A connector's StatusNotification was stored (``previous_status`` None: first seen)."""

    kind: ClassVar[str] = "status"
    connector_id: int
    status: str
    previous_status: str | None
    error_code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionStarted(DomainEvent):
    """A new transaction was recorded (a retried StartTransaction publishes nothing);
    ``reservation_id``: the reservation its StartTransaction named, if any."""

    kind: ClassVar[str] = "transactionStarted"
    transaction_id: int
    connector_id: int
    id_tag: str
    reservation_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionStopped(DomainEvent):
    """An open transaction was closed by its StopTransaction."""

    kind: ClassVar[str] = "transactionStopped"
    transaction_id: int
    meter_stop: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterValuesReceived(DomainEvent):
    """Meter values of a transaction were stored (a retry publishes nothing)."""

    kind: ClassVar[str] = "meterValues"
    transaction_id: int
    connector_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CallErrorPassed(DomainEvent):
    """A CALLERROR went ``direction`` "in" (from the charger) or "out" (to it)."""

    kind: ClassVar[str] = "error"
    direction: str
    action: str | None
    code: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandAnswered(DomainEvent):
    """An operator command ended: ``outcome`` is ``result`` (its effects applied), ``error``
    (a CALLERROR), ``invalid`` (a broken answer), ``timeout``, ``closed`` or ``not
    connected``; ``status`` is the answer's ``status`` field when it has one."""

    kind: ClassVar[str] = "commandAnswered"
    action: str
    outcome: str
    status: str | None = None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_SKIPPED = frozenset({"charge_point_id", "at", "id", "origin"})


def event_json(event: DomainEvent) -> dict[str, Any]:
    """The event as JSON: ``{"id", "type", "chargePointId", "at", ...}`` in camelCase."""
    out: dict[str, Any] = {
        "id": event.id,
        "type": event.kind,
        "chargePointId": event.charge_point_id,
        "at": None if event.at is None else format_timestamp(event.at),
    }
    for item in fields(event):
        if item.name not in _SKIPPED:
            out[_camel(item.name)] = getattr(event, item.name)
    return out


_KINDS: dict[str, type[DomainEvent]] = {
    cls.kind: cls
    for cls in (
        Connected,
        Disconnected,
        WentOffline,
        BackOnline,
        Booted,
        StatusChanged,
        TransactionStarted,
        TransactionStopped,
        MeterValuesReceived,
        CallErrorPassed,
        CommandAnswered,
    )
}


def event_from_json(data: dict[str, Any], origin: str) -> DomainEvent | None:
    """The event :func:`event_json` wrote at instance ``origin``; None for a kind or field
    this version does not know (a newer instance's)."""
    cls = _KINDS.get(str(data.get("type")))
    if cls is None:
        return None
    values: dict[str, Any] = {}
    for item in fields(cls):
        if item.name in _SKIPPED:
            continue
        key = _camel(item.name)
        if key in data:
            values[item.name] = data[key]
    at = data.get("at")
    try:
        return cls(
            charge_point_id=str(data["chargePointId"]),
            at=None if at is None else read_timestamp(str(at)),
            origin=origin,
            **values,
        )
    except (KeyError, TypeError, ValueError):
        return None
