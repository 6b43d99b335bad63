"""Timestamps on the wire: read RFC 3339 (any offset) into UTC, write UTC with milliseconds.

Why our own parser: ``datetime.fromisoformat`` also accepts forms OCPP does not use (dates
alone, ISO basic format) and the schema's ``format: date-time`` check may not catch an
impossible date such as February 30, which must be answered PropertyConstraintViolation.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from voltaro.ocppj.errors import ErrorCode, OcppError

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?$"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_timestamp(text: str, field: str) -> datetime:
    """``text`` as an aware UTC datetime; raises OcppError(PropertyConstraintViolation).

    Accepted: RFC 3339 date-times with ``Z`` or an offset (normalised to UTC), any number
    of fractional digits (kept to the microsecond), a leap second (read as .999999 of the
    59th). A missing offset is read as UTC: a strict validator rejects it before it gets
    here, and a lenient one let it through on purpose.
    """
    match = _RFC3339.match(text)
    if match is None:
        raise _invalid(field, text, "not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction = match[7] or ""
    microsecond = int((fraction + "000000")[:6])
    if second == 60:  # leap second: Python has no 23:59:60
        second, microsecond = 59, 999_999
    zone = UTC
    if match[9]:
        offset = timedelta(hours=int(match[10]), minutes=int(match[11]))
        if offset >= timedelta(hours=24):
            raise _invalid(field, text, "offset out of range")
        zone = timezone(-offset if match[9] == "-" else offset)
    try:
        value = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)
    except ValueError as exc:
        raise _invalid(field, text, str(exc)) from None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _invalid(field, text, "out of range") from None


def format_timestamp(value: datetime) -> str:
    """``2024-05-01T12:00:00.000Z``: UTC, milliseconds, ``Z``."""
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def _invalid(field: str, text: str, why: str) -> OcppError:
    return OcppError(
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        f"{field} is not a valid date-time: {why}",
        {"field": field, "value": text},
    )
