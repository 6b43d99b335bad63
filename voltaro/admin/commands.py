"""Operator commands over HTTP: the domain's outcomes as HTTP statuses, and nothing else.

Sending, validating and applying a command's effects is the central system's
(:mod:`voltaro.central.commands`); this module maps what can happen to problem documents:

==========================  ======  ========================================
outcome                     status  problem fields
==========================  ======  ========================================
the charger's CALLRESULT    200     ``{"result": ...}``
UnknownCommand              400     ``path: action``
InvalidCommand              400     ``path``, ``code`` (the schema's words)
UnknownChargePoint          404
NotConnected, Disconnected  409
CallErrorAnswer             502     ``code``, ``description``, ``details``
InvalidAnswer               502     ``path``
NoAnswer                    504
==========================  ======  ========================================
"""

from __future__ import annotations

import math
from typing import Any

from voltaro.admin.spec import Problem, bad_request, not_found
from voltaro.central.commands import (
    CallErrorAnswer,
    CommandFailed,
    Disconnected,
    InvalidAnswer,
    InvalidCommand,
    NoAnswer,
    NotConnected,
    UnknownChargePoint,
    UnknownCommand,
)
from voltaro.central.operations import Operations

MAX_TIMEOUT = 600.0  # seconds: the longest an operator may ask a command to wait


def problem_of(failure: CommandFailed) -> Problem:
    """The problem document an outcome other than a result is answered with."""
    detail = str(failure)
    if isinstance(failure, UnknownCommand):
        return bad_request(detail, path="action")
    if isinstance(failure, InvalidCommand):
        violation = failure.violation
        return bad_request(detail, path=violation.path, code=str(violation.code))
    if isinstance(failure, UnknownChargePoint):
        return not_found(detail)
    if isinstance(failure, NotConnected | Disconnected):
        return Problem(409, "Conflict", detail)
    if isinstance(failure, CallErrorAnswer):
        return Problem(
            502,
            "Bad Gateway",
            detail,
            code=failure.code,
            description=failure.description,
            details=failure.details,
        )
    if isinstance(failure, InvalidAnswer):
        return Problem(502, "Bad Gateway", detail, path=failure.violation.path)
    if isinstance(failure, NoAnswer):
        return Problem(504, "Gateway Timeout", detail)
    return Problem(502, "Bad Gateway", detail)


async def send_command(
    operations: Operations,
    charge_point_id: str,
    action: str,
    payload: object,
    timeout: float | None,
) -> dict[str, Any]:
    """Send ``action``; ``{"result": <CALLRESULT payload>}`` or a :class:`Problem`. A
    command whose payload Voltaro completes also says what it put in: ``"allocated":
    {"reservationId": 17}``."""
    try:
        request, result = await operations.send_command(charge_point_id, action, payload, timeout)
    except CommandFailed as failure:
        raise problem_of(failure) from None
    command = operations.commands.get(action)
    allocated = (*command.allocates, *command.filled(payload))
    if allocated:
        return {"result": result, "allocated": {name: request[name] for name in allocated}}
    return {"result": result}


def command_payload(operations: Operations, action: str, inputs: dict[str, str]) -> Any:
    """The OCPP payload of a command form's text inputs (the schema check comes when the
    command is sent)."""
    try:
        command = operations.commands.get(action)
    except UnknownCommand as failure:
        raise problem_of(failure) from None
    try:
        return command.payload(inputs)
    except ValueError as error:
        message, field = error.args
        raise bad_request(message, path=field) from None


def timeout_value(value: float | None) -> float | None:
    if value is not None and not (0 < value <= MAX_TIMEOUT and math.isfinite(value)):
        raise bad_request(f"timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    return value
