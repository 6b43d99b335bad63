"""What an operator follows in the log, at INFO: boots and their registration result,
transactions started and stopped, CALLERRORs sent and received (logger
``voltaro.fleet``). Refused authorizations are logged where they are decided (the Core
profile's handlers: they know the tag and the charger), operator actions by the admin
layer's gate (``voltaro.audit``), failed handshakes by the admission and the transport.

The lines come from the event bus (:mod:`voltaro.central.events`): published after the data
is committed, so a line never reports what was not stored. Events relayed from another
instance are left to that instance's log, so each line is written once per installation.
Meter values and status changes are many per minute per charger: they stay out of INFO, and
so do the repeated boots of a charger left Pending (it boots again every heartbeat interval
until an operator decides): its first Pending boot is logged, the next ones at DEBUG until
its registration changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from voltaro.central.domain_events import (
    Booted,
    CallErrorPassed,
    DomainEvent,
    TransactionStarted,
    TransactionStopped,
)

log = logging.getLogger("voltaro.fleet")


def _booted(event: Booted, level: int = logging.INFO) -> None:
    log.log(
        level,
        "charge point %s booted (%s %s): registration %s",
        event.charge_point_id,
        event.vendor,
        event.model,
        event.status,
    )


def _started(event: TransactionStarted) -> None:
    log.info(
        "charge point %s: transaction %d started on connector %d by id tag %s",
        event.charge_point_id,
        event.transaction_id,
        event.connector_id,
        event.id_tag,
    )


def _stopped(event: TransactionStopped) -> None:
    log.info(
        "charge point %s: transaction %d stopped (%s), meter %d Wh",
        event.charge_point_id,
        event.transaction_id,
        event.reason,
        event.meter_stop,
    )


def _call_error(event: CallErrorPassed) -> None:
    log.info(
        "charge point %s: CALLERROR %s %s on %s: %s",
        event.charge_point_id,
        event.code,
        "received from it" if event.direction == "in" else "sent to it",
        event.action or "an unknown action",
        event.description or "(no description)",
    )


# By the event's exact class: one dict lookup is all a meter value event costs (the events
# are final dataclasses; nothing subclasses them).
_LINES: dict[type[DomainEvent], Callable[[Any], None]] = {
    TransactionStarted: _started,
    TransactionStopped: _stopped,
    CallErrorPassed: _call_error,
}


class FleetLog:
    """An event bus listener (synchronous, never blocks beyond the log's own write) that
    remembers which chargers' last boot was answered Pending, so their retries stay out of
    INFO (one id per Pending charger of this instance; an accepted one is forgotten)."""

    def __init__(self) -> None:
        self._pending: set[str] = set()

    def __call__(self, event: DomainEvent) -> None:
        if event.origin is not None:
            return
        if type(event) is Booted:
            self._boot(event)
            return
        line = _LINES.get(type(event))
        if line is not None:
            line(event)

    def _boot(self, event: Booted) -> None:
        charge_point_id = event.charge_point_id
        if event.status != "Pending":
            self._pending.discard(charge_point_id)
            _booted(event)
        elif charge_point_id in self._pending:
            _booted(event, logging.DEBUG)
        else:
            self._pending.add(charge_point_id)
            _booted(event)
