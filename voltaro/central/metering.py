"""Meter values: from the OCPP ``meterValue`` list to stored sampled values, and the
transaction's energy register.

Values are stored exactly as sent (fields omitted stay omitted). The energy register is
read by OCPP 1.6's defaults: a sampled value without ``measurand`` is
Energy.Active.Import.Register, without ``unit`` is Wh, without ``location`` is Outlet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from voltaro.central.timestamps import parse_timestamp
from voltaro.store.records import EnergyReading, SampledValue

ENERGY_REGISTER = "Energy.Active.Import.Register"
_UNIT_FACTOR = {"Wh": 1.0, "kWh": 1000.0}


def content_digest(payload: dict[str, Any]) -> bytes:
    """What makes two MeterValues messages the same message: connector, transaction and the
    values with their timestamps, whatever the message id or key order."""
    content = [payload.get("connectorId"), payload.get("transactionId"), payload["meterValue"]]
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).digest()


def sampled_values(meter_values: Sequence[dict[str, Any]], field: str) -> list[SampledValue]:
    """Flatten ``meterValue`` objects into one SampledValue per sampled value."""
    out: list[SampledValue] = []
    for i, meter_value in enumerate(meter_values):
        at = parse_timestamp(meter_value["timestamp"], f"{field}[{i}].timestamp")
        for sample in meter_value["sampledValue"]:
            get = sample.get
            # positional: ten per message, and keyword arguments cost twice as much here
            out.append(
                SampledValue(
                    at,
                    sample["value"],
                    get("context"),
                    get("format"),
                    get("measurand"),
                    get("phase"),
                    get("location"),
                    get("unit"),
                )
            )
    return out


def energy_reading(transaction_id: int, values: Sequence[SampledValue]) -> EnergyReading | None:
    """The latest total (no phase) active import register at the outlet, in Wh; None if the
    values hold none (or none readable as a number)."""
    best: EnergyReading | None = None
    for v in values:
        if (v.measurand or ENERGY_REGISTER) != ENERGY_REGISTER or v.phase is not None:
            continue
        if (v.location or "Outlet") != "Outlet" or (v.format or "Raw") != "Raw":
            continue
        factor = _UNIT_FACTOR.get(v.unit or "Wh")
        if factor is None:
            continue
        try:
            wh = float(v.value) * factor
        except ValueError:
            continue
        if wh != wh or wh in (float("inf"), float("-inf")):  # NaN or infinite
            continue
        if best is None or v.sampled_at >= best.at:
            best = EnergyReading(transaction_id, wh, v.sampled_at)
    return best
