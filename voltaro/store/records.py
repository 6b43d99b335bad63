"""Plain typed records the store hands to its callers, so nothing outside ``store/`` sees SQL
rows. They carry what was stored, not OCPP semantics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def pg_text(value: str | None) -> str | None:
    """``value`` as PostgreSQL can store it: U+0000, the one character it cannot, becomes
    U+FFFD (a charger sending NUL must not make its data unstorable)."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


def _fields(cls: Any, row: Any) -> dict[str, Any]:
    """The row's values for the record's fields. A naive datetime is UTC: asyncpg hands
    PostgreSQL's ``-infinity``/``infinity`` back as naive ``datetime.min``/``max``, which
    would not compare with the aware times everywhere else (an id tag whose expiry is
    ``infinity`` must not make Authorize fail)."""
    values = {name: row[name] for name in cls.__dataclass_fields__}
    for name, value in values.items():
        if isinstance(value, datetime) and value.tzinfo is None:
            values[name] = value.replace(tzinfo=UTC)
    return values


@dataclass(frozen=True)
class ChargePointRecord:
    id: str
    registration_status: str
    password_hash: str | None
    lenient: bool
    vendor: str | None
    model: str | None
    serial_number: str | None
    charge_box_serial_number: str | None
    firmware_version: str | None
    iccid: str | None
    imsi: str | None
    meter_type: str | None
    meter_serial_number: str | None
    last_boot_at: datetime | None
    online: bool
    last_seen: datetime | None
    lenient_deviations: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ChargePointRecord:
        return cls(**_fields(cls, row))


@dataclass(frozen=True)
class BootDetails:
    """The fields of a BootNotification request, as sent."""

    vendor: str
    model: str
    serial_number: str | None = None
    charge_box_serial_number: str | None = None
    firmware_version: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    meter_type: str | None = None
    meter_serial_number: str | None = None


@dataclass(frozen=True)
class IdTagRecord:
    id_tag: str
    status: str  # Accepted | Blocked | Expired | Invalid, as an operator set it
    expiry_date: datetime | None
    parent_id_tag: str | None

    @classmethod
    def from_row(cls, row: Any) -> IdTagRecord:
        return cls(**_fields(cls, row))


@dataclass(frozen=True)
class ConnectorRecord:
    charge_point_id: str
    connector_id: int
    status: str
    error_code: str
    info: str | None
    vendor_id: str | None
    vendor_error_code: str | None
    charger_timestamp: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ConnectorRecord:
        return cls(**_fields(cls, row))


@dataclass(frozen=True)
class StatusChange:
    """One StatusNotification as it will be stored."""

    connector_id: int
    status: str
    previous_status: str | None
    error_code: str
    info: str | None
    vendor_id: str | None
    vendor_error_code: str | None
    charger_timestamp: datetime | None
    received_at: datetime
    unexpected: bool


@dataclass(frozen=True)
class StartedTransaction:
    transaction_id: int
    id_tag_status: str  # the status answered when the transaction was first recorded
    created: bool  # False: a retry of a transaction already recorded


class StopOutcome(StrEnum):
    STOPPED = "stopped"
    ALREADY_STOPPED = "already_stopped"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TransactionRecord:
    transaction_id: int
    charge_point_id: str
    connector_id: int
    id_tag: str
    id_tag_status: str
    started_at: datetime
    meter_start: int
    reservation_id: int | None
    stopped_at: datetime | None
    meter_stop: int | None
    stop_reason: str | None
    stop_id_tag: str | None
    energy_wh: float | None
    last_register_wh: float | None
    last_register_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> TransactionRecord:
        return cls(**_fields(cls, row))


@dataclass(frozen=True)
class EnergyReading:
    """The latest Energy.Active.Import.Register of a transaction, converted to Wh."""

    transaction_id: int
    wh: float
    at: datetime
