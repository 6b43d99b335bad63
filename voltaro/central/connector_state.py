"""The connector state machine of OCPP 1.6 (section 4.9, "Status Notification").

The whole machine is the table :data:`TRANSITIONS` below; nothing else in Voltaro decides
what is an allowed transition. The charger is the source of truth: a StatusNotification is
always stored and becomes the connector's state, but one that is not an allowed transition
from the state we knew is flagged *unexpected* (stored with the history, logged, counted).
Unexpected transitions point at a charger bug, a lost message, or a missed reboot.

Rules, from the specification's table (rows: from, columns: to; ``x`` = allowed)::

                  Avail Prep  Charg SuspEV SuspEVSE Finish Reserv Unavail Fault
    Available       .    x     x     x      x        .      x      x       x
    Preparing       x    .     x     x      x        x      .      .       x
    Charging        x    .     .     x      x        x      .      x       x
    SuspendedEV     x    .     x     .      x        x      .      x       x
    SuspendedEVSE   x    .     x     x      .        x      .      x       x
    Finishing       x    x     .     .      .        .      .      x       x
    Reserved        x    x     .     .      .        .      .      x       x
    Unavailable     x    x     x     x      x        .      .      .       x
    Faulted         x    x     x     x      x        x      x      x       .

    Typical session:  Available -> Preparing -> Charging <-> SuspendedEV/SuspendedEVSE
                      -> Finishing -> Available

Further rules:

- Connector 0 is the charge point as a whole and only has Available, Unavailable and
  Faulted, between which every move is allowed.
- Repeating the current status is not a transition (chargers resend their state after a
  reconnect, or to report a new errorCode) and is always expected.
- The first status we ever hear for a connector is expected whatever it is (connector 0:
  if it is one of its three states).
"""

from __future__ import annotations

from enum import StrEnum


class ConnectorStatus(StrEnum):
    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


S = ConnectorStatus

TRANSITIONS: dict[ConnectorStatus, frozenset[ConnectorStatus]] = {
    S.AVAILABLE: frozenset(
        {
            S.PREPARING,
            S.CHARGING,
            S.SUSPENDED_EV,
            S.SUSPENDED_EVSE,
            S.RESERVED,
            S.UNAVAILABLE,
            S.FAULTED,
        }
    ),
    S.PREPARING: frozenset(
        {S.AVAILABLE, S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE, S.FINISHING, S.FAULTED}
    ),
    S.CHARGING: frozenset(
        {S.AVAILABLE, S.SUSPENDED_EV, S.SUSPENDED_EVSE, S.FINISHING, S.UNAVAILABLE, S.FAULTED}
    ),
    S.SUSPENDED_EV: frozenset(
        {S.AVAILABLE, S.CHARGING, S.SUSPENDED_EVSE, S.FINISHING, S.UNAVAILABLE, S.FAULTED}
    ),
    S.SUSPENDED_EVSE: frozenset(
        {S.AVAILABLE, S.CHARGING, S.SUSPENDED_EV, S.FINISHING, S.UNAVAILABLE, S.FAULTED}
    ),
    S.FINISHING: frozenset({S.AVAILABLE, S.PREPARING, S.UNAVAILABLE, S.FAULTED}),
    S.RESERVED: frozenset({S.AVAILABLE, S.PREPARING, S.UNAVAILABLE, S.FAULTED}),
    S.UNAVAILABLE: frozenset(
        {S.AVAILABLE, S.PREPARING, S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE, S.FAULTED}
    ),
    S.FAULTED: frozenset(
        {
            S.AVAILABLE,
            S.PREPARING,
            S.CHARGING,
            S.SUSPENDED_EV,
            S.SUSPENDED_EVSE,
            S.FINISHING,
            S.RESERVED,
            S.UNAVAILABLE,
        }
    ),
}

CHARGE_POINT_STATES: frozenset[ConnectorStatus] = frozenset({S.AVAILABLE, S.UNAVAILABLE, S.FAULTED})


def is_expected(connector_id: int, previous: str | None, new: str) -> bool:
    """Whether moving connector ``connector_id`` from ``previous`` (None: never heard of)
    to ``new`` is allowed by the table above."""
    try:
        target = ConnectorStatus(new)
    except ValueError:
        return False
    if connector_id == 0:
        return target in CHARGE_POINT_STATES and (
            previous is None or previous == new or previous in CHARGE_POINT_STATES
        )
    if previous is None or previous == new:
        return True
    try:
        source = ConnectorStatus(previous)
    except ValueError:
        return True  # we never knew a valid state, so nothing to contradict
    return target in TRANSITIONS[source]
