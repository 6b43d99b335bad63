"""What an operator follows in the log, at INFO: boots and their registration result,
transactions started and stopped, CALLERRORs sent and received (logger
``voltaro.fleet``). Refused authorizations are logged where they are decided (the Core
profile's handlers: they know the tag and the charger), operator actions by the admin
layer's gate (``voltaro.audit``), failed handshakes by the admission and the transport.

The lines come from the event bus (:mod:`voltaro.central.events`): published after the data
is committed, so a line never reports what was not stored. Events relayed from another
instance are left to that instance's log, so each line is written once per installation.
Meter values and status changes are many per minute per charger: they stay out of INFO.
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


def _booted(event: Booted) -> None:
    log.info(
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
    Booted: _booted,
    TransactionStarted: _started,
    TransactionStopped: _stopped,
    CallErrorPassed: _call_error,
}


def log_event(event: DomainEvent) -> None:
    """An event bus listener (synchronous, never blocks beyond the log's own write)."""
    line = _LINES.get(type(event))
    if line is not None and event.origin is None:
        line(event)
