"""The OCPP 1.6 Core Profile: the charger-initiated messages it handles and the commands it
offers operators, with their effects.

Every handler takes the charger (:class:`~voltaro.central.domain.Charger`) and the request
payload (already schema-valid, as parsed by orjson) and returns the CALLRESULT payload. It
returns only after what it stores is committed, so the reply the charger takes as permission
to delete its copy is never sent for unsaved data.
An invalid date raises OcppError(PropertyConstraintViolation); a database outage raises
StoreUnavailable, which the RPC endpoint answers InternalError (the charger retries).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from voltaro.central.admission import POLICY_STATUS
from voltaro.central.connector_state import is_expected
from voltaro.central.domain import Charger, Domain
from voltaro.central.domain_events import (
    Booted,
    MeterValuesReceived,
    StatusChanged,
    TransactionStarted,
    TransactionStopped,
)
from voltaro.central.metering import content_digest, energy_reading, stored_meter_values
from voltaro.central.passwords import hash_password
from voltaro.central.profile import Command, Field, Profile
from voltaro.central.redaction import is_secret, redacted
from voltaro.central.retention import keep_operator_records
from voltaro.central.timestamps import format_timestamp, parse_timestamp, utc_now
from voltaro.ocppj.errors import ErrorCode, OcppError
from voltaro.store.records import BootDetails, StatusChange, StopOutcome

log = logging.getLogger(__name__)

PENDING_RETRY_INTERVAL = 60  # seconds between a Pending charger's BootNotifications

# What a charge point may send only once it is Accepted (OCPP 1.6 section 4.2: until then it
# gets no id tag information and creates no billing records). The rest of the Core Profile
# (BootNotification, Heartbeat, StatusNotification) is served whatever its registration.
ACCEPTED_ONLY = frozenset(
    {"Authorize", "StartTransaction", "StopTransaction", "MeterValues", "DataTransfer"}
)

# OCPP 1.6 StopTransaction: "reason ... if absent, Local is assumed".
DEFAULT_STOP_REASON = "Local"


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


async def boot_notification(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    """Store the details and a history row; answer with the registration status."""
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
    status = await charger.store.charge_points.boot(
        charger.id, details, payload, now, POLICY_STATUS[charger.domain.settings.unknown_chargers]
    )
    charger.state.registration_status = status
    charger.events.publish(
        Booted(
            charge_point_id=charger.id, status=status, vendor=details.vendor, model=details.model
        )
    )
    interval = charger.domain.settings.heartbeat_interval
    if status == "Pending":
        # A Pending charger retries its boot at this interval: short, so that an operator
        # who accepts it sees it come up within a minute, not a heartbeat period.
        interval = min(interval, PENDING_RETRY_INTERVAL)
    return {"status": status, "currentTime": format_timestamp(now), "interval": interval}


async def heartbeat(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": format_timestamp(utc_now())}


async def status_notification(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    """Apply the status (the charger is the truth); flag it when the state machine did
    not expect it."""
    connector_id = _connector_id(payload, 0)
    status: str = payload["status"]
    timestamp = payload.get("timestamp")
    charger_time = None if timestamp is None else parse_timestamp(timestamp, "timestamp")
    state = charger.state
    async with state.lock:
        if state.connectors is None:
            state.connectors = await charger.store.connectors.statuses(charger.id)
        previous = state.connectors.get(connector_id)
        expected = is_expected(connector_id, previous, status)
        if not expected:
            state.unexpected_transitions += 1
            charger.domain.counters.unexpected_transitions += 1
            log.warning(
                "charge point %s connector %d: unexpected transition %s -> %s",
                charger.id,
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
        await charger.store.connectors.record_status(charger.id, change)
        state.connectors[connector_id] = status
    charger.events.publish(
        StatusChanged(
            charge_point_id=charger.id,
            connector_id=connector_id,
            status=status,
            previous_status=previous,
            error_code=payload["errorCode"],
        )
    )
    return {}


async def authorize(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    verdict = await charger.domain.authorizer.check(payload["idTag"])
    if verdict.refusal is not None:
        log.info(
            "charge point %s: Authorize refused id tag %s: %s",
            charger.id,
            payload["idTag"],
            verdict.info["status"],
        )
        _note_refusal(charger, payload["idTag"], verdict.refusal, "Authorize")
    return {"idTagInfo": verdict.info}


def _note_refusal(charger: Charger, id_tag: str, reason: str, action: str) -> None:
    """Count the refusal in the operator's list of refused tags: posted to the writer's
    next batch, so the charger's answer does not wait for it."""
    charger.store.refused_id_tags.post(id_tag, reason, charger.id, utc_now(), action)


async def start_transaction(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    """Record the transaction even when the tag is not accepted (it may have started
    offline); a retry with the same content gets the same id and the same answer."""
    connector_id = _connector_id(payload, 1)
    id_tag: str = payload["idTag"]
    started_at = parse_timestamp(payload["timestamp"], "timestamp")
    reservation_id = _optional_integer(payload, "reservationId", INT32_MAX)
    verdict = await charger.domain.authorizer.check(id_tag)
    info = verdict.info
    started = await charger.store.transactions.start(
        charger.id,
        connector_id,
        id_tag,
        started_at,
        _integer(payload, "meterStart", -INT64_MAX, INT64_MAX),
        reservation_id,
        info["status"],
        utc_now(),
    )
    if started.created:
        if verdict.refusal is not None:  # recorded all the same: it may have begun offline
            log.info(
                "charge point %s: StartTransaction with a refused id tag %s: %s (transaction"
                " %d recorded)",
                charger.id,
                id_tag,
                info["status"],
                started.transaction_id,
            )
            _note_refusal(charger, id_tag, verdict.refusal, "StartTransaction")
        charger.domain.open_transactions.started(started.transaction_id, id_tag)
        charger.events.publish(
            TransactionStarted(
                charge_point_id=charger.id,
                transaction_id=started.transaction_id,
                connector_id=connector_id,
                id_tag=id_tag,
                reservation_id=reservation_id,
            )
        )
    else:
        log.info(
            "charge point %s: StartTransaction retry, transaction %d already recorded",
            charger.id,
            started.transaction_id,
        )
        info["status"] = started.id_tag_status
    return {"transactionId": started.transaction_id, "idTagInfo": info}


async def stop_transaction(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    """Close the transaction; unknown or already closed ids are still answered."""
    transaction_id = _integer(payload, "transactionId", -INT32_MAX, INT32_MAX)
    meter_stop = _integer(payload, "meterStop", -INT64_MAX, INT64_MAX)
    stopped_at = parse_timestamp(payload["timestamp"], "timestamp")
    data = stored_meter_values(payload.get("transactionData", []), "transactionData")
    id_tag: str | None = payload.get("idTag")
    reason: str = payload.get("reason", DEFAULT_STOP_REASON)
    outcome = await charger.store.transactions.stop(
        charger.id, transaction_id, stopped_at, meter_stop, reason, id_tag, utc_now(), data
    )
    if outcome is StopOutcome.STOPPED:
        charger.domain.open_transactions.stopped(transaction_id)
        charger.events.publish(
            TransactionStopped(
                charge_point_id=charger.id,
                transaction_id=transaction_id,
                meter_stop=meter_stop,
                reason=reason,
            )
        )
    else:
        log.warning(
            "charge point %s: StopTransaction for %s transaction %d; answered, not applied",
            charger.id,
            "an unknown" if outcome is StopOutcome.UNKNOWN else "an already stopped",
            transaction_id,
        )
    if id_tag is None:
        return {}
    info = await charger.domain.authorizer.id_tag_info(id_tag, check_concurrent=False)
    return {"idTagInfo": info}


async def meter_values(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    """Store every sampled value; keep the transaction's running energy current."""
    connector_id = _connector_id(payload, 0)
    transaction_id = _optional_integer(payload, "transactionId", INT32_MAX)
    values = stored_meter_values(payload["meterValue"], "meterValue")
    energy = None if transaction_id is None else energy_reading(transaction_id, values)
    stored = await charger.store.transactions.meter_values(
        charger.id,
        connector_id,
        transaction_id,
        values,
        energy,
        utc_now(),
        content_digest(payload),
    )
    if not stored:
        log.info("%s: MeterValues already stored (a retry); nothing stored again", charger.id)
    elif transaction_id is not None:
        charger.events.publish(
            MeterValuesReceived(
                charge_point_id=charger.id, transaction_id=transaction_id, connector_id=connector_id
            )
        )
    return {}


async def data_transfer(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    return await charger.domain.data_transfer.handle(
        charger.id, payload["vendorId"], payload.get("messageId"), payload.get("data")
    )


# ---- operator commands and their effects ---------------------------------------------------


async def configuration_read(
    domain: Domain, charge_point_id: str, request: dict[str, Any], result: dict[str, Any]
) -> None:
    """GetConfiguration: keep what the charger reported (secret values redacted); a read of
    all keys replaces the known configuration, a read of some keys updates those."""
    keys = [
        (str(item["key"]), item.get("value"), item.get("readonly"))
        for item in redacted("GetConfiguration", result).get("configurationKey", [])
    ]
    await domain.store.admin.replace_configuration(
        charge_point_id, keys, utc_now(), complete=not request.get("key")
    )


async def configuration_changed(
    domain: Domain, charge_point_id: str, request: dict[str, Any], result: dict[str, Any]
) -> None:
    """ChangeConfiguration answered Accepted or RebootRequired: the known value follows. An
    accepted new ``AuthorizationKey`` becomes the charger's Basic-auth password (only its
    hash is kept; scrypt runs off the event loop) and is shown nowhere."""
    if result.get("status") not in ("Accepted", "RebootRequired"):
        return
    key, value = str(request["key"]), str(request["value"])
    if is_secret(key):
        password_hash = await trio.to_thread.run_sync(hash_password, value)
        await domain.store.charge_points.upsert(charge_point_id, password_hash=password_hash)
        log.info(
            "charge point %s: new AuthorizationKey accepted, password updated", charge_point_id
        )
    shown = redacted("ChangeConfiguration", request)["value"]
    await domain.store.admin.set_configuration_value(charge_point_id, key, shown, utc_now())


CONNECTOR = Field("connectorId", "Connector", "int", required=True, default="1")

COMMANDS = (
    Command(
        "ChangeAvailability",
        "Make a connector (0: the whole charger) operative or inoperative",
        (
            Field("connectorId", "Connector (0: whole charger)", "int", required=True, default="0"),
            Field(
                "type",
                "Type",
                "select",
                ("Inoperative", "Operative"),
                True,
                confirm=(("Inoperative", "Take it out of service? Nobody can charge there."),),
            ),
        ),
    ),
    Command(
        "ChangeConfiguration",
        "Set a configuration key; the known configuration follows an accepted change",
        (
            Field("key", "Key", required=True, suggest="configurationKey"),
            Field("value", "Value", required=True),
        ),
        effect=configuration_changed,
    ),
    Command("ClearCache", "Clear the charger's authorization cache"),
    Command(
        "DataTransfer",
        "Send a vendor-specific message",
        (
            Field("vendorId", "Vendor id", required=True),
            Field("messageId", "Message id"),
            Field("data", "Data"),
        ),
    ),
    Command(
        "GetConfiguration",
        "Read configuration keys (all when none are named); the answer is kept",
        (Field("key", "Keys (comma-separated; empty: all)", "list"),),
        effect=configuration_read,
    ),
    Command(
        "RemoteStartTransaction",
        "Start a transaction for an id tag",
        (
            Field("idTag", "Id tag", required=True),
            Field("connectorId", "Connector", "int", default="1"),
        ),
    ),
    Command(
        "RemoteStopTransaction",
        "Stop a transaction",
        (
            Field(
                "transactionId", "Transaction id", "int", required=True, suggest="activeTransaction"
            ),
        ),
        confirm="Stop the transaction? The driver's charging ends.",
    ),
    Command(
        "Reset",
        "Reboot the charger",
        (Field("type", "Type", "select", ("Soft", "Hard"), True),),
        confirm="Reset the charger? Charging on it stops while it reboots.",
    ),
    Command(
        "UnlockConnector",
        "Unlock a connector's cable",
        (CONNECTOR,),
        confirm="Unlock the connector? A cable in use comes loose.",
    ),
)

CORE = Profile(
    name="Core",
    inbound={
        "BootNotification": boot_notification,
        "Heartbeat": heartbeat,
        "StatusNotification": status_notification,
        "Authorize": authorize,
        "StartTransaction": start_transaction,
        "StopTransaction": stop_transaction,
        "MeterValues": meter_values,
        "DataTransfer": data_transfer,
    },
    accepted_only=ACCEPTED_ONLY,
    commands=COMMANDS,
    # not the charging domain's, but every instance runs the Core profile's tasks
    tasks=(keep_operator_records,),
    migrations=(
        "0001_core.sql",
        "0002_known_configuration.sql",
        "0003_meter_value_messages.sql",
        "0004_charge_point_removed_notify.sql",
        "0005_meter_value_sets.sql",
        "0006_message_log_usage.sql",
        "0007_security_events.sql",
        "0008_session_instance.sql",
        "0009_open_transactions_notify.sql",
        "0010_instances_and_commands.sql",
        "0011_charge_point_notify.sql",
        "0014_operator_accounts.sql",
        "0015_list_indexes_and_refused_tags.sql",
        "0016_fleet_stats.sql",
        "0017_sign_in_attempts.sql",
    ),
)
