"""The OCPP-J RPC endpoint on trio: one per connection, both directions at once.

Inbound CALLs are read by :meth:`RpcEndpoint.serve` and answered strictly in the order they
arrived by one worker task, while the reader keeps reading, so that

- a CALLRESULT for one of our own CALLs is picked up even while a handler of the charger's CALL
  is busy (calls that cross do not deadlock), and
- a second CALL reusing the id of one still in progress is seen and refused.

Outbound calls go through :meth:`RpcEndpoint.call`: one outstanding CALL per connection, the
rest wait their turn in FIFO order (``trio.Lock`` is fair).

Error handling: nothing a peer sends can raise out of :meth:`serve`; every bad CALL gets the
CALLERROR of the OCPP-J 1.6 table, a bad CALLRESULT/CALLERROR is logged and dropped (when
its id shows it answers our outstanding CALL, that call fails at once with
:class:`InvalidResponse` instead of waiting for its timeout), and a handler's exception
becomes InternalError on the wire with the traceback in the log (a handler that means to
answer an error raises :class:`~voltaro.ocppj.errors.OcppError`: no traceback).

Frames are not logged here at DEBUG: the owner of the endpoint hears every frame through
:attr:`RpcHooks.on_frame` and knows what in it must not be written down (a charger's
password, say).
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import trio

from voltaro.ocppj.actions import ALL_ACTIONS, Direction
from voltaro.ocppj.errors import ErrorCode, OcppError
from voltaro.ocppj.frames import (
    CALL,
    UNKNOWN_MESSAGE_ID,
    Call,
    CallError,
    CallResult,
    Frame,
    FrameError,
    Payload,
    UnknownFrame,
    decode,
    encode,
)
from voltaro.ocppj.validation import CheckResult, Deviation, SchemaRegistry, Violation

log = logging.getLogger("voltaro.ocppj")

Handler = Callable[[Payload], Awaitable[Payload]]
FrameDirection = Literal["in", "out"]

# CALLs accepted before the first is answered. OCPP-J allows one outstanding CALL, so only a
# misbehaving peer ever queues; the bounds keep such a peer from growing our memory: at most
# this many CALLs, and this many bytes of them beyond the first one waiting (16 frames of
# 64 KiB would otherwise be a MiB per connection).
MAX_QUEUED_CALLS = 16
MAX_QUEUED_BYTES = 128 * 1024


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
    message_id: str
    action: str
    answered: trio.Event = field(default_factory=trio.Event)
    answer: CallResult | CallError | None = None
    broken_answer: FrameError | None = None  # an answer with our id that could not be read


class RpcEndpoint:
    """OCPP-J RPC over one connection. Run :meth:`serve` in the connection's nursery."""

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
    ) -> None:
        self.name = name
        self._channel = channel
        self._registry = registry
        self._handlers = handlers
        self._call_timeout = call_timeout
        self._lenient = lenient
        self._hooks = hooks or RpcHooks()
        self._call_lock = trio.Lock()
        # message ids: unique per connection (a counter) and across connections (a random
        # prefix); a uuid4 per call cost 2 µs, a noticeable share of a simulated charger
        self._id_prefix = secrets.token_hex(8)
        self._id_counter = itertools.count(1)
        self._pending: _PendingCall | None = None
        self._inbound_ids: set[str] = set()
        self._closed = False
        self._inbound_send, self._inbound_receive = trio.open_memory_channel[tuple[Call, int]](
            MAX_QUEUED_CALLS
        )
        self._queued_bytes = 0

    # -- inbound --------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read and answer until the connection closes; then fail any waiting outbound call."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._answer_calls)
                await self._read_messages()
                nursery.cancel_scope.cancel()
        finally:
            self._closed = True
            if self._pending is not None:
                self._pending.answered.set()

    async def _read_messages(self) -> None:
        while True:
            try:
                message = await self._channel.receive()
            except ChannelClosed:
                return
            await self._on_message(message)

    async def _on_message(self, message: str | bytes) -> None:
        try:
            frame = decode(message)
            if isinstance(message, bytes):
                raise FrameError(
                    ErrorCode.FORMATION_VIOLATION,
                    "binary WebSocket frames are not OCPP-J; send JSON as a text frame",
                    message_id=frame.message_id if isinstance(frame, Call) else None,
                    message_type=CALL if isinstance(frame, Call) else None,
                )
        except FrameError as error:
            await self._on_frame_error(error, message)
            return
        if isinstance(frame, UnknownFrame):
            log.warning("%s: ignored a frame of unknown type %r", self.name, frame.message_type)
            return
        size = wire_size(message)
        if isinstance(frame, Call):
            self._notify_frame("in", frame, frame.action, size)
            await self._accept_call(frame, size)
        else:
            self._on_answer(frame, size)

    async def _on_frame_error(self, error: FrameError, message: str | bytes) -> None:
        log.warning("%s: bad frame (%s): %.200s", self.name, error, _text(message))
        pending = self._pending
        if pending is not None and not error.answerable and error.message_id == pending.message_id:
            pending.broken_answer = error  # our call fails now, not at its timeout
            pending.answered.set()
        if error.answerable:
            await self._send(
                CallError(
                    error.message_id or UNKNOWN_MESSAGE_ID,
                    error.code,
                    error.description,
                )
            )

    async def _accept_call(self, call: Call, size: int) -> None:
        if call.message_id in self._inbound_ids:
            await self._send_error(
                call,
                ErrorCode.PROTOCOL_ERROR,
                f"message id {call.message_id!r} is already in use by a CALL still in progress",
            )
            return
        queued = self._queued_bytes
        try:
            if queued and queued + size > MAX_QUEUED_BYTES:
                raise trio.WouldBlock
            self._inbound_send.send_nowait((call, size))
        except trio.WouldBlock:
            await self._send_error(
                call,
                ErrorCode.PROTOCOL_ERROR,
                f"too many CALLs unanswered (at most {MAX_QUEUED_CALLS} or "
                f"{MAX_QUEUED_BYTES} bytes wait); OCPP-J allows one outstanding CALL",
            )
            return
        self._queued_bytes += size
        self._inbound_ids.add(call.message_id)

    async def _answer_calls(self) -> None:
        async for call, size in self._inbound_receive:
            self._queued_bytes -= size
            started = trio.current_time()
            try:
                answer = await self._answer(call)
                await self._send(answer, call.action)
            finally:
                self._inbound_ids.discard(call.message_id)
            if self._hooks.on_handled is not None:
                outcome = "error" if isinstance(answer, CallError) else "result"
                self._hooks.on_handled(call.action, outcome, trio.current_time() - started)

    async def _answer(self, call: Call) -> CallResult | CallError:
        if call.action not in ALL_ACTIONS:
            return _error(call, ErrorCode.NOT_IMPLEMENTED, f"unknown action {call.action!r}")
        handler = self._handlers.get(call.action)
        if handler is None:
            return _error(
                call, ErrorCode.NOT_SUPPORTED, f"{call.action} is not supported by this server"
            )
        checked = self._check(call.action, Direction.REQUEST, call.payload)
        if checked.violation is not None:
            return _violation_error(call, checked.violation)
        try:
            response = await handler(checked.payload)
        except OcppError as error:
            return CallError(call.message_id, error.code, error.description, error.details)
        except Exception:
            log.exception("%s: handler for %s failed", self.name, call.action)
            return _error(call, ErrorCode.INTERNAL_ERROR, f"{call.action} could not be processed")
        violation = self._registry.validate(call.action, Direction.RESPONSE, response)
        if violation is not None:
            log.error(
                "%s: our %s response broke its schema (%s): %r",
                self.name,
                call.action,
                violation.message,
                response,
            )
            return _error(call, ErrorCode.INTERNAL_ERROR, f"{call.action} could not be processed")
        return CallResult(call.message_id, response)

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
        pending = _PendingCall(self._new_message_id(), action)
        answer = await self._exchange(pending, payload, timeout)
        if isinstance(answer, FrameError):
            raise InvalidResponse(action, Violation(answer.code, "$", answer.description))
        if isinstance(answer, CallError):
            raise CallErrorReceived(action, answer.error_code, answer.description, answer.details)
        checked = self._check(action, Direction.RESPONSE, answer.payload)
        if checked.violation is not None:
            raise InvalidResponse(action, checked.violation)
        result: Payload = checked.payload
        return result

    def _new_message_id(self) -> str:
        return f"{self._id_prefix}-{next(self._id_counter)}"

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
        self, pending: _PendingCall, payload: Payload, timeout: float
    ) -> CallResult | CallError | FrameError:
        if self._closed:
            # still a checkpoint (call() took a free lock without one): a caller retrying in
            # a loop must not starve the other tasks
            await trio.lowlevel.checkpoint()
            raise ConnectionLost(pending.action)
        self._pending = pending
        try:
            try:
                await self._send(Call(pending.message_id, pending.action, payload))
            except ChannelClosed:
                raise ConnectionLost(pending.action) from None
            with trio.move_on_after(timeout if math.isfinite(timeout) else math.inf):
                await pending.answered.wait()
        finally:
            self._pending = None
        if pending.broken_answer is not None:
            return pending.broken_answer
        if pending.answer is None:
            if self._closed:
                raise ConnectionLost(pending.action)
            raise CallTimeout(pending.action, timeout)
        return pending.answer

    def _on_answer(self, answer: CallResult | CallError, size: int) -> None:
        pending = self._pending
        matched = pending is not None and pending.message_id == answer.message_id
        self._notify_frame("in", answer, pending.action if pending and matched else None, size)
        if pending is None or not matched:
            log.warning(
                "%s: dropped an answer to message %r: no CALL of ours is waiting for it",
                self.name,
                answer.message_id,
            )
            return
        pending.answer = answer
        pending.answered.set()

    # -- sending --------------------------------------------------------------------------

    async def _send_error(self, call: Call, code: ErrorCode, description: str) -> None:
        await self._send(_error(call, code, description), call.action)

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


def _error(call: Call, code: ErrorCode, description: str) -> CallError:
    return CallError(call.message_id, code, description)


def _violation_error(call: Call, violation: Violation) -> CallError:
    return CallError(call.message_id, violation.code, violation.message, {"path": violation.path})


def _text(message: str | bytes) -> str:
    return message if isinstance(message, str) else repr(message)


def wire_size(message: str | bytes) -> int:
    """Bytes of a message on the wire (UTF-8); an ASCII text's length, found in O(1)."""
    if isinstance(message, bytes) or message.isascii():
        return len(message)
    return len(message.encode("utf-8", "surrogatepass"))


__all__ = [
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
