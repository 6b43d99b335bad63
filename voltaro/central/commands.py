"""Operator commands: a CALL sent on a charger's live session, and what its answer changes.

:meth:`Commands.send` is the one path for every command, whoever asks (the API, the
dashboard, ``voltaro command``): the action must be one a profile offers
(:class:`UnknownCommand`), the payload must satisfy the action's official request schema
(:class:`InvalidCommand`), the charge point must be known (:class:`UnknownChargePoint`) and
connected to this instance (:class:`NotConnected`). Then the CALL goes out on the session's
endpoint and the answer ends in one outcome:

========================  =============================================================
the charger answered      the command's ``effect`` is applied, the result returned
a CALLERROR               :class:`CallErrorAnswer` (code, description, details)
an invalid CALLRESULT     :class:`InvalidAnswer` (what broke the response schema)
nothing in time           :class:`NoAnswer`
the connection closed     :class:`Disconnected`
========================  =============================================================

A command may complete its payload and record the request before it is sent (its
``allocates``, ``fills`` and ``prepare``: ReserveNow's reservationId, SendLocalList's list
when its version is left out), and note a failure (``failed``);
see :class:`~voltaro.central.profile.Command`. A ``failed`` that cannot write (the database
away) is logged and the command's own failure is what the operator gets.

Each failure is a :class:`CommandFailed` whose message says what happened in the
operator's words; the admin layer maps the classes to HTTP statuses and nothing more.
Every frame goes into the message log through the session's hooks; an outcome no frame of
the charger's records (not connected, timeout, disconnected) gets a message-log entry of its
own. Every outcome is published as :class:`~voltaro.central.domain_events.CommandAnswered`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from voltaro.central.domain import Domain
from voltaro.central.domain_events import CommandAnswered
from voltaro.central.profile import Command, Failure, Payload, Profile
from voltaro.central.sessions import SessionRegistry
from voltaro.ocppj.actions import Direction
from voltaro.ocppj.dialect import OCPP16, Dialect
from voltaro.ocppj.endpoint import (
    CallErrorReceived,
    CallFailed,
    CallTimeout,
    ConnectionLost,
    InvalidRequest,
    InvalidResponse,
)
from voltaro.ocppj.errors import ErrorCode
from voltaro.ocppj.validation import SchemaRegistry, Violation
from voltaro.store import StoreError

log = logging.getLogger(__name__)

MAX_TIMEOUT = 600.0  # seconds: the longest an operator may ask a command to wait


class CommandFailed(Exception):
    """A command that produced no valid answer; ``str()`` says why, for the operator."""

    outcome = "failed"


class UnknownCommand(CommandFailed):
    outcome = "unknown"

    def __init__(self, action: str, why: str, known: Iterable[str]) -> None:
        super().__init__(f"{action!r} {why}; commands: {', '.join(known)}")
        self.action = action


class InvalidCommand(CommandFailed):
    """The payload breaks the action's request schema (nothing was sent)."""

    outcome = "invalid request"

    def __init__(self, action: str, violation: Violation) -> None:
        super().__init__(f"{action} body: {violation.message}")
        self.violation = violation


class UnknownChargePoint(CommandFailed):
    outcome = "unknown charge point"

    def __init__(self, charge_point_id: str) -> None:
        super().__init__(f"charge point {charge_point_id!r} is not known")


class NotConnected(CommandFailed):
    outcome = "not connected"

    def __init__(self, charge_point_id: str) -> None:
        super().__init__(f"charge point {charge_point_id!r} is not connected")


class NoAnswer(CommandFailed):
    outcome = "timeout"

    def __init__(self, charge_point_id: str, action: str, timeout: float) -> None:
        super().__init__(
            f"charge point {charge_point_id!r} did not answer {action} within {timeout:g} s"
        )
        self.timeout = timeout


class Disconnected(CommandFailed):
    outcome = "disconnected"

    def __init__(self, charge_point_id: str, action: str) -> None:
        super().__init__(f"charge point {charge_point_id!r} disconnected before answering {action}")


class CallErrorAnswer(CommandFailed):
    outcome = "error"

    def __init__(self, charge_point_id: str, action: str, error: CallErrorReceived) -> None:
        super().__init__(
            f"charge point {charge_point_id!r} answered {action} with CALLERROR {error.code}: "
            f"{error.description}"
        )
        self.code = error.code
        self.description = error.description
        self.details = error.details


class InvalidAnswer(CommandFailed):
    outcome = "invalid"

    def __init__(self, charge_point_id: str, action: str, violation: Violation) -> None:
        super().__init__(
            f"charge point {charge_point_id!r} answered {action} with an invalid CALLRESULT: "
            f"{violation.message}"
        )
        self.violation = violation


def failure_answer(failure: CommandFailed) -> dict[str, Any]:
    """What another instance needs to raise the same failure (:func:`failure_from`)."""
    answer: dict[str, Any] = {"message": str(failure)}
    if isinstance(failure, CallErrorAnswer):
        answer |= {
            "code": failure.code,
            "description": failure.description,
            "details": failure.details,
        }
    elif isinstance(failure, InvalidAnswer | InvalidCommand):
        violation = failure.violation
        answer |= {"code": str(violation.code), "path": violation.path, "text": violation.message}
    elif isinstance(failure, NoAnswer):
        answer["timeout"] = failure.timeout
    return answer


def failure_from(
    outcome: str, answer: dict[str, Any], charge_point_id: str, action: str
) -> CommandFailed:
    """The failure another instance reported (``outcome``, :func:`failure_answer`)."""
    if outcome == CallErrorAnswer.outcome:
        received = CallErrorReceived(
            action, answer["code"], answer["description"], answer.get("details") or {}
        )
        return CallErrorAnswer(charge_point_id, action, received)
    if outcome in (InvalidAnswer.outcome, InvalidCommand.outcome):
        code = parse_violation_code(answer["code"])
        violation = Violation(code, answer["path"], answer["text"])
        if outcome == InvalidAnswer.outcome:
            return InvalidAnswer(charge_point_id, action, violation)
        return InvalidCommand(action, violation)
    if outcome == NoAnswer.outcome:
        return NoAnswer(charge_point_id, action, float(answer["timeout"]))
    if outcome == Disconnected.outcome:
        return Disconnected(charge_point_id, action)
    if outcome == NotConnected.outcome:
        return NotConnected(charge_point_id)
    return CommandFailed(str(answer.get("message") or outcome))


def failure_of(failure: CommandFailed) -> Failure:
    """What a command's ``failed`` is told of ``failure``."""
    code = failure.code if isinstance(failure, CallErrorAnswer) else None
    return Failure(str(failure), failure.outcome, code)


def parse_violation_code(text: str) -> ErrorCode:
    return OCPP16.parse_error_code(text) or ErrorCode.GENERIC_ERROR


class CommandCatalog:
    """The commands the served profiles offer, in the order they declare them; each must be
    an action the dialect's Central System sends."""

    def __init__(self, profiles: Iterable[Profile], dialect: Dialect = OCPP16):
        self._sendable = dialect.central_system_initiated
        self._commands: dict[str, Command] = {}
        for profile in profiles:
            for command in profile.commands:
                if command.action in self._commands:
                    raise ValueError(f"{command.action} is offered by two profiles")
                if command.action not in self._sendable:
                    raise ValueError(f"{command.action} is not sent by the Central System")
                self._commands[command.action] = command

    def __iter__(self) -> Any:
        return iter(self._commands.values())

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self._commands)

    def get(self, action: str) -> Command:
        """The command ``action``; :class:`UnknownCommand` when no profile offers it."""
        command = self._commands.get(action)
        if command is None:
            if action in self._sendable:
                why = "is not a command of this server"
            else:
                why = "is not an action the Central System sends to a charge point"
            raise UnknownCommand(action, why, self._commands)
        return command


LogOutcome = Callable[[str, str, str, str], None]
Route = Callable[[str, str, Payload, float], Awaitable[Payload]]


class Commands:
    """Sends operator commands (see the module doc)."""

    def __init__(
        self,
        catalog: CommandCatalog,
        schemas: SchemaRegistry,
        sessions: SessionRegistry,
        domain: Domain,
        *,
        call_timeout: float,
        log_outcome: LogOutcome,
        route: Route | None = None,
    ) -> None:
        """``route``: how a command reaches a charger connected to another instance
        (:meth:`voltaro.central.routing.CommandRouter.send_elsewhere`)."""
        self.catalog = catalog
        self._schemas = schemas
        self._sessions = sessions
        self._domain = domain
        self._call_timeout = call_timeout
        self._log_outcome = log_outcome
        self._route = route

    def check(self, action: str, payload: object) -> Payload:
        """``payload`` if it is a valid request of a known command; else UnknownCommand or
        InvalidCommand."""
        self.catalog.get(action)
        violation = self._schemas.validate(action, Direction.REQUEST, payload)
        if violation is not None:
            raise InvalidCommand(action, violation)
        assert isinstance(payload, dict)
        return payload

    async def send(
        self, charge_point_id: str, action: str, payload: object, timeout: float | None = None
    ) -> Payload:
        """Send the command; returns the charger's CALLRESULT payload after the command's
        effect is applied. Raises a :class:`CommandFailed` (see the module doc). A charger
        connected to another instance is reached through it (``route``)."""
        _, result = await self.send_request(charge_point_id, action, payload, timeout)
        return result

    async def send_request(
        self, charge_point_id: str, action: str, payload: object, timeout: float | None = None
    ) -> tuple[Payload, Payload]:
        """:meth:`send`, returning the request as sent (with what Voltaro allocated in it,
        see :class:`~voltaro.central.profile.Command`) and the result."""
        command = self.catalog.get(action)
        if command.allocates and isinstance(payload, dict):
            payload = {**payload, **command.allocates}  # the stand-ins, for the schema check
        left_out = command.filled(payload)
        if left_out and isinstance(payload, dict):
            stand_ins = {name: command.fills[name] for name in left_out}
            self.check(action, {**stand_ins, **payload})
            request: Payload = payload  # without them: prepare fills them in
        else:
            request = self.check(action, payload)
        if not await self._known(charge_point_id):
            raise UnknownChargePoint(charge_point_id)
        if command.prepare is not None:
            request = await command.prepare(self._domain, charge_point_id, request)
        wait = self._call_timeout if timeout is None else timeout
        try:
            if charge_point_id in self._sessions or self._route is None:
                return request, await self.send_here(charge_point_id, action, request, wait)
            try:
                return request, await self._route(charge_point_id, action, request, wait)
            except NotConnected as failure:  # nowhere: as a local command would have said
                self._log_outcome(charge_point_id, action, failure.outcome, str(failure))
                self._answered(charge_point_id, action, failure.outcome, None)
                raise
        except CommandFailed as failure:
            if command.failed is not None:
                try:
                    await command.failed(
                        self._domain, charge_point_id, request, failure_of(failure)
                    )
                except StoreError as error:
                    log.warning(
                        "%s to %s: its failure not recorded: %s", action, charge_point_id, error
                    )
            raise

    async def _known(self, charge_point_id: str) -> bool:
        """Whether the charge point is in the table: from the charge point cache when it
        holds it (kept current by the table's announcements), else read. A profile task
        sends several commands to each charger that connects: a read each took the pool
        in a storm of connections."""
        store = self._domain.store
        if store.id_tag_cache.charge_points.peek(charge_point_id) is not None:
            return True
        return await store.charge_points.get(charge_point_id) is not None

    async def send_here(
        self, charge_point_id: str, action: str, request: Payload, wait: float
    ) -> Payload:
        """Send a checked command on this instance's session of the charger and apply its
        effect (NotConnected when there is none here)."""
        command = self.catalog.get(action)
        try:
            result = await self._call(charge_point_id, action, request, wait)
            if command.effect is not None:
                await command.effect(self._domain, charge_point_id, request, result)
        except CommandFailed as failure:
            self._answered(charge_point_id, action, failure.outcome, None)
            raise
        status = result.get("status")
        outcome_status = status if isinstance(status, str) else None
        self._answered(charge_point_id, action, "result", outcome_status)
        return result

    async def _call(
        self, charge_point_id: str, action: str, request: Payload, wait: float
    ) -> Payload:
        session = self._sessions.get(charge_point_id)
        if session is None:
            failure: CommandFailed = NotConnected(charge_point_id)
            self._log_outcome(charge_point_id, action, failure.outcome, str(failure))
            raise failure
        try:
            return await session.endpoint.call(action, request, timeout=wait)
        except InvalidRequest as error:  # checked above; a schema that changed under us
            raise InvalidCommand(action, error.violation) from None
        except CallTimeout:
            failure = NoAnswer(charge_point_id, action, wait)
        except ConnectionLost:
            failure = Disconnected(charge_point_id, action)
        except CallErrorReceived as error:
            raise CallErrorAnswer(charge_point_id, action, error) from None
        except InvalidResponse as error:
            raise InvalidAnswer(charge_point_id, action, error.violation) from None
        except CallFailed as error:  # pragma: no cover - every subclass is handled above
            raise CommandFailed(str(error)) from None
        self._log_outcome(charge_point_id, action, failure.outcome, str(failure))
        raise failure

    def _answered(
        self, charge_point_id: str, action: str, outcome: str, status: str | None
    ) -> None:
        self._domain.events.publish(
            CommandAnswered(
                charge_point_id=charge_point_id, action=action, outcome=outcome, status=status
            )
        )
