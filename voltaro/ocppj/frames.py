"""OCPP-J frames: decode a text message into a Call, CallResult or CallError; encode them back.

Pure functions, no I/O. Decoding never raises anything but :class:`FrameError`, which carries
the error code to answer with and, when it could be read, the message id to answer to.

    [2, "<id>", "<Action>", {payload}]                        CALL
    [3, "<id>", {payload}]                                    CALLRESULT
    [4, "<id>", "<errorCode>", "<description>", {details}]    CALLERROR
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from voltaro.ocppj.errors import ErrorCode

CALL = 2
CALL_RESULT = 3
CALL_ERROR = 4

MAX_MESSAGE_ID_LENGTH = 36

# How deep a frame's arrays and objects may nest (the frame itself is level 1). The deepest
# OCPP 1.6 frame (SetChargingProfile's schedule periods) nests 6 levels; past ~254 levels
# orjson cannot encode a value again and the schema validator gives up with an exception,
# so a limit here, where every frame comes in, keeps such values out of everything after.
MAX_NESTING = 32

# The id used to answer a frame whose own id could not be read (as OCPP 2.0.1 prescribes;
# OCPP 1.6 is silent, and an answer the charger can log beats silence).
UNKNOWN_MESSAGE_ID = "-1"

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    message_id: str
    action: str
    payload: Payload


@dataclass(frozen=True, slots=True)
class CallResult:
    message_id: str
    payload: Payload


@dataclass(frozen=True, slots=True)
class CallError:
    message_id: str
    error_code: str
    description: str
    details: Payload = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A well-formed array whose message type number is not 2, 3 or 4: ignored by the spec."""

    message_type: object


Frame = Call | CallResult | CallError


class FrameError(Exception):
    """A frame that cannot be processed.

    ``message_id`` is the id to answer to, or None when it could not be read; ``message_type``
    is the frame's type number when it could be read, so the caller can tell a broken CALL
    (answered with a CALLERROR) from a broken CALLRESULT or CALLERROR (never answered).
    """

    def __init__(
        self,
        code: ErrorCode,
        description: str,
        *,
        message_id: str | None = None,
        message_type: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.message_id = message_id
        self.message_type = message_type

    @property
    def answerable(self) -> bool:
        """Whether OCPP-J lets us answer with a CALLERROR (never to a CALLRESULT/CALLERROR)."""
        return self.message_type not in (CALL_RESULT, CALL_ERROR)


_EXPECTED_LENGTH = {CALL: 4, CALL_RESULT: 3, CALL_ERROR: 5}


def decode(text: str | bytes) -> Frame | UnknownFrame:
    """Parse one WebSocket text message into a frame, or raise :class:`FrameError`."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError(ErrorCode.FORMATION_VIOLATION, f"frame is not valid JSON: {exc}") from None
    if not isinstance(message, list):
        raise FrameError(
            ErrorCode.FORMATION_VIOLATION,
            f"frame must be a JSON array, got {_json_type(message)}",
        )
    if not message or type(message[0]) is not int:
        raise FrameError(
            ErrorCode.FORMATION_VIOLATION,
            "frame must start with the message type number (2, 3 or 4)",
            message_id=_readable_id(message),
        )
    message_type = message[0]
    if message_type not in _EXPECTED_LENGTH:
        return UnknownFrame(message_type)
    if _may_nest_deeper(text) and nested_deeper_than(message, MAX_NESTING):
        raise FrameError(
            ErrorCode.FORMATION_VIOLATION,
            f"frame nests arrays and objects more than {MAX_NESTING} levels deep",
            message_id=_readable_id(message),
            message_type=message_type,
        )
    message_id = _message_id(message, message_type)
    _check_length(message, message_type, message_id)
    if message_type == CALL:
        return _call(message, message_id)
    if message_type == CALL_RESULT:
        return CallResult(message_id, _payload(message[2], message_id, message_type, "payload"))
    return _call_error(message, message_id)


def _may_nest_deeper(text: str | bytes) -> bool:
    """False when the frame has too few brackets to nest past the limit: the check most
    frames get (a 10-value MeterValues has 15), counted in C without walking anything."""
    if isinstance(text, str):
        return text.count("[") + text.count("{") > MAX_NESTING
    return text.count(b"[") + text.count(b"{") > MAX_NESTING


def nested_deeper_than(value: object, limit: int) -> bool:
    """Whether the arrays and objects in a decoded JSON ``value`` nest more than ``limit``
    levels (``value`` itself is level 1). Walks level by level, containers only, without
    recursion, so no depth can make it fail."""
    level: list[dict[Any, Any] | list[Any]] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        inner: list[dict[Any, Any] | list[Any]] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            inner.extend(item for item in items if isinstance(item, dict | list))
        level = inner
    return False


def _readable_id(message: list[Any]) -> str | None:
    """The message id when the second element is a string we may echo back."""
    if len(message) > 1 and isinstance(message[1], str) and message[1]:
        return message[1][:MAX_MESSAGE_ID_LENGTH]
    return None


def _message_id(message: list[Any], message_type: int) -> str:
    if len(message) < 2 or not isinstance(message[1], str):
        raise FrameError(
            ErrorCode.FORMATION_VIOLATION,
            "the message id (second element) must be a string",
            message_type=message_type,
        )
    message_id: str = message[1]
    if not message_id:
        raise FrameError(
            ErrorCode.FORMATION_VIOLATION,
            "the message id must not be empty",
            message_type=message_type,
        )
    if len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise FrameError(
            ErrorCode.FORMATION_VIOLATION,
            f"the message id is {len(message_id)} characters long; "
            f"OCPP-J allows at most {MAX_MESSAGE_ID_LENGTH}",
            message_id=message_id,
            message_type=message_type,
        )
    return message_id


def _check_length(message: list[Any], message_type: int, message_id: str) -> None:
    expected = _EXPECTED_LENGTH[message_type]
    if len(message) == expected:
        return
    kind = {CALL: "CALL", CALL_RESULT: "CALLRESULT", CALL_ERROR: "CALLERROR"}[message_type]
    # A CALL cut short is missing its payload: "incomplete" is ProtocolError in OCPP-J 1.6.
    code = (
        ErrorCode.PROTOCOL_ERROR
        if len(message) < expected and message_type == CALL
        else ErrorCode.FORMATION_VIOLATION
    )
    raise FrameError(
        code,
        f"a {kind} has {expected} elements, this frame has {len(message)}",
        message_id=message_id,
        message_type=message_type,
    )


def _call(message: list[Any], message_id: str) -> Call:
    action = message[2]
    if not isinstance(action, str) or not action:
        raise FrameError(
            ErrorCode.FORMATION_VIOLATION,
            "the action (third element of a CALL) must be a non-empty string",
            message_id=message_id,
            message_type=CALL,
        )
    return Call(message_id, action, _payload(message[3], message_id, CALL, "payload"))


def _call_error(message: list[Any], message_id: str) -> CallError:
    _, _, code, description, details = message
    if not isinstance(code, str) or not isinstance(description, str):
        raise FrameError(
            ErrorCode.FORMATION_VIOLATION,
            "errorCode and errorDescription of a CALLERROR must be strings",
            message_id=message_id,
            message_type=CALL_ERROR,
        )
    return CallError(
        message_id, code, description, _payload(details, message_id, CALL_ERROR, "errorDetails")
    )


def _payload(value: object, message_id: str, message_type: int, name: str) -> Payload:
    if not isinstance(value, dict):
        raise FrameError(
            ErrorCode.FORMATION_VIOLATION,
            f"the {name} must be a JSON object, got {_json_type(value)}",
            message_id=message_id,
            message_type=message_type,
        )
    return value


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def encode(frame: Frame) -> str:
    """The text message for a frame (compact JSON, UTF-8)."""
    return orjson.dumps(to_array(frame)).decode()


def to_array(frame: Frame) -> list[Any]:
    if isinstance(frame, Call):
        return [CALL, frame.message_id, frame.action, frame.payload]
    if isinstance(frame, CallResult):
        return [CALL_RESULT, frame.message_id, frame.payload]
    return [CALL_ERROR, frame.message_id, frame.error_code, frame.description, frame.details]
