"""OCPP-J error codes (what each means) and :class:`OcppError`, a handler's way to answer one.

How a code is spelled on the wire, sent and received, is the dialect's business
(:meth:`voltaro.ocppj.dialect.Dialect.spelling` and ``Dialect.parse_error_code``).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The CALLERROR codes of OCPP-J 1.6 section 4.2.3.

    The 1.6 spellings are what Voltaro sends (note ``OccurenceConstraintViolation`` with one
    ``r`` and ``FormationViolation``); the 2.0.1 spellings are accepted on receipt through
    ``OCPP16.parse_error_code`` (:mod:`voltaro.ocppj.dialect`).
    """

    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMATION_VIOLATION = "FormationViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURENCE_CONSTRAINT_VIOLATION = "OccurenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"


class OcppError(Exception):
    """Raised by a handler to answer the CALL with this CALLERROR instead of a CALLRESULT.

    ``description`` goes on the wire: say what was wrong in terms the charger's engineer
    understands, and never include internals.
    """

    def __init__(
        self, code: ErrorCode, description: str, details: dict[str, object] | None = None
    ) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details: dict[str, object] = details or {}
