"""Timestamps on the wire: read RFC 3339 (any offset) into UTC, write UTC with milliseconds.

Why our own parser: ``datetime.fromisoformat`` also accepts forms OCPP does not use (dates
alone, ISO basic format) and the schema's ``format: date-time`` check may not catch an
impossible date such as February 30, which must be answered PropertyConstraintViolation.

Which times Voltaro accepts, from chargers and operators alike: from 1970-01-01T00:00:00Z
(a charger whose clock was never set says 1970) to 9999-12-31T23:59:59Z. Outside that,
Python, PostgreSQL (which turns the edges into ``-infinity``/``infinity``) and browsers
disagree about what the time is, and no charger means it: such a time is refused with
PropertyConstraintViolation (the admin API: HTTP 400), so nothing stored can be unreadable.
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


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
ACCEPTED_RANGE = "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"


class BadTimestamp(ValueError):
    """A time Voltaro does not accept; the message says why."""


def parse_timestamp(text: str, field: str) -> datetime:
    """``text`` as an aware UTC datetime; raises OcppError(PropertyConstraintViolation)."""
    try:
        return read_timestamp(text)
    except BadTimestamp as why:
        raise OcppError(
            ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
            f"{field} is not a valid date-time: {why}",
            {"field": field, "value": text},
        ) from None


def read_timestamp(text: str) -> datetime:
    """``text`` as an aware UTC datetime within the accepted range; raises BadTimestamp.

    Accepted: RFC 3339 date-times with ``Z`` or an offset (normalised to UTC), any number
    of fractional digits (kept to the microsecond), a leap second (read as .999999 of the
    59th). A missing offset is read as UTC: a strict validator rejects it before it gets
    here, and a lenient one let it through on purpose.
    """
    match = _RFC3339.match(text)
    if match is None:
        raise BadTimestamp("not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction = match[7] or ""
    microsecond = int((fraction + "000000")[:6])
    if second == 60:  # leap second: Python has no 23:59:60
        second, microsecond = 59, 999_999
    zone = UTC
    if match[9]:
        offset = timedelta(hours=int(match[10]), minutes=int(match[11]))
        if offset >= timedelta(hours=24):
            raise BadTimestamp("offset out of range")
        zone = timezone(-offset if match[9] == "-" else offset)
    try:
        value = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)
    except ValueError as exc:
        raise BadTimestamp(str(exc)) from None
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # before year 1 or after 9999 in UTC
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise BadTimestamp(f"outside the times Voltaro accepts ({ACCEPTED_RANGE})")
    return utc


def format_timestamp(value: datetime) -> str:
    """``2024-05-01T12:00:00.000Z``: UTC, milliseconds, ``Z``."""
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"
