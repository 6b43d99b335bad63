"""Commands between instances: an operator asks one instance, another holds the charger.

The asking instance (:meth:`CommandRouter.send_elsewhere`) finds which live instance holds
the charger's session (``charge_points.instance_id`` with an unexpired lease), writes the
command to the database and notifies that instance; the owner takes it, sends the CALL on
its session exactly as for a local command (its endpoint keeps OCPP's one outstanding CALL
per charger: all CALLs to a charger leave from the one instance holding it), applies the
command's effect, writes the outcome and notifies back; the asking instance answers its
operator with that outcome, as if the charger were its own.

Notifications only say "look at row N": the rows are the truth. An owner also sweeps for
commands addressed to it every :data:`SWEEP_PERIOD` seconds, and an asker looks at its row
every :data:`ANSWER_POLL` seconds while waiting, so a notification lost with a LISTEN
connection delays a command, never loses it. An owner that dies with a command in hand
leaves it unanswered: the asker answers "no answer in time".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import trio

from voltaro.central.commands import (
    CommandFailed,
    NoAnswer,
    NotConnected,
    failure_answer,
    failure_from,
)
from voltaro.central.profile import Payload
from voltaro.central.timestamps import utc_now
from voltaro.store import StoreError
from voltaro.store.command_queue import CommandOutcome, CommandQueue, QueuedCommand, notification
from voltaro.store.instances import InstanceRepository

log = logging.getLogger(__name__)

ROUTING_MARGIN = 5.0  # seconds an asker waits beyond the command's own timeout
ANSWER_POLL = 1.0  # seconds between an asker's looks at its row (lost notifications)
SWEEP_PERIOD = 2.0  # seconds between an owner's looks for commands addressed to it
SWEEP_WINDOW = timedelta(minutes=10)  # older untaken commands are left: nobody waits
QUEUED = 1000  # commands notified and not yet being served

ServeHere = Callable[[str, str, Payload, float], Awaitable[Payload]]
"""``(charge_point_id, action, request, timeout)``: send a command on a local session."""


class CommandRouter:
    def __init__(
        self,
        queue: CommandQueue,
        instances: InstanceRepository,
        instance_id: str,
        serve_here: ServeHere,
    ) -> None:
        self._queue = queue
        self._instances = instances
        self.instance_id = instance_id
        self._serve_here = serve_here
        self._answered: dict[int, trio.Event] = {}
        self._incoming, self._incoming_receive = trio.open_memory_channel[int](QUEUED)
        self.routed = 0  # commands this instance sent to others
        self.served = 0  # commands this instance served for others

    # ---- notifications (called from the LISTEN connection's callback) ---------------

    def on_command(self, payload: str) -> None:
        addressed = notification(payload)
        if addressed is not None and addressed[1] == self.instance_id:
            try:
                self._incoming.send_nowait(addressed[0])
            except trio.WouldBlock:  # the sweep picks it up
                log.warning("command %d: too many waiting; left for the sweep", addressed[0])

    def on_answer(self, payload: str) -> None:
        addressed = notification(payload)
        if addressed is not None and addressed[1] == self.instance_id:
            event = self._answered.get(addressed[0])
            if event is not None:
                event.set()

    # ---- the owner's side --------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve commands addressed to this instance until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweep, nursery)
            task_status.started()
            async for command_id in self._incoming_receive:
                nursery.start_soon(self._serve, command_id)

    async def _sweep(self, nursery: trio.Nursery) -> None:
        while True:
            await trio.sleep(SWEEP_PERIOD)
            try:
                waiting = await self._queue.waiting_for(self.instance_id, utc_now() - SWEEP_WINDOW)
            except StoreError:
                continue  # the outage is the store's to log
            for command_id in waiting:
                nursery.start_soon(self._serve, command_id)

    async def _serve(self, command_id: int) -> None:
        try:
            command = await self._queue.take(command_id, self.instance_id)
            if command is None:
                return  # served already (a notification and a sweep both saw it)
            outcome = await self._outcome(command)
            await self._queue.answer(command, outcome)
        except StoreError as exc:
            log.warning("command %d: not served, the database is unavailable: %s", command_id, exc)

    async def _outcome(self, command: QueuedCommand) -> CommandOutcome:
        self.served += 1
        try:
            result = await self._serve_here(
                command.charge_point_id, command.action, command.request, command.timeout
            )
        except CommandFailed as failure:
            return CommandOutcome(failure.outcome, failure_answer(failure))
        return CommandOutcome("result", result)

    # ---- the asker's side --------------------------------------------------------------

    async def send_elsewhere(
        self, charge_point_id: str, action: str, request: Payload, timeout: float
    ) -> Payload:
        """Have the instance holding the charger send the command; its outcome, as if the
        charger were here. NotConnected when no live instance holds it."""
        owner = await self._instances.holder(charge_point_id)
        if owner is None or owner == self.instance_id:
            raise NotConnected(charge_point_id)
        self.routed += 1
        command_id = await self._queue.submit(
            charge_point_id, action, request, timeout, self.instance_id, owner
        )
        answered = self._answered[command_id] = trio.Event()
        outcome = None
        try:
            with trio.move_on_after(timeout + ROUTING_MARGIN):
                while outcome is None:
                    with trio.move_on_after(ANSWER_POLL):
                        await answered.wait()
                    outcome = await self._queue.outcome(command_id)
        finally:
            del self._answered[command_id]
        if outcome is None:
            raise NoAnswer(charge_point_id, action, timeout)
        if outcome.outcome == "result":
            return outcome.answer
        raise failure_from(outcome.outcome, outcome.answer, charge_point_id, action)
