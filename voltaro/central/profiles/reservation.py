"""The OCPP 1.6 Reservation profile: ``ReserveNow`` and ``CancelReservation``, and the
reservation records (:mod:`voltaro.store.reservations`, migration 0012).

Voltaro allocates the ``reservationId``: the operator's ReserveNow leaves it out (a value
given is replaced) and the answer says which id was sent (``allocated``). The record is
written Requested before the CALL goes out, so a charger that answers late, or whose answer
was lost, still finds its reservation known. When the operator gives no ``parentIdTag``,
the id tag's parent from the id tag table is sent (the charger then lets the group use it).

What happens to a reservation after its answer:

- **Used**: a transaction started on the charge point that names it (``reservationId`` in
  StartTransaction), or one by the reserved id tag or by a tag with the same parent, on its
  connector (a reservation of connector 0 is for any connector). One already Expired is Used
  all the same when the transaction naming it started before the expiry (a charger offline
  when the driver came sends its StartTransaction late);
- **Cancelled**: CancelReservation answered Accepted (Rejected leaves it, with a history row);
- **Expired**: its ``expiryDate`` came (:func:`expire_reservations`, on every instance: the
  SQL changes each reservation once, whoever runs it);
- **ConnectorUnavailable** / **ConnectorFaulted**: its connector (or connector 0, the whole
  charger) reported that status.

Those that follow a charger's messages are applied by :func:`follow_chargers` from the
domain events of the chargers this instance holds (``origin`` None), after the messages are
committed and answered. The charger's own ``Reserved`` status is the state machine's
(:mod:`voltaro.central.connector_state`); one that no Accepted reservation explains is
logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio

from voltaro.central.commands import InvalidCommand
from voltaro.central.domain import Domain
from voltaro.central.domain_events import DomainEvent, StatusChanged, TransactionStarted
from voltaro.central.profile import (
    CONNECTOR_NOTES,
    Command,
    Failure,
    Field,
    Listing,
    Payload,
    Profile,
    ProfileContext,
)
from voltaro.central.timestamps import (
    BadTimestamp,
    format_timestamp,
    read_timestamp,
    utc_now,
)
from voltaro.ocppj.errors import ErrorCode
from voltaro.ocppj.validation import Violation
from voltaro.store import StoreError
from voltaro.store.reservations import (
    STATUSES,
    ReservationFilter,
    ReservationRepository,
    Row,
)

log = logging.getLogger(__name__)

EXPIRY_PERIOD = 2.0  # seconds between expiry checks: how late an Expired may be recorded
EVENT_BUFFER = 4096  # events the follower may lag behind before it drops some (logged)
INT32_MAX = 2**31 - 1
ENDING_STATUSES = {"Unavailable": "ConnectorUnavailable", "Faulted": "ConnectorFaulted"}
WATCHED_STATUSES = frozenset({*ENDING_STATUSES, "Reserved"})


def reservations(domain: Domain) -> ReservationRepository:
    return ReservationRepository(domain.store.database)


# ---- the commands ----------------------------------------------------------------------


def _refuse(path: str, message: str) -> InvalidCommand:
    violation = Violation(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, path, f"{path}: {message}")
    return InvalidCommand("ReserveNow", violation)


async def allocate_reservation(domain: Domain, charge_point_id: str, request: Payload) -> Payload:
    """Check what the schema cannot (a connector Voltaro can store, an expiry to come),
    record the reservation Requested and put its id (and the tag's parent) in the request."""
    connector_id: int = request["connectorId"]
    if not 0 <= connector_id <= INT32_MAX:
        raise _refuse("$.connectorId", f"must be between 0 and {INT32_MAX} (0: any connector)")
    try:
        expiry = read_timestamp(request["expiryDate"])
    except BadTimestamp as why:
        raise _refuse("$.expiryDate", str(why)) from None
    now = utc_now()
    if expiry <= now:
        raise _refuse("$.expiryDate", f"{request['expiryDate']} has passed")
    id_tag: str = request["idTag"]
    parent: str | None = request.get("parentIdTag")
    if parent is None:
        known = await domain.store.id_tag_cache.lookup(id_tag)
        parent = None if known is None else known.parent_id_tag
    reservation_id = await reservations(domain).create(
        charge_point_id, connector_id, id_tag, parent, expiry, now
    )
    sent: Payload = {
        "connectorId": connector_id,
        "expiryDate": request["expiryDate"],
        "idTag": id_tag,
        "parentIdTag": parent,
        "reservationId": reservation_id,
    }
    if parent is None:
        del sent["parentIdTag"]
    return sent


async def reservation_answered(
    domain: Domain, charge_point_id: str, request: Payload, result: Payload
) -> None:
    await reservations(domain).answered(request["reservationId"], result["status"], utc_now())


async def reservation_failed(
    domain: Domain, charge_point_id: str, request: Payload, failure: Failure
) -> None:
    await reservations(domain).failed(request["reservationId"], failure.message, utc_now())


async def cancellation_answered(
    domain: Domain, charge_point_id: str, request: Payload, result: Payload
) -> None:
    """The charger's answer to CancelReservation, on the charge point's reservation of that
    id (another charge point's is never touched)."""
    reservation_id: int = request["reservationId"]
    repository = reservations(domain)
    if result["status"] == "Accepted":
        await repository.cancelled(charge_point_id, reservation_id, utc_now())
    else:
        detail = "CancelReservation answered Rejected: the charger holds no such reservation"
        await repository.note(charge_point_id, reservation_id, "CancelRejected", detail, utc_now())


COMMANDS = (
    Command(
        "ReserveNow",
        "Reserve a connector (0: any) for an id tag until the expiry; Voltaro allocates the id",
        (
            Field("connectorId", "Connector (0: any)", "int", required=True, default="1"),
            Field("idTag", "Id tag", required=True),
            Field("expiryDate", "Expires (e.g. 2030-01-31T18:00:00Z)", required=True),
            Field("parentIdTag", "Parent id tag (default: the tag's own)"),
        ),
        effect=reservation_answered,
        prepare=allocate_reservation,
        failed=reservation_failed,
        allocates={"reservationId": 0},
    ),
    Command(
        "CancelReservation",
        "Cancel a reservation",
        (Field("reservationId", "Reservation id", "int", required=True),),
        effect=cancellation_answered,
    ),
)


# ---- following the chargers -------------------------------------------------------------


async def follow_chargers(ctx: ProfileContext) -> None:
    """Apply what the chargers held here do to their reservations (see the module doc).

    The events it needs are picked by a listener on the bus (a transaction started, a
    connector Unavailable, Faulted or Reserved, on this instance), so the many it does not
    need (meter values) cost an ``isinstance`` each and wake nothing up."""
    repository = reservations(ctx.domain)
    send, receive = trio.open_memory_channel[TransactionStarted | StatusChanged](EVENT_BUFFER)

    def pick(event: DomainEvent) -> None:
        if event.origin is not None:
            return  # the instance that holds the charger acts on it
        if isinstance(event, TransactionStarted) or (
            isinstance(event, StatusChanged) and event.status in WATCHED_STATUSES
        ):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                log.warning("reservations: %d events behind; dropped %s", EVENT_BUFFER, event)

    with ctx.domain.events.listening(pick):
        async for event in receive:
            try:
                if isinstance(event, TransactionStarted):
                    await _transaction_started(ctx.domain, repository, event)
                else:
                    await _status_changed(repository, event)
            except StoreError as error:  # the next events may find the database back
                log.warning("reservations: %s not applied: %s", event, error)


async def _transaction_started(
    domain: Domain, repository: ReservationRepository, event: TransactionStarted
) -> None:
    known = await domain.store.id_tag_cache.lookup(event.id_tag)
    used = await repository.use(
        event.charge_point_id,
        event.connector_id,
        event.reservation_id,
        [event.id_tag],
        None if known is None else known.parent_id_tag,
        event.transaction_id,
        utc_now(),
    )
    for reservation_id in used:
        log.info(
            "charge point %s: reservation %d used by transaction %d",
            event.charge_point_id,
            reservation_id,
            event.transaction_id,
        )


async def _status_changed(repository: ReservationRepository, event: StatusChanged) -> None:
    ending = ENDING_STATUSES.get(event.status)
    cp, connector = event.charge_point_id, event.connector_id
    if ending is not None:
        for reservation_id in await repository.end_on_connector(cp, connector, ending, utc_now()):
            log.info("charge point %s: reservation %d ended (%s)", cp, reservation_id, ending)
    elif event.status == "Reserved":
        holding = await repository.holding(cp, utc_now())
        if not any(row["connector_id"] in (connector, 0) for row in holding):
            log.warning(
                "charge point %s: connector %d is Reserved, but by no reservation Voltaro "
                "knows to be Accepted",
                cp,
                connector,
            )


async def expire_reservations(ctx: ProfileContext) -> None:
    """Every :data:`EXPIRY_PERIOD` seconds, Accepted reservations past their expiry become
    Expired. Every instance runs it; each reservation changes once."""
    repository = reservations(ctx.domain)
    while True:
        try:
            for reservation_id in await repository.expire(utc_now()):
                log.info("reservation %d expired", reservation_id)
        except StoreError:
            pass  # the outage is the store's to log; the next round catches up
        await trio.sleep(EXPIRY_PERIOD)


# ---- what operators see ---------------------------------------------------------------


def _time(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = read_timestamp(value)
    return format_timestamp(value)


def reservation_json(row: Row) -> Payload:
    return {
        "reservationId": row["reservation_id"],
        "chargePointId": row["charge_point_id"],
        "connectorId": row["connector_id"],
        "idTag": row["id_tag"],
        "parentIdTag": row["parent_id_tag"],
        "expiryDate": _time(row["expiry_date"]),
        "status": row["status"],
        "transactionId": row["transaction_id"],
        "createdAt": _time(row["created_at"]),
        "updatedAt": _time(row["updated_at"]),
        "history": [
            {"status": h["status"], "at": _time(h["at"]), "detail": h["detail"]}
            for h in row["history"]
        ],
    }


async def list_reservations(
    domain: Domain, filters: Mapping[str, Any], limit: int, offset: int
) -> tuple[list[Payload], int]:
    wanted = ReservationFilter(
        charge_point_id=filters.get("chargePointId"),
        status=filters.get("status"),
        active=filters.get("active"),
    )
    rows, total = await reservations(domain).page(wanted, utc_now(), limit, offset)
    return [reservation_json(row) for row in rows], total


async def reservation_facts(domain: Domain, charge_point_id: str) -> Payload:
    """The charge point's Accepted reservations, and a note on each reserved connector."""
    holding = await reservations(domain).holding(charge_point_id, utc_now())
    notes: dict[str, str] = {}
    for row in holding:
        until = format_timestamp(row["expiry_date"]).replace("T", " ").split(".")[0] + " UTC"
        text = f"reserved for {row['id_tag']} until {until} (#{row['reservation_id']})"
        if row["connector_id"] == 0:
            text = "any connector " + text
        key = str(row["connector_id"])
        notes[key] = f"{notes[key]}; {text}" if key in notes else text
    active = [
        {k: v for k, v in reservation_json(row).items() if k in ACTIVE_KEYS} for row in holding
    ]
    return {"activeReservations": active, CONNECTOR_NOTES: notes}


DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_STRING = {"type": ["string", "null"]}
ITEM_PROPERTIES: dict[str, Any] = {
    "reservationId": {"type": "integer", "title": "#"},
    "chargePointId": {"type": "string", "title": "Charge point"},
    "connectorId": {"type": "integer", "title": "Conn.", "description": "0: any connector"},
    "idTag": {"type": "string", "title": "Id tag"},
    "parentIdTag": NULLABLE_STRING | {"title": "Parent"},
    "expiryDate": DATE_TIME | {"title": "Expires"},
    "status": {"enum": list(STATUSES)},
    "transactionId": {"type": ["integer", "null"], "title": "Used by transaction"},
    "createdAt": DATE_TIME | {"title": "Made"},
    "updatedAt": DATE_TIME | {"title": "Changed"},
    "history": {
        "type": "array",
        "description": "every status it had, oldest first",
        "items": {
            "type": "object",
            "properties": {
                "status": {"type": "string"},
                "at": DATE_TIME,
                "detail": NULLABLE_STRING,
            },
        },
    },
}
ACTIVE_KEYS = ("reservationId", "connectorId", "idTag", "parentIdTag", "expiryDate")

RESERVATION = Profile(
    name="Reservation",
    inbound={},
    commands=COMMANDS,
    migrations=("0012_reservations.sql",),
    tasks=(follow_chargers, expire_reservations),
    listings=(
        Listing(
            "reservations",
            "Reservations",
            (
                Field("chargePointId", "Charge point"),
                Field("status", "Status", "select", STATUSES),
                Field("active", "Holding a connector now", "bool"),
            ),
            list_reservations,
            {"type": "object", "properties": ITEM_PROPERTIES},
        ),
    ),
    charge_point_facts=reservation_facts,
    facts_schema={
        "activeReservations": {
            "type": "array",
            "title": "Reservations holding a connector",
            "items": {
                "type": "object",
                "properties": {key: ITEM_PROPERTIES[key] for key in ACTIVE_KEYS},
            },
        },
        CONNECTOR_NOTES: {
            "type": "object",
            "description": "a note per connector id (as a string): what holds it",
            "additionalProperties": {"type": "string"},
        },
    },
)
