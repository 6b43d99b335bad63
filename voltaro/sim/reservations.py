"""Reservations held by a simulated charger (OCPP 1.6 sections 5.1, 5.13).

A reservation holds one connector for one id tag until its ``expiryDate``; on connector 0
("any connector", when ``ReserveConnectorZeroSupported``) it holds no connector in
particular, but the charger keeps one connector free for the tag while it lasts. The rules
that decide with the connectors' state (which answer a ``ReserveNow`` gets, who may start
where) are the charger's (:mod:`voltaro.sim.charger`); here is what a reservation is and
whom it admits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

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
