"""OCPP-J 1.6 error codes, with the spellings frozen by the 1.6 errata."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The CALLERROR codes of OCPP-J 1.6 section 4.2.3.

    The 1.6 spellings are what Voltaro sends (note ``OccurenceConstraintViolation`` with one
    ``r`` and ``FormationViolation``); the 2.0.1 spellings are accepted on receipt through
    :func:`parse_error_code`.
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


# Spellings a peer may send that mean one of our codes (OCPP 2.0.1 renamed two of them).
_ALIASES: dict[str, ErrorCode] = {
    "FormatViolation": ErrorCode.FORMATION_VIOLATION,
    "OccurrenceConstraintViolation": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
}


def parse_error_code(text: str) -> ErrorCode | None:
    """The ErrorCode a received CALLERROR names, or None when it names none we know."""
    try:
        return ErrorCode(text)
    except ValueError:
        return _ALIASES.get(text)


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
