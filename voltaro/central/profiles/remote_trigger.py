"""The OCPP 1.6 Remote Trigger profile: ``TriggerMessage``, asking a charger to send one of
its messages now. The triggered messages themselves are Core's to handle."""

from __future__ import annotations

from voltaro.central.profile import Command, Field, Profile

TRIGGERABLE = (
    "StatusNotification",
    "BootNotification",
    "Heartbeat",
    "MeterValues",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
)

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
        ),
    ),
)
