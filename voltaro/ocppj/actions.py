"""Which way a payload goes: a CALL's (request) or a CALLRESULT's (response).

The actions themselves, which side sends each, and where their schemas are belong to a
dialect (:mod:`voltaro.ocppj.dialect`, e.g. ``OCPP16.charge_point_initiated``).
"""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    """Whose payload a schema describes: the CALL's (request) or the CALLRESULT's (response)."""

    REQUEST = "request"
    RESPONSE = "response"
