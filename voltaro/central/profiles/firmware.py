"""The charger-initiated messages of the OCPP 1.6 Firmware Management profile:
``DiagnosticsStatusNotification`` and ``FirmwareStatusNotification``.

A charger sends them on its own during an upload or an update, and when an operator asks
for them (TriggerMessage). Voltaro answers them (their answer is empty) and shows the
newest of each on the charge point's page and in its detail (``firmwareStatus``,
``diagnosticsStatus``, each with the time it came). The record is the message log, where
every frame goes: it keeps them as long as it keeps the charger's messages
(``VOLTARO_MESSAGE_LOG_RETENTION_DAYS`` and its size bounds). The profile's commands
(``UpdateFirmware``, ``GetDiagnostics``) and a status table of its own belong with them when
the rest of the profile comes.
"""

from __future__ import annotations

import logging
from typing import Any

from voltaro.central.domain import Charger, Domain
from voltaro.central.profile import Payload, Profile
from voltaro.central.timestamps import format_timestamp

log = logging.getLogger(__name__)

NOTIFICATIONS = {
    "firmwareStatus": "FirmwareStatusNotification",
    "diagnosticsStatus": "DiagnosticsStatusNotification",
}


async def diagnostics_status(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    log.info("charge point %s: diagnostics upload %s", charger.id, payload["status"])
    return {}


async def firmware_status(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    log.info("charge point %s: firmware %s", charger.id, payload["status"])
    return {}


async def status_facts(domain: Domain, charge_point_id: str) -> Payload:
    """The newest status of each notification, as the message log has it."""
    facts: Payload = {}
    for key, action in NOTIFICATIONS.items():
        found = await domain.store.message_log.latest(charge_point_id, action)
        status = None
        if found is not None and isinstance(found[1], dict):
            status = found[1].get("status")
        facts[key] = status
        facts[key + "At"] = None if found is None else format_timestamp(found[0])
    return facts


STATUS_SCHEMA = {"type": ["string", "null"]}
TIME_SCHEMA = {"type": ["string", "null"], "format": "date-time"}

FIRMWARE = Profile(
    name="FirmwareManagement",
    inbound={
        "DiagnosticsStatusNotification": diagnostics_status,
        "FirmwareStatusNotification": firmware_status,
    },
    charge_point_facts=status_facts,
    facts_schema={
        "firmwareStatus": STATUS_SCHEMA | {"title": "Firmware status"},
        "firmwareStatusAt": TIME_SCHEMA | {"title": "Firmware status since"},
        "diagnosticsStatus": STATUS_SCHEMA | {"title": "Diagnostics upload"},
        "diagnosticsStatusAt": TIME_SCHEMA | {"title": "Diagnostics upload since"},
    },
)
