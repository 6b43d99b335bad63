"""What :meth:`voltaro.ocppj.rpc_state.RpcState.receive` makes of one inbound message.

Every text (or binary) message a peer sends becomes exactly one of these events; which one,
and what the driver must then do, is the rule table at the top of
:mod:`voltaro.ocppj.rpc_state`. They are frozen values: the state has already recorded
what they mean (an id now in use, a call waiting its turn, our CALL answered) by the time
the driver sees them.
"""

from __future__ import annotations

from dataclasses import dataclass

from voltaro.ocppj.frames import Call, CallError, CallResult, FrameError

__all__ = [
    "AnswerDropped",
    "AnswerReceived",
    "BadFrame",
    "BrokenAnswer",
    "CallReceived",
    "CallRefused",
    "Event",
    "FrameIgnored",
]


class Event:
    """Base class of the events an :class:`~voltaro.ocppj.rpc_state.RpcState` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class CallReceived(Event):
    """A CALL the peer may make: queued, to be answered in the order CALLs arrived.

    Its message id is in use until the driver reports the answer sent
    (:meth:`~voltaro.ocppj.rpc_state.RpcState.answered`). Whether it is answered by a
    handler or refused in turn (an unknown or unhandled action) is asked when its turn
    comes: :meth:`~voltaro.ocppj.rpc_state.RpcState.refusal`.
    """

    call: Call
    size: int
    """Bytes on the wire (UTF-8)."""


@dataclass(frozen=True, slots=True)
class CallRefused(Event):
    """A CALL refused on arrival, before the ones waiting: send ``answer`` now.

    The peer broke the one-outstanding-CALL rule: its id is that of a CALL still in
    progress, or too many CALLs already wait (``ProtocolError`` both).
    """

    call: Call
    size: int
    answer: CallError


@dataclass(frozen=True, slots=True)
class BadFrame(Event):
    """A message that is not a readable OCPP-J frame.

    ``answer`` is the CALLERROR to send now (FormationViolation, or ProtocolError for a
    CALL cut short; id ``-1`` when the frame's own id could not be read), or None when the
    frame was recognisably a CALLRESULT or CALLERROR: those are never answered, only
    dropped.
    """

    error: FrameError
    answer: CallError | None


@dataclass(frozen=True, slots=True)
class BrokenAnswer(Event):
    """An unreadable CALLRESULT/CALLERROR carrying the id of our outstanding CALL.

    Our call is over: it fails now (``InvalidResponse``) instead of waiting for its
    timeout. Nothing is sent.
    """

    error: FrameError
    action: str
    """The action of our CALL it answered."""


@dataclass(frozen=True, slots=True)
class FrameIgnored(Event):
    """A well-formed array whose message type number is not 2, 3 or 4: ignored (OCPP-J)."""

    message_type: object


@dataclass(frozen=True, slots=True)
class AnswerReceived(Event):
    """The answer to our outstanding CALL (the first one with its id; the call is over)."""

    answer: CallResult | CallError
    action: str
    """The action of our CALL it answers (the frame itself does not say)."""
    size: int


@dataclass(frozen=True, slots=True)
class AnswerDropped(Event):
    """A CALLRESULT/CALLERROR no CALL of ours waits for (a late answer, say): dropped."""

    answer: CallResult | CallError
    size: int
