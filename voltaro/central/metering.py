"""Meter values: the OCPP ``meterValue`` list as stored, and the transaction's energy
register.

Values are stored exactly as sent (fields omitted stay omitted). The energy register is
read by OCPP 1.6's defaults: a sampled value without ``measurand`` is
Energy.Active.Import.Register, without ``unit`` is Wh, without ``location`` is Outlet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from voltaro.central.timestamps import parse_timestamp
from voltaro.ocppj.frames import Payload
from voltaro.store.records import EnergyReading

ENERGY_REGISTER = "Energy.Active.Import.Register"
_UNIT_FACTOR = {"Wh": 1.0, "kWh": 1000.0}

# The largest register reading taken for a transaction's energy, in Wh: the range of
# meterStart and meterStop (stored as bigint). A reading beyond it (a value of "1e20") is
# stored as sent with its message but read as no reading at all, so no transaction's energy
# is a number that cannot be billed or written out.
MAX_READING_WH = float(2**63 - 1)


def content_digest(payload: dict[str, Any]) -> bytes:
    """What makes two MeterValues messages the same message: connector, transaction and the
    values with their timestamps, whatever the message id or key order."""
    content = [payload.get("connectorId"), payload.get("transactionId"), payload["meterValue"]]
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).digest()


def stored_meter_values(meter_values: Sequence[Payload], field: str) -> list[Payload]:
    """The ``meterValue`` list as stored: each timestamp checked (a bad one is the charger's
    error) and normalised to UTC; the sampled values as sent, so the database keeps them
    without Python taking them apart (~6% of the server's CPU under load when it did)."""
    return [
        {
            "timestamp": parse_timestamp(entry["timestamp"], f"{field}[{i}].timestamp"),
            "sampledValue": entry["sampledValue"],
        }
        for i, entry in enumerate(meter_values)
    ]


def energy_reading(transaction_id: int, meter_values: Sequence[Payload]) -> EnergyReading | None:
    """The latest total (no phase) active import register at the outlet, in Wh, from stored
    ``meter_values``; None if they hold none (or none readable as a number in range)."""
    best: EnergyReading | None = None
    for entry in meter_values:
        at: datetime = entry["timestamp"]
        for sample in entry["sampledValue"]:
            get = sample.get
            if (get("measurand") or ENERGY_REGISTER) != ENERGY_REGISTER:
                continue
            if get("phase") is not None:
                continue
            if (get("location") or "Outlet") != "Outlet" or (get("format") or "Raw") != "Raw":
                continue
            factor = _UNIT_FACTOR.get(get("unit") or "Wh")
            if factor is None:
                continue
            try:
                wh = float(sample["value"]) * factor
            except (TypeError, ValueError):
                continue
            if not -MAX_READING_WH <= wh <= MAX_READING_WH:  # also NaN and infinities
                continue
            if best is None or at >= best.at:
                best = EnergyReading(transaction_id, wh, at)
    return best
