"""The OCPP-J RPC rules of one connection, as a pure state object: messages in, events out.

:class:`RpcState` holds what OCPP-J makes a connection remember (the peer's CALLs in
progress and waiting, our one outstanding CALL, the ids in use) and decides what each
inbound message is; it does no I/O, knows no trio and reads no clock. The driver
(:class:`voltaro.ocppj.endpoint.RpcEndpoint`) reads, sends, runs handlers and times out our
calls, and reports back what it did (:meth:`RpcState.answered`, :meth:`RpcState.end_call`,
:meth:`RpcState.close`). What is particular to an OCPP version (its actions, the spelling
of error codes) comes from the :class:`~voltaro.ocppj.dialect.Dialect` it is given.

The rules, all in :data:`RULES` below, in the order a message is told apart:

=======================  =====================================  ====================  ========
case                     the message                            event                 answer
=======================  =====================================  ====================  ========
``UNREADABLE``           not a frame (not JSON, not an array,   ``BadFrame``          now
                         bad id, wrong length, payload not an
                         object, nested too deep, binary)
``UNREADABLE_ANSWER``    ... recognisably a CALLRESULT or       ``BadFrame``          never
                         CALLERROR
``BROKEN_ANSWER``        ... and with our outstanding CALL's    ``BrokenAnswer``      never
                         id: our call fails (InvalidResponse)
``UNKNOWN_TYPE``         message type number not 2, 3 or 4      ``FrameIgnored``      never
``ID_IN_USE``            CALL whose id is a CALL in progress    ``CallRefused``       now
``QUEUE_FULL``           CALL while too many wait               ``CallRefused``       now
``UNKNOWN_ACTION``       CALL of an action not in the dialect   ``CallReceived``      in turn
``NOT_HANDLED``          CALL of an action with no handler      ``CallReceived``      in turn
``CALL``                 any other CALL: the driver validates   ``CallReceived``      in turn
                         it and runs its handler
``ANSWER``               CALLRESULT/CALLERROR to our            ``AnswerReceived``    never
                         outstanding CALL
``STRAY_ANSWER``         any other CALLRESULT/CALLERROR         ``AnswerDropped``     never
=======================  =====================================  ====================  ========

"now" is before any CALL waiting; "in turn" is after every CALL that arrived before it
has been answered. Which error code each answer carries is the ``code`` column of
:data:`RULES`; an unreadable frame's code is the decoder's (:mod:`voltaro.ocppj.frames`:
FormationViolation, or ProtocolError for a CALL cut short). The answers a handler's CALL
gets (schema violation, the handler's own :class:`~voltaro.ocppj.errors.OcppError`,
InternalError) are the driver's: :meth:`voltaro.ocppj.endpoint.RpcEndpoint._answer`.

Our own CALLs: at most one is outstanding (:meth:`RpcState.start_call` refuses a second
with :class:`LocalProtocolError`, as it refuses any after :meth:`RpcState.close`); it is
over at its first answer, a broken answer, or when the driver gives up on it
(:meth:`RpcState.end_call`). A later answer with its id is a stray.

The peer's CALLs: OCPP-J allows one outstanding, so only a misbehaving peer queues. The one
being answered does not count; besides it at most :data:`MAX_QUEUED_CALLS` wait, and (when
more than one waits) at most :data:`MAX_QUEUED_BYTES` of them.
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from collections.abc import Container
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from voltaro.ocppj.dialect import OCPP16, Dialect
from voltaro.ocppj.errors import ErrorCode
from voltaro.ocppj.frames import (
    CALL,
    CALL_ERROR,
    CALL_RESULT,
    UNKNOWN_MESSAGE_ID,
    Call,
    CallError,
    CallResult,
    FrameError,
    Payload,
    UnknownFrame,
    decode,
)
from voltaro.ocppj.rpc_events import (
    AnswerDropped,
    AnswerReceived,
    BadFrame,
    BrokenAnswer,
    CallReceived,
    CallRefused,
    Event,
    FrameIgnored,
)

__all__ = [
    "MAX_QUEUED_BYTES",
    "MAX_QUEUED_CALLS",
    "RULES",
    "Case",
    "LocalProtocolError",
    "OutstandingCall",
    "RpcState",
    "Rule",
    "wire_size",
]

# CALLs waiting besides the one being answered. The bounds keep a peer that pipelines from
# growing our memory: 16 frames of 64 KiB would otherwise be a MiB per connection.
MAX_QUEUED_CALLS = 16
MAX_QUEUED_BYTES = 128 * 1024


class Case(Enum):
    """What an inbound message is, as far as OCPP-J cares (see the module's table)."""

    UNREADABLE = "unreadable"
    UNREADABLE_ANSWER = "unreadable answer"
    BROKEN_ANSWER = "broken answer"
    UNKNOWN_TYPE = "unknown type"
    ID_IN_USE = "id in use"
    QUEUE_FULL = "queue full"
    UNKNOWN_ACTION = "unknown action"
    NOT_HANDLED = "not handled"
    CALL = "call"
    ANSWER = "answer"
    STRAY_ANSWER = "stray answer"


@dataclass(frozen=True, slots=True)
class Rule:
    event: type[Event]
    answer: Literal["now", "in turn", "never"]
    code: ErrorCode | None
    """The CALLERROR's code when this rule answers with one; None: the decoder's (for an
    unreadable frame), the handler's, or no answer."""


RULES: Final[dict[Case, Rule]] = {
    Case.UNREADABLE: Rule(BadFrame, "now", None),
    Case.UNREADABLE_ANSWER: Rule(BadFrame, "never", None),
    Case.BROKEN_ANSWER: Rule(BrokenAnswer, "never", None),
    Case.UNKNOWN_TYPE: Rule(FrameIgnored, "never", None),
    Case.ID_IN_USE: Rule(CallRefused, "now", ErrorCode.PROTOCOL_ERROR),
    Case.QUEUE_FULL: Rule(CallRefused, "now", ErrorCode.PROTOCOL_ERROR),
    Case.UNKNOWN_ACTION: Rule(CallReceived, "in turn", ErrorCode.NOT_IMPLEMENTED),
    Case.NOT_HANDLED: Rule(CallReceived, "in turn", ErrorCode.NOT_SUPPORTED),
    Case.CALL: Rule(CallReceived, "in turn", None),
    Case.ANSWER: Rule(AnswerReceived, "never", None),
    Case.STRAY_ANSWER: Rule(AnswerDropped, "never", None),
}

# A binary WebSocket message is refused like any unreadable frame, with this code.
_BINARY_CODE = ErrorCode.FORMATION_VIOLATION


class LocalProtocolError(Exception):
    """The driver asked for something OCPP-J forbids (a second outstanding CALL, a CALL
    after the connection closed): a bug in the driver, never the peer's doing."""


@dataclass(frozen=True, slots=True)
class OutstandingCall:
    """Our CALL waiting for its answer."""

    message_id: str
    action: str


class RpcState:
    """The OCPP-J state of one connection, both directions.

    ``handled`` answers ``action in handled`` for the actions the peer's CALLs are handled
    for (a handler table, typically). ``id_prefix`` starts the ids of our CALLs (default:
    random, so ids are unique across connections too; a counter makes them unique within).
    """

    __slots__ = (
        "_actions",
        "_closed",
        "_handled",
        "_id_counter",
        "_id_prefix",
        "_in_progress",
        "_outstanding",
        "_waiting",
        "_waiting_bytes",
        "_working",
        "dialect",
    )

    def __init__(
        self,
        handled: Container[str],
        *,
        dialect: Dialect = OCPP16,
        id_prefix: str | None = None,
    ) -> None:
        self.dialect = dialect
        self._actions = dialect.actions
        self._handled = handled
        # a uuid4 per call cost 2 µs, a noticeable share of a simulated charger
        # made at our first CALL: most connections never get one, and a random prefix per
        # connection was 4% of the server's time per handshake (benchmark (h))
        self._id_prefix = id_prefix
        self._id_counter: itertools.count[int] | None = None
        self._outstanding: OutstandingCall | None = None
        # ids of the peer's CALLs not yet answered (made when one arrives: an empty set is
        # ~0.2 KiB, and an idle connection holds none)
        self._in_progress: set[str] | None = None
        self._working = False  # one of the peer's CALLs is being answered
        # sizes of those waiting behind it, in order (made when one waits: an idle
        # connection holds no deque)
        self._waiting: deque[int] | None = None
        self._waiting_bytes = 0
        self._closed = False

    # -- inbound --------------------------------------------------------------------------

    def receive(self, message: str | bytes) -> Event:
        """What one inbound WebSocket message is: exactly one event, state updated."""
        try:
            frame = decode(message)
            if isinstance(message, bytes):
                raise FrameError(
                    _BINARY_CODE,
                    "binary WebSocket frames are not OCPP-J; send JSON as a text frame",
                    message_id=frame.message_id if isinstance(frame, Call) else None,
                    message_type=CALL if isinstance(frame, Call) else None,
                )
        except FrameError as error:
            return self._unreadable(error)
        if isinstance(frame, Call):
            return self._call(frame, wire_size(message))
        if isinstance(frame, UnknownFrame):
            return FrameIgnored(frame.message_type)
        return self._answer(frame, wire_size(message))

    def _unreadable(self, error: FrameError) -> Event:
        if error.message_type not in (CALL_RESULT, CALL_ERROR):  # Case.UNREADABLE
            answer = CallError(
                error.message_id or UNKNOWN_MESSAGE_ID,
                self.dialect.spelling(error.code),
                error.description,
            )
            return BadFrame(error, answer)
        outstanding = self._outstanding
        if outstanding is not None and error.message_id == outstanding.message_id:
            self._outstanding = None  # Case.BROKEN_ANSWER
            return BrokenAnswer(error, outstanding.action)
        return BadFrame(error, None)  # Case.UNREADABLE_ANSWER

    def _call(self, call: Call, size: int) -> Event:
        message_id = call.message_id
        in_progress = self._in_progress
        if in_progress is not None and message_id in in_progress:
            return self._refuse(
                call,
                size,
                Case.ID_IN_USE,
                f"message id {message_id!r} is already in use by a CALL still in progress",
            )
        if self._working:
            waiting = self._waiting_bytes
            if self._waiting is None:
                self._waiting = deque()
            if len(self._waiting) >= MAX_QUEUED_CALLS or (
                waiting and waiting + size > MAX_QUEUED_BYTES
            ):
                return self._refuse(
                    call,
                    size,
                    Case.QUEUE_FULL,
                    f"too many CALLs unanswered (at most {MAX_QUEUED_CALLS} or "
                    f"{MAX_QUEUED_BYTES} bytes wait); OCPP-J allows one outstanding CALL",
                )
            self._waiting.append(size)
            self._waiting_bytes = waiting + size
        else:
            self._working = True
        if in_progress is None:
            self._in_progress = in_progress = set()
        in_progress.add(message_id)
        return CallReceived(call, size)

    def _refuse(self, call: Call, size: int, case: Case, description: str) -> CallRefused:
        return CallRefused(call, size, self._error(call, case, description))

    def refusal(self, call: Call) -> CallError | None:
        """The answer a received CALL gets in its turn without a handler: NotImplemented
        for an action the dialect does not have, NotSupported for one nobody handles; None
        when its handler is to answer it."""
        action = call.action
        if action not in self._actions:
            return self._error(call, Case.UNKNOWN_ACTION, f"unknown action {action!r}")
        if action not in self._handled:
            return self._error(call, Case.NOT_HANDLED, f"{action} is not supported by this server")
        return None

    def answered(self, received: CallReceived) -> None:
        """The driver sent the answer to ``received`` (or gave up on it): its id is free,
        and the next waiting CALL is the one being answered."""
        if self._waiting:
            self._waiting_bytes -= self._waiting.popleft()
            if self._in_progress is not None:
                self._in_progress.discard(received.call.message_id)
        else:  # nothing in progress any more
            self._working = False
            self._waiting = None
            self._in_progress = None

    def _answer(self, answer: CallResult | CallError, size: int) -> Event:
        outstanding = self._outstanding
        if outstanding is not None and outstanding.message_id == answer.message_id:
            self._outstanding = None  # Case.ANSWER: the first answer ends the call
            return AnswerReceived(answer, outstanding.action, size)
        return AnswerDropped(answer, size)  # Case.STRAY_ANSWER

    def _error(self, call: Call, case: Case, description: str) -> CallError:
        code = RULES[case].code
        assert code is not None, case
        return CallError(call.message_id, self.dialect.spelling(code), description)

    # -- outbound -------------------------------------------------------------------------

    @property
    def outstanding(self) -> OutstandingCall | None:
        """Our CALL waiting for its answer, if any."""
        return self._outstanding

    @property
    def closed(self) -> bool:
        return self._closed

    def start_call(self, action: str, payload: Payload) -> Call:
        """Our next CALL, with a fresh message id; it is outstanding until it is answered
        or :meth:`end_call`. Raises :class:`LocalProtocolError` when one already is, or
        after :meth:`close`."""
        if self._closed:
            raise LocalProtocolError(f"{action}: the connection is closed")
        if self._outstanding is not None:
            raise LocalProtocolError(
                f"{action}: {self._outstanding.action} is still outstanding; "
                "OCPP-J allows one outstanding CALL"
            )
        if self._id_prefix is None:
            self._id_prefix = secrets.token_hex(8)
        if self._id_counter is None:
            self._id_counter = itertools.count(1)
        call = Call(f"{self._id_prefix}-{next(self._id_counter)}", action, payload)
        self._outstanding = OutstandingCall(call.message_id, action)
        return call

    def end_call(self, message_id: str) -> None:
        """The driver stopped waiting for the answer to CALL ``message_id`` (answered,
        timed out, cancelled): an answer arriving later is a stray. Idempotent."""
        if self._outstanding is not None and self._outstanding.message_id == message_id:
            self._outstanding = None

    def close(self) -> OutstandingCall | None:
        """The connection is gone: no CALL of ours may start. Returns the one outstanding,
        which will never be answered."""
        self._closed = True
        outstanding, self._outstanding = self._outstanding, None
        return outstanding


def wire_size(message: str | bytes) -> int:
    """Bytes of a message on the wire (UTF-8); an ASCII text's length, found in O(1)."""
    if isinstance(message, bytes) or message.isascii():
        return len(message)
    return len(message.encode("utf-8", "surrogatepass"))
