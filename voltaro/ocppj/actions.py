"""The OCPP 1.6 actions: which side may send each one as a CALL, and where their schemas are."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class Direction(StrEnum):
    """Whose payload a schema describes: the CALL's (request) or the CALLRESULT's (response)."""

    REQUEST = "request"
    RESPONSE = "response"


# Actions a charge point sends to the Central System (OCPP 1.6 and its Security Whitepaper).
CHARGE_POINT_INITIATED: frozenset[str] = frozenset(
    {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
    }
)

# Actions the Central System sends to a charge point. DataTransfer goes both ways.
CENTRAL_SYSTEM_INITIATED: frozenset[str] = frozenset(
    {
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "InstallCertificate",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "SignedUpdateFirmware",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)

ALL_ACTIONS: frozenset[str] = CHARGE_POINT_INITIATED | CENTRAL_SYSTEM_INITIATED


def schema_dir() -> Path:
    """The folder holding the official schema files.

    An installed wheel carries them inside the package (``voltaro/_schemas``); a source
    checkout (editable install, tests) reads the project's top-level ``schemas/``.
    """
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_schemas", package.parent / "schemas"):
        if (candidate / "Heartbeat.json").is_file():
            return candidate
    raise FileNotFoundError(f"OCPP 1.6 schemas not found next to {package}")


def schema_file(action: str, direction: Direction) -> Path:
    suffix = "Response" if direction is Direction.RESPONSE else ""
    return schema_dir() / f"{action}{suffix}.json"
