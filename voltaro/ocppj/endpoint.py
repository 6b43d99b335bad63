"""The OCPP-J RPC endpoint on trio: one per connection, both directions at once.

A thin driver over :class:`voltaro.ocppj.rpc_state.RpcState`, which holds the OCPP-J rules
(what each inbound frame is and gets, the ids in use, the bounds on waiting CALLs, one
outstanding CALL of ours: the table at the top of :mod:`voltaro.ocppj.rpc_state`). Here is
only what needs trio or the outside world: reading and sending, the worker task, the call
lock, timeouts, running handlers and validating payloads, logging and the hooks.

Inbound CALLs are read by :meth:`RpcEndpoint.serve` and answered strictly in the order they
arrived by one worker task, while the reader keeps reading, so that

- a CALLRESULT for one of our own CALLs is picked up even while a handler of the charger's CALL
  is busy (calls that cross do not deadlock), and
- a second CALL reusing the id of one still in progress is seen and refused.

The worker is started when a CALL arrives and none is running, and ends once no CALL waits:
an idle connection holds no worker task. A waiting task with its coroutine frames cost each
idle charger ~1.7 KiB (tracemalloc over 2,000 idle chargers in a server). The price is paid
per CALL instead: starting a task costs ~4.5 µs more than waking a waiting one (13.1 against
8.8 µs for a round trip through trio's scheduler, measured alone), and workload (a) showed
it, ~3% more server CPU per message (cProfile of (a) against the worker that waited, and
three alternating pairs). Memory per idle charger is what a large fleet is bounded by, so
the worker stays short-lived.

Outbound calls go through :meth:`RpcEndpoint.call`: one outstanding CALL per connection, the
rest wait their turn in FIFO order (``trio.Lock`` is fair).

Error handling: nothing a peer sends can raise out of :meth:`serve`; every bad CALL gets the
CALLERROR of the OCPP-J table (:mod:`voltaro.ocppj.rpc_state`, then the schema's in
:meth:`RpcEndpoint._answer`), a bad CALLRESULT/CALLERROR is logged and dropped (when
its id shows it answers our outstanding CALL, that call fails at once with
:class:`InvalidResponse` instead of waiting for its timeout), and a handler's exception
becomes InternalError on the wire with the traceback in the log (a handler that means to
answer an error raises :class:`~voltaro.ocppj.errors.OcppError`: no traceback).

Frames are not logged here at DEBUG: the owner of the endpoint hears every frame through
:attr:`RpcHooks.on_frame` and knows what in it must not be written down (a charger's
password, say).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import trio

from voltaro.ocppj.actions import Direction
from voltaro.ocppj.dialect import OCPP16, Dialect
from voltaro.ocppj.errors import ErrorCode, OcppError
from voltaro.ocppj.frames import (
    Call,
    CallError,
    CallResult,
    Frame,
    FrameError,
    Payload,
    encode,
)
from voltaro.ocppj.rpc_events import (
    AnswerDropped,
    AnswerReceived,
    BadFrame,
    BrokenAnswer,
    CallReceived,
    CallRefused,
    FrameIgnored,
)
from voltaro.ocppj.rpc_state import MAX_QUEUED_BYTES, MAX_QUEUED_CALLS, RpcState, wire_size
from voltaro.ocppj.validation import CheckResult, Deviation, SchemaRegistry, Violation
from voltaro.ondemand import OnDemandLock

log = logging.getLogger("voltaro.ocppj")

Handler = Callable[[Payload], Awaitable[Payload]]
FrameDirection = Literal["in", "out"]


class ChannelClosed(Exception):
    """The connection under the endpoint is gone."""


class MessageChannel(Protocol):
    """What the endpoint needs of a transport: text in, text out."""

    async def receive(self) -> str | bytes:
        """The next message; raises :class:`ChannelClosed` when the connection is gone."""
        ...

    async def send(self, text: str) -> None:
        """Send one text message; raises :class:`ChannelClosed` when the connection is gone."""
        ...


class CallFailed(Exception):
    """An outbound call did not produce a valid CALLRESULT."""

    outcome = "failed"  # how RpcHooks.on_call names it


class CallTimeout(CallFailed):
    outcome = "timeout"

    def __init__(self, action: str, timeout: float) -> None:
        super().__init__(f"{action}: no answer from the charge point within {timeout:g} s")
        self.action = action
        self.timeout = timeout


class CallErrorReceived(CallFailed):
    """The charge point answered with a CALLERROR."""

    outcome = "error"

    def __init__(self, action: str, code: str, description: str, details: Payload) -> None:
        super().__init__(f"{action}: the charge point answered {code}: {description}")
        self.action = action
        self.code = code
        self.description = description
        self.details = details


class InvalidResponse(CallFailed):
    """The charge point's CALLRESULT broke the action's response schema."""

    outcome = "invalid"

    def __init__(self, action: str, violation: Violation) -> None:
        super().__init__(f"{action}: invalid CALLRESULT from the charge point: {violation.message}")
        self.action = action
        self.violation = violation


class InvalidRequest(CallFailed):
    """We were asked to send a CALL whose payload breaks the action's request schema."""

    def __init__(self, action: str, violation: Violation) -> None:
        super().__init__(f"{action}: payload rejected before sending: {violation.message}")
        self.action = action
        self.violation = violation


class ConnectionLost(CallFailed):
    outcome = "closed"

    def __init__(self, action: str) -> None:
        super().__init__(f"{action}: the connection closed before the charge point answered")
        self.action = action


@dataclass(slots=True)
class RpcHooks:
    """Observers of an endpoint; each is called synchronously and must not block."""

    on_frame: Callable[[FrameDirection, Frame, str | None, int], None] | None = None
    """Every frame that went in or out, with the action it belongs to when known and its
    size on the wire in bytes."""
    on_deviation: Callable[[str, Deviation], None] | None = None
    on_handled: Callable[[str, str, float], None] | None = None
    """An inbound CALL was answered: (action, ``result`` or ``error``, seconds from dequeue to
    the answer being sent)."""
    on_call: Callable[[str, str, float], None] | None = None
    """An outbound CALL finished: (action, outcome, seconds from its turn to send until the
    outcome). Outcome: ``result``, ``error`` (a CALLERROR), ``invalid`` (a CALLRESULT breaking
    its schema), ``timeout``, ``closed`` (connection lost) or ``cancelled`` (the caller gave
    up); a payload refused before sending, or a call cancelled before its turn, is not
    reported."""


@dataclass(slots=True)
class _PendingCall:
    """Our outstanding CALL as the caller waiting for it sees it (the state's
    :class:`~voltaro.ocppj.rpc_state.OutstandingCall` says which frame answers it)."""

    message_id: str
    action: str
    answered: trio.Event = field(default_factory=trio.Event)
    answer: CallResult | CallError | None = None
    broken_answer: FrameError | None = None  # an answer with our id that could not be read


class RpcEndpoint:
    """OCPP-J RPC over one connection. Run :meth:`serve` in the connection's nursery.

    ``handlers`` maps each action the peer's CALLs are answered for to its handler;
    ``dialect`` is the OCPP version spoken (its actions, its error-code spellings).
    """

    # one per connection: slots instead of a dict per instance
    __slots__ = (
        "_answering",
        "_call_lock",
        "_call_timeout",
        "_channel",
        "_handlers",
        "_hooks",
        "_inbound",
        "_lenient",
        "_nursery",
        "_pending",
        "_registry",
        "_state",
        "dialect",
        "name",
    )

    def __init__(
        self,
        channel: MessageChannel,
        registry: SchemaRegistry,
        handlers: Mapping[str, Handler],
        *,
        name: str,
        call_timeout: float = 30.0,
        lenient: bool = False,
        hooks: RpcHooks | None = None,
        dialect: Dialect = OCPP16,
    ) -> None:
        self.name = name
        self.dialect = dialect
        self._channel = channel
        self._registry = registry
        self._handlers = handlers
        self._call_timeout = call_timeout
        self._lenient = lenient
        self._hooks = hooks or RpcHooks()
        self._state = RpcState(handlers, dialect=dialect)
        self._call_lock = OnDemandLock()
        self._pending: _PendingCall | None = None
        # The state bounds what waits (MAX_QUEUED_CALLS besides the one being answered);
        # the queue only carries it to the worker in order. A deque made when needed and a
        # worker started when needed rather than a memory channel and a task always
        # waiting on it: an idle connection holds ~3 KiB less.
        self._inbound: deque[CallReceived] | None = None
        self._nursery: trio.Nursery | None = None  # serve's, while it runs
        self._answering = False  # a worker task runs (it ends once the queue is empty)

    # -- inbound --------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read and answer until the connection closes; then fail any waiting outbound call."""
        channel = self._channel
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                # read here, not in a coroutine of its own: one frame fewer on every idle
                # connection (~0.2 KiB)
                while True:
                    try:
                        message = await channel.receive()
                    except ChannelClosed:
                        break
                    await self._on_message(message)
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._state.close()
            if self._pending is not None:
                self._pending.answered.set()

    async def _on_message(self, message: str | bytes) -> None:
        event = self._state.receive(message)
        # the common cases first: a CALL to answer, an answer to our CALL
        if type(event) is CallReceived:
            self._notify_frame("in", event.call, event.call.action, event.size)
            if self._inbound is None:
                self._inbound = deque()
            self._inbound.append(event)
            if not self._answering and self._nursery is not None:
                self._answering = True
                self._nursery.start_soon(self._answer_calls)
        elif type(event) is AnswerReceived:
            self._notify_frame("in", event.answer, event.action, event.size)
            pending = self._pending
            if pending is not None and pending.message_id == event.answer.message_id:
                pending.answer = event.answer
                pending.answered.set()
        elif type(event) is CallRefused:
            self._notify_frame("in", event.call, event.call.action, event.size)
            await self._send(event.answer, event.call.action)
        elif type(event) is AnswerDropped:
            self._notify_frame("in", event.answer, None, event.size)
            log.warning(
                "%s: dropped an answer to message %r: no CALL of ours is waiting for it",
                self.name,
                event.answer.message_id,
            )
        elif type(event) is BadFrame:
            log.warning("%s: bad frame (%s): %.200s", self.name, event.error, _text(message))
            if event.answer is not None:
                await self._send(event.answer)
        elif type(event) is BrokenAnswer:
            log.warning("%s: bad frame (%s): %.200s", self.name, event.error, _text(message))
            pending = self._pending
            if pending is not None and pending.message_id == event.error.message_id:
                pending.broken_answer = event.error  # our call fails now, not at its timeout
                pending.answered.set()
        elif type(event) is FrameIgnored:
            log.warning("%s: ignored a frame of unknown type %r", self.name, event.message_type)

    async def _answer_calls(self) -> None:
        """The worker: answer the CALLs received, in order, until none waits (the reader
        starts it when a CALL arrives and none runs)."""
        try:
            while self._inbound:
                await self._answer_received(self._inbound)
        finally:
            if not self._inbound:
                self._inbound = None
            self._answering = False

    async def _answer_received(self, inbound: deque[CallReceived]) -> None:
        """Answer the next CALL received. A function of its own so that nothing of the call
        (its payload, its answer) stays referenced once it is answered."""
        await trio.lowlevel.checkpoint_if_cancelled()
        received = inbound.popleft()
        await trio.lowlevel.cancel_shielded_checkpoint()  # as a memory channel's receive
        call = received.call
        started = trio.current_time()
        try:
            answer = self._state.refusal(call) or await self._answer(call)
            await self._send(answer, call.action)
        finally:
            self._state.answered(received)
        if self._hooks.on_handled is not None:
            outcome = "error" if isinstance(answer, CallError) else "result"
            self._hooks.on_handled(call.action, outcome, trio.current_time() - started)

    async def _answer(self, call: Call) -> CallResult | CallError:
        """The answer of the handler of ``call`` (an action the state let through): schema
        violations of the request, the handler's own OcppError, InternalError when the
        handler fails or its response breaks the schema."""
        handler = self._handlers[call.action]
        checked = self._check(call.action, Direction.REQUEST, call.payload)
        if checked.violation is not None:
            return self._violation_error(call, checked.violation)
        try:
            response = await handler(checked.payload)
        except OcppError as error:
            return CallError(
                call.message_id, self.dialect.spelling(error.code), error.description, error.details
            )
        except Exception:
            log.exception("%s: handler for %s failed", self.name, call.action)
            return self._error(
                call, ErrorCode.INTERNAL_ERROR, f"{call.action} could not be processed"
            )
        violation = self._registry.validate(call.action, Direction.RESPONSE, response)
        if violation is not None:
            log.error(
                "%s: our %s response broke its schema (%s): %r",
                self.name,
                call.action,
                violation.message,
                response,
            )
            return self._error(
                call, ErrorCode.INTERNAL_ERROR, f"{call.action} could not be processed"
            )
        return CallResult(call.message_id, response)

    def _error(self, call: Call, code: ErrorCode, description: str) -> CallError:
        return CallError(call.message_id, self.dialect.spelling(code), description)

    def _violation_error(self, call: Call, violation: Violation) -> CallError:
        return CallError(
            call.message_id,
            self.dialect.spelling(violation.code),
            violation.message,
            {"path": violation.path},
        )

    # -- outbound -------------------------------------------------------------------------

    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload:
        """Send a CALL and return the charge point's CALLRESULT payload.

        Raises a :class:`CallFailed` subclass: the payload is invalid (nothing is sent), the
        charge point answered a CALLERROR or an invalid CALLRESULT, it did not answer in
        ``timeout`` seconds (default: the endpoint's call timeout), or the connection closed.
        """
        violation = self._registry.validate(action, Direction.REQUEST, payload)
        if violation is not None:
            raise InvalidRequest(action, violation)
        timeout = self._call_timeout if timeout is None else timeout
        # A free lock is taken without a scheduling round (the wait for the answer is this
        # call's checkpoint): a charger simulated for the benchmark calls back to back.
        if self._call_lock.locked():
            await self._call_lock.acquire()
        else:
            self._call_lock.acquire_nowait()
        started = trio.current_time()
        outcome = "cancelled"
        try:
            result = await self._call_in_turn(action, payload, timeout)
            outcome = "result"
            return result
        except CallFailed as failure:
            outcome = failure.outcome
            raise
        finally:
            self._call_lock.release()
            if self._hooks.on_call is not None:
                self._hooks.on_call(action, outcome, trio.current_time() - started)

    async def _call_in_turn(self, action: str, payload: Payload, timeout: float) -> Payload:
        answer = await self._exchange(action, payload, timeout)
        if isinstance(answer, FrameError):
            raise InvalidResponse(action, Violation(answer.code, "$", answer.description))
        if isinstance(answer, CallError):
            raise CallErrorReceived(action, answer.error_code, answer.description, answer.details)
        checked = self._check(action, Direction.RESPONSE, answer.payload)
        if checked.violation is not None:
            raise InvalidResponse(action, checked.violation)
        result: Payload = checked.payload
        return result

    def _check(self, action: str, direction: Direction, payload: Payload) -> CheckResult:
        """Validate, in lenient mode letting known breakers through and reporting each."""
        checked = self._registry.check(action, direction, payload, lenient=self._lenient)
        for deviation in checked.deviations:
            log.warning(
                "%s: %s %s let through (lenient): %s", self.name, action, direction, deviation
            )
            if self._hooks.on_deviation is not None:
                self._hooks.on_deviation(action, deviation)
        return checked

    async def _exchange(
        self, action: str, payload: Payload, timeout: float
    ) -> CallResult | CallError | FrameError:
        if self._state.closed:
            # still a checkpoint (call() took a free lock without one): a caller retrying in
            # a loop must not starve the other tasks
            await trio.lowlevel.checkpoint()
            raise ConnectionLost(action)
        call = self._state.start_call(action, payload)  # the lock: never one outstanding
        pending = self._pending = _PendingCall(call.message_id, action)
        try:
            try:
                await self._send(call)
            except ChannelClosed:
                raise ConnectionLost(action) from None
            with trio.move_on_after(timeout if math.isfinite(timeout) else math.inf):
                await pending.answered.wait()
        finally:
            self._pending = None
            self._state.end_call(call.message_id)
        if pending.broken_answer is not None:
            return pending.broken_answer
        if pending.answer is None:
            if self._state.closed:
                raise ConnectionLost(action)
            raise CallTimeout(action, timeout)
        return pending.answer

    # -- sending --------------------------------------------------------------------------

    async def _send(self, frame: Frame, action: str | None = None) -> None:
        text = encode(frame)
        try:
            await self._channel.send(text)
        except ChannelClosed:
            if isinstance(frame, Call):
                raise
            log.info("%s: connection closed before an answer could be sent", self.name)
            return
        self._notify_frame(
            "out", frame, frame.action if isinstance(frame, Call) else action, wire_size(text)
        )

    def _notify_frame(
        self, direction: FrameDirection, frame: Frame, action: str | None, size: int
    ) -> None:
        if self._hooks.on_frame is not None:
            self._hooks.on_frame(direction, frame, action, size)


def _text(message: str | bytes) -> str:
    return message if isinstance(message, str) else repr(message)


__all__ = [
    "MAX_QUEUED_BYTES",
    "MAX_QUEUED_CALLS",
    "CallErrorReceived",
    "CallFailed",
    "CallTimeout",
    "ChannelClosed",
    "ConnectionLost",
    "Handler",
    "InvalidRequest",
    "InvalidResponse",
    "MessageChannel",
    "RpcEndpoint",
    "RpcHooks",
    "wire_size",
]
