"""Operator commands: an OCPP CALL to a connected charge point, and what its answer changes.

The body is validated against the action's official request schema before anything is
sent; the charger's answer decides the HTTP status (see :func:`send_command`). Every frame
goes through the endpoint's hooks into the message log; known configuration is updated from
GetConfiguration results and accepted ChangeConfiguration commands. An accepted new
``AuthorizationKey`` becomes the charge point's Basic-auth password (its hash is stored); the
key itself is redacted wherever it would be shown or logged.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from voltaro.admin.spec import Problem, bad_request, not_found
from voltaro.central.redaction import is_secret, redacted
from voltaro.central.timestamps import utc_now
from voltaro.ocppj.actions import Direction
from voltaro.ocppj.dialect import OCPP16
from voltaro.ocppj.endpoint import (
    CallErrorReceived,
    CallTimeout,
    ConnectionLost,
    InvalidRequest,
    InvalidResponse,
)

if TYPE_CHECKING:
    from voltaro.app import Voltaro

log = logging.getLogger(__name__)

# The Central-System-initiated actions of the Core Profile, and TriggerMessage.
COMMAND_ACTIONS: tuple[str, ...] = (
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "DataTransfer",
    "GetConfiguration",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "Reset",
    "TriggerMessage",
    "UnlockConnector",
)
assert set(COMMAND_ACTIONS) <= OCPP16.central_system_initiated

MAX_TIMEOUT = 600.0  # seconds: the longest an operator may ask a command to wait


def check_action(action: str) -> None:
    if action not in COMMAND_ACTIONS:
        if action in OCPP16.central_system_initiated:
            why = "is not a command of this API"
        else:
            why = "is not an action the Central System sends to a charge point"
        raise bad_request(
            f"{action!r} {why}; commands: {', '.join(COMMAND_ACTIONS)}", path="action"
        )


async def send_command(
    voltaro: Voltaro, charge_point_id: str, action: str, payload: object, timeout: float | None
) -> dict[str, Any]:
    """Send ``action`` to the charge point; returns ``{"result": <CALLRESULT payload>}``.

    Raises :class:`Problem`: 400 (action or body invalid), 404 (unknown charge point), 409
    (not connected, or the connection closed before the answer), 502 (CALLERROR, or an
    answer that broke its schema), 504 (no answer within ``timeout``).
    """
    check_action(action)
    violation = voltaro.registry.validate(action, Direction.REQUEST, payload)
    if violation is not None:
        raise bad_request(
            f"{action} body: {violation.message}", path=violation.path, code=str(violation.code)
        )
    assert isinstance(payload, dict)
    store = voltaro.central.store
    if await store.charge_points.get(charge_point_id) is None:
        raise not_found(f"charge point {charge_point_id!r} is not known")
    endpoint = voltaro.endpoints.get(charge_point_id)
    if endpoint is None:
        detail = f"charge point {charge_point_id!r} is not connected"
        _log_outcome(voltaro, charge_point_id, action, "not connected", detail)
        raise Problem(409, "Conflict", detail)
    wait = voltaro.settings.call_timeout if timeout is None else timeout
    try:
        result = await endpoint.call(action, payload, timeout=wait)
    except InvalidRequest as error:  # validated above; kept for safety
        raise bad_request(str(error), path=error.violation.path) from None
    except CallTimeout:
        detail = f"charge point {charge_point_id!r} did not answer {action} within {wait:g} s"
        _log_outcome(voltaro, charge_point_id, action, "timeout", detail)
        raise Problem(504, "Gateway Timeout", detail) from None
    except CallErrorReceived as error:
        raise Problem(
            502,
            "Bad Gateway",
            f"charge point {charge_point_id!r} answered {action} with CALLERROR {error.code}: "
            f"{error.description}",
            code=error.code,
            description=error.description,
            details=error.details,
        ) from None
    except InvalidResponse as error:
        raise Problem(
            502,
            "Bad Gateway",
            f"charge point {charge_point_id!r} answered {action} with an invalid CALLRESULT: "
            f"{error.violation.message}",
            path=error.violation.path,
        ) from None
    except ConnectionLost:
        detail = f"charge point {charge_point_id!r} disconnected before answering {action}"
        _log_outcome(voltaro, charge_point_id, action, "disconnected", detail)
        raise Problem(409, "Conflict", detail) from None
    await _record_effects(voltaro, charge_point_id, action, payload, result)
    return {"result": result}


def _log_outcome(
    voltaro: Voltaro, charge_point_id: str, action: str, outcome: str, detail: str
) -> None:
    """Record in the message log how a command ended when no frame of the charger's says it
    (a CALLRESULT or CALLERROR is logged as the frame itself): an entry in the direction of
    the answer that never came, with no message id and the outcome as its payload."""
    voltaro.central.log_frame(
        charge_point_id, "in", None, action, {"outcome": outcome, "description": detail}
    )


def timeout_value(value: float | None) -> float | None:
    if value is not None and not (0 < value <= MAX_TIMEOUT and math.isfinite(value)):
        raise bad_request(f"timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    return value


async def _record_effects(
    voltaro: Voltaro,
    charge_point_id: str,
    action: str,
    payload: dict[str, Any],
    result: dict[str, Any],
) -> None:
    admin = voltaro.central.store.admin
    now = utc_now()
    if action == "GetConfiguration":
        keys = [
            (str(item["key"]), item.get("value"), item.get("readonly"))
            for item in redacted(action, result).get("configurationKey", [])
        ]
        await admin.replace_configuration(
            charge_point_id, keys, now, complete=not payload.get("key")
        )
    elif action == "ChangeConfiguration" and result.get("status") in (
        "Accepted",
        "RebootRequired",
    ):
        key, value = str(payload["key"]), str(payload["value"])
        if is_secret(key):  # the charger's new password: keep its hash, show nothing
            await voltaro.central.authorization_key_changed(charge_point_id, value)
        await admin.set_configuration_value(
            charge_point_id, key, redacted(action, payload)["value"], now
        )
