"""The OCPP 1.6 Remote Trigger profile: ``TriggerMessage``, asking a charger to send one of
its messages now. The triggered messages themselves are handled where they always are: Core
(BootNotification, Heartbeat, MeterValues, outside a transaction too, StatusNotification)
and Firmware Management (DiagnosticsStatusNotification, FirmwareStatusNotification).

``connectorId`` is optional: without it a MeterValues or StatusNotification is asked of the
whole charger (the charger chooses), with it of that connector (0 is the charger itself);
a negative one is refused before anything is sent.
"""

from __future__ import annotations

from voltaro.central.commands import InvalidCommand
from voltaro.central.domain import Domain
from voltaro.central.profile import Command, Field, Payload, Profile
from voltaro.ocppj.errors import ErrorCode
from voltaro.ocppj.validation import Violation

TRIGGERABLE = (
    "StatusNotification",
    "BootNotification",
    "Heartbeat",
    "MeterValues",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
)
INT32_MAX = 2**31 - 1


async def check_connector(domain: Domain, charge_point_id: str, request: Payload) -> Payload:
    connector_id = request.get("connectorId")
    if connector_id is not None and not 0 <= connector_id <= INT32_MAX:
        path = "$.connectorId"
        message = f"{path}: must be between 0 (the charger itself) and {INT32_MAX}"
        violation = Violation(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, path, message)
        raise InvalidCommand("TriggerMessage", violation)
    return request


REMOTE_TRIGGER = Profile(
    name="RemoteTrigger",
    inbound={},
    commands=(
        Command(
            "TriggerMessage",
            "Ask the charger to send one of its messages now",
            (
                Field("requestedMessage", "Message", "select", TRIGGERABLE, True),
                Field("connectorId", "Connector (optional)", "int"),
            ),
            prepare=check_connector,
        ),
    ),
)
