"""Reservations held by a simulated charger (OCPP 1.6 sections 5.1, 5.13).

A reservation holds one connector for one id tag until its ``expiryDate``; on connector 0
("any connector", when ``ReserveConnectorZeroSupported``) it holds no connector in
particular, but the charger keeps one connector free for the tag while it lasts: when no
more connectors are free than such reservations, those free ones admit only their tags and
show Reserved (:func:`kept_for_anyone`). Here are the
rules, as functions of the reservations and the connectors' state: which answer a
``ReserveNow`` gets (:func:`reserve_now_status`) and who may start where (:func:`admission`).
Keeping time, statuses and messages is the charger's (:mod:`voltaro.sim.charger`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import trio

from voltaro.ocppj.frames import Payload


@dataclass
class Reservation:
    reservation_id: int
    connector_id: int
    """0: any connector of the charger."""
    id_tag: str
    parent_id_tag: str | None
    expiry: datetime
    timer: trio.CancelScope | None = None
    """The wait for its expiry; cancelled when the reservation ends otherwise."""

    @classmethod
    def from_request(cls, request: Payload) -> Reservation:
        expiry = datetime.fromisoformat(request["expiryDate"])
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        return cls(
            request["reservationId"],
            request["connectorId"],
            request["idTag"],
            request.get("parentIdTag"),
            expiry,
        )

    def admits(self, id_tag: str, parent_id_tag: str | None) -> bool:
        """Whether ``id_tag`` (whose parent is ``parent_id_tag``, when known) may charge on
        what this reservation holds: the reserved tag itself, or a tag of the same parent when
        the reservation names one."""
        if id_tag == self.id_tag:
            return True
        return self.parent_id_tag is not None and parent_id_tag == self.parent_id_tag

    def seconds_left(self) -> float:
        return (self.expiry - datetime.now(UTC)).total_seconds()


class ConnectorState(Protocol):
    """What the rules read of a connector (:class:`voltaro.sim.charger.Connector`)."""

    @property
    def connector_id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def operative(self) -> bool: ...
    @property
    def busy(self) -> bool: ...
    @property
    def fault(self) -> str | None: ...
    @property
    def session(self) -> object | None: ...


Reservations = Mapping[int, Reservation]
"""Reservation id -> reservation."""


def held(reservations: Reservations, connector_id: int) -> Reservation | None:
    """The reservation holding this very connector (a connector-0 one holds none)."""
    for reservation in reservations.values():
        if reservation.connector_id == connector_id != 0:
            return reservation
    return None


def anywhere(reservations: Reservations) -> list[Reservation]:
    """The connector-0 reservations."""
    return [r for r in reservations.values() if r.connector_id == 0]


def is_free(reservations: Reservations, connector: ConnectorState) -> bool:
    """Free for anyone: idle, operative, sound, and not reserved itself."""
    return (
        not connector.busy
        and connector.session is None
        and connector.operative
        and connector.fault is None
        and held(reservations, connector.connector_id) is None
    )


def kept_for_anyone(
    reservations: Reservations, connectors: Mapping[int, ConnectorState], connector: ConnectorState
) -> bool:
    """Whether ``connector`` (sound and reserved by no reservation of its own) is, once idle,
    one of the free connectors the connector-0 reservations need between them: no more
    connectors would be free than there are such reservations, so it admits only their tags
    (:func:`admission`) and the charger shows it Reserved, as the OCA test case TC_049
    expects. Its own session, if it has one, is not counted: the question is how it shows
    when idle."""
    zero = anywhere(reservations)
    if not zero or connector.fault is not None or not connector.operative:
        return False
    if held(reservations, connector.connector_id) is not None:
        return False
    others = [c for c in connectors.values() if c is not connector and is_free(reservations, c)]
    return len(others) + 1 <= len(zero)


def needs_parent(reservations: Reservations, id_tag: str) -> bool:
    """Whether some reservation could admit ``id_tag`` only by its parent id tag."""
    return any(r.parent_id_tag is not None and r.id_tag != id_tag for r in reservations.values())


def reserve_now_status(
    reservations: Reservations,
    connectors: Mapping[int, ConnectorState],
    connector_id: int,
    replaced: Reservation | None = None,
) -> str:
    """ReserveNow's answer for ``connector_id`` (an existing connector, or 0) from the
    connectors' state; ``replaced``: the reservation of the same id, whose place the new one
    may take. Section 5.13: Faulted, Unavailable, Occupied (also when reserved already, or
    when it is one of the connectors kept free for connector-0 reservations), else Accepted;
    for connector 0, Accepted while more connectors are free than connector-0 reservations
    hold."""

    def taken(connector: ConnectorState) -> bool:
        holder = held(reservations, connector.connector_id)
        return (
            connector.busy
            or connector.session is not None
            or connector.status not in ("Available", "Reserved")
            or (holder is not None and holder is not replaced)
        )

    sound = [c for c in connectors.values() if c.fault is None and c.operative]
    free = [c for c in sound if not taken(c)]
    others = [r for r in anywhere(reservations) if r is not replaced]
    if connector_id != 0:
        connector = connectors[connector_id]
        if connector.fault is not None:
            return "Faulted"
        if not connector.operative:
            return "Unavailable"
        if taken(connector) or len(free) - 1 < len(others):
            return "Occupied"  # nor may it take a connector kept free for "any connector"
        return "Accepted"
    if len(free) > len(others):
        return "Accepted"
    if sound:
        return "Occupied"
    faulted = any(c.fault is not None for c in connectors.values())
    return "Faulted" if faulted else "Unavailable"


def admission(
    reservations: Reservations,
    connectors: Mapping[int, ConnectorState],
    connector: ConnectorState,
    id_tag: str,
    parent_id_tag: str | None,
) -> tuple[bool, Reservation | None]:
    """Whether the reservations let ``id_tag`` (of parent ``parent_id_tag``, when known) start
    on ``connector``, and the reservation it uses if any: a reserved connector admits its
    reservation's tags only; elsewhere a tag of a connector-0 reservation uses it, and any
    other tag may take a connector only while one stays free per connector-0 reservation."""
    holder = held(reservations, connector.connector_id)
    if holder is not None:
        return (True, holder) if holder.admits(id_tag, parent_id_tag) else (False, None)
    zero = anywhere(reservations)
    for reservation in zero:
        if reservation.admits(id_tag, parent_id_tag):
            return True, reservation
    free = [c for c in connectors.values() if c is not connector and is_free(reservations, c)]
    return len(free) >= len(zero), None
