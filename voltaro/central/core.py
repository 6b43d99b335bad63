"""Core Profile handlers: the charger-initiated messages of OCPP 1.6 Core, bound to one
charge point.

Every handler takes the request payload (already schema-valid, as parsed by orjson) and
returns the CALLRESULT payload. It returns only after what it stores is committed, so the
reply the charger takes as permission to delete its copy is never sent for unsaved data.
An invalid date raises OcppError(PropertyConstraintViolation); a database outage raises
StoreUnavailable, which the RPC endpoint answers InternalError (the charger retries).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from voltaro.central.connector_state import is_expected
from voltaro.central.metering import content_digest, energy_reading, stored_meter_values
from voltaro.central.timestamps import format_timestamp, parse_timestamp, utc_now
from voltaro.ocppj.errors import ErrorCode, OcppError
from voltaro.store.records import BootDetails, StatusChange, StopOutcome

if TYPE_CHECKING:
    from voltaro.central.system import CentralSystem

log = logging.getLogger(__name__)

PENDING_RETRY_INTERVAL = 60  # seconds between a Pending charger's BootNotifications

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


# What a charge point may send only once it is Accepted (OCPP 1.6 section 4.2: until then it
# gets no id tag information and creates no billing records). The rest of the Core Profile
# (BootNotification, Heartbeat, StatusNotification) is served whatever its registration.
ACCEPTED_ONLY = frozenset(
    {"Authorize", "StartTransaction", "StopTransaction", "MeterValues", "DataTransfer"}
)

# OCPP 1.6 StopTransaction: "reason ... if absent, Local is assumed".
DEFAULT_STOP_REASON = "Local"


@dataclass
class ChargerState:
    """What the central system remembers in memory about one charge point."""

    connectors: dict[int, str] | None = None  # current status per connector, loaded lazily
    lock: trio.Lock = field(default_factory=trio.Lock)
    unexpected_transitions: int = 0
    registration_status: str | None = None
    """Accepted, Pending or Rejected: as read at its last handshake, then as answered to its
    last BootNotification or set by an operator since; None until one of those happened."""


INT32_MAX = 2**31 - 1  # connector, transaction and reservation ids are stored as integer
INT64_MAX = 2**63 - 1  # meter readings (Wh) are stored as bigint


def _integer(payload: dict[str, Any], field: str, minimum: int, maximum: int) -> int:
    """``payload[field]`` checked against the range Voltaro can store (the schema says only
    "integer"): out of range is PropertyConstraintViolation, not an InternalError forever."""
    value: int = payload[field]
    if not minimum <= value <= maximum:
        raise OcppError(
            ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
            f"{field} must be between {minimum} and {maximum}",
            {"field": field, "value": value},
        )
    return value


def _optional_integer(payload: dict[str, Any], field: str, maximum: int) -> int | None:
    return None if payload.get(field) is None else _integer(payload, field, -maximum, maximum)


def _connector_id(payload: dict[str, Any], minimum: int) -> int:
    return _integer(payload, "connectorId", minimum, INT32_MAX)


class CoreHandlers:
    """The Core Profile handlers for one charge point (see :meth:`as_mapping`)."""

    def __init__(self, system: CentralSystem, charge_point_id: str) -> None:
        self._system = system
        self._cp = charge_point_id
        self._store = system.store
        self._settings = system.settings

    def as_mapping(self) -> dict[str, Handler]:
        return {
            "BootNotification": self.boot_notification,
            "Heartbeat": self.heartbeat,
            "StatusNotification": self.status_notification,
            "Authorize": self.authorize,
            "StartTransaction": self.start_transaction,
            "StopTransaction": self.stop_transaction,
            "MeterValues": self.meter_values,
            "DataTransfer": self.data_transfer,
        }

    async def boot_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Store the details and a history row; answer with the registration status."""
        self._system.seen(self._cp)
        details = BootDetails(
            vendor=payload["chargePointVendor"],
            model=payload["chargePointModel"],
            serial_number=payload.get("chargePointSerialNumber"),
            charge_box_serial_number=payload.get("chargeBoxSerialNumber"),
            firmware_version=payload.get("firmwareVersion"),
            iccid=payload.get("iccid"),
            imsi=payload.get("imsi"),
            meter_type=payload.get("meterType"),
            meter_serial_number=payload.get("meterSerialNumber"),
        )
        now = utc_now()
        status = await self._store.charge_points.boot(
            self._cp, details, payload, now, self._system.status_for_new_charge_points
        )
        self._system.charger_state(self._cp).registration_status = status
        self._system.events.publish(
            "boot", self._cp, status=status, vendor=details.vendor, model=details.model
        )
        interval = self._settings.heartbeat_interval
        if status == "Pending":
            # A Pending charger retries its boot at this interval: short, so that an operator
            # who accepts it sees it come up within a minute, not a heartbeat period.
            interval = min(interval, PENDING_RETRY_INTERVAL)
        return {"status": status, "currentTime": format_timestamp(now), "interval": interval}

    async def heartbeat(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._system.seen(self._cp)
        return {"currentTime": format_timestamp(utc_now())}

    async def status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Apply the status (the charger is the truth); flag it when the state machine did
        not expect it."""
        self._system.seen(self._cp)
        connector_id = _connector_id(payload, 0)
        status: str = payload["status"]
        timestamp = payload.get("timestamp")
        charger_time = None if timestamp is None else parse_timestamp(timestamp, "timestamp")
        state = self._system.charger_state(self._cp)
        async with state.lock:
            if state.connectors is None:
                state.connectors = await self._store.connectors.statuses(self._cp)
            previous = state.connectors.get(connector_id)
            expected = is_expected(connector_id, previous, status)
            if not expected:
                state.unexpected_transitions += 1
                self._system.unexpected_transitions += 1
                log.warning(
                    "charge point %s connector %d: unexpected transition %s -> %s",
                    self._cp,
                    connector_id,
                    previous,
                    status,
                )
            change = StatusChange(
                connector_id=connector_id,
                status=status,
                previous_status=previous,
                error_code=payload["errorCode"],
                info=payload.get("info"),
                vendor_id=payload.get("vendorId"),
                vendor_error_code=payload.get("vendorErrorCode"),
                charger_timestamp=charger_time,
                received_at=utc_now(),
                unexpected=not expected,
            )
            await self._store.connectors.record_status(self._cp, change)
            state.connectors[connector_id] = status
        self._system.events.publish(
            "status",
            self._cp,
            connectorId=connector_id,
            status=status,
            previousStatus=previous,
            errorCode=payload["errorCode"],
        )
        return {}

    async def authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._system.seen(self._cp)
        return {"idTagInfo": await self._system.authorizer.id_tag_info(payload["idTag"])}

    async def start_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Record the transaction even when the tag is not accepted (it may have started
        offline); a retry with the same content gets the same id and the same answer."""
        self._system.seen(self._cp)
        connector_id = _connector_id(payload, 1)
        id_tag: str = payload["idTag"]
        started_at = parse_timestamp(payload["timestamp"], "timestamp")
        info = await self._system.authorizer.id_tag_info(id_tag)
        started = await self._store.transactions.start(
            self._cp,
            connector_id,
            id_tag,
            started_at,
            _integer(payload, "meterStart", -INT64_MAX, INT64_MAX),
            _optional_integer(payload, "reservationId", INT32_MAX),
            info["status"],
            utc_now(),
        )
        if started.created:
            self._system.open_transactions.started(started.transaction_id, id_tag)
            self._system.events.publish(
                "transactionStarted",
                self._cp,
                transactionId=started.transaction_id,
                connectorId=connector_id,
                idTag=id_tag,
            )
        else:
            log.info(
                "charge point %s: StartTransaction retry, transaction %d already recorded",
                self._cp,
                started.transaction_id,
            )
            info["status"] = started.id_tag_status
        return {"transactionId": started.transaction_id, "idTagInfo": info}

    async def stop_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Close the transaction; unknown or already closed ids are still answered."""
        self._system.seen(self._cp)
        transaction_id = _integer(payload, "transactionId", -INT32_MAX, INT32_MAX)
        meter_stop = _integer(payload, "meterStop", -INT64_MAX, INT64_MAX)
        stopped_at = parse_timestamp(payload["timestamp"], "timestamp")
        data = stored_meter_values(payload.get("transactionData", []), "transactionData")
        id_tag: str | None = payload.get("idTag")
        reason: str = payload.get("reason", DEFAULT_STOP_REASON)
        outcome = await self._store.transactions.stop(
            self._cp, transaction_id, stopped_at, meter_stop, reason, id_tag, utc_now(), data
        )
        if outcome is StopOutcome.STOPPED:
            self._system.open_transactions.stopped(transaction_id)
            self._system.events.publish(
                "transactionStopped",
                self._cp,
                transactionId=transaction_id,
                meterStop=meter_stop,
                reason=reason,
            )
        else:
            log.warning(
                "charge point %s: StopTransaction for %s transaction %d; answered, not applied",
                self._cp,
                "an unknown" if outcome is StopOutcome.UNKNOWN else "an already stopped",
                transaction_id,
            )
        if id_tag is None:
            return {}
        info = await self._system.authorizer.id_tag_info(id_tag, check_concurrent=False)
        return {"idTagInfo": info}

    async def meter_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Store every sampled value; keep the transaction's running energy current."""
        self._system.seen(self._cp)
        connector_id = _connector_id(payload, 0)
        transaction_id = _optional_integer(payload, "transactionId", INT32_MAX)
        values = stored_meter_values(payload["meterValue"], "meterValue")
        energy = None if transaction_id is None else energy_reading(transaction_id, values)
        stored = await self._store.transactions.meter_values(
            self._cp,
            connector_id,
            transaction_id,
            values,
            energy,
            utc_now(),
            content_digest(payload),
        )
        if not stored:
            log.info("%s: MeterValues already stored (a retry); nothing stored again", self._cp)
        elif transaction_id is not None:
            self._system.events.publish(
                "meterValues", self._cp, transactionId=transaction_id, connectorId=connector_id
            )
        return {}

    async def data_transfer(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._system.seen(self._cp)
        return await self._system.data_transfer.handle(
            self._cp, payload["vendorId"], payload.get("messageId"), payload.get("data")
        )
