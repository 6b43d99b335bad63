"""Operator commands between instances (``commands``, migration 0010).

The instance an operator asks (the *requester*) writes the command and notifies the
instance holding the charger's session (the *owner*) on ``voltaro_commands``; the owner
takes it (once: a second take finds it taken), sends the CALL, writes the outcome and
notifies the requester on ``voltaro_command_answers``. A notification carries only the
row's id and to whom it is; the row is the truth, so a lost notification costs a sweep's
delay, not the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from voltaro.store.database import Connection, Database

COMMANDS_CHANNEL = "voltaro_commands"
ANSWERS_CHANNEL = "voltaro_command_answers"


@dataclass(frozen=True)
class QueuedCommand:
    id: int
    charge_point_id: str
    action: str
    request: dict[str, Any]
    timeout: float
    requested_by: str


@dataclass(frozen=True)
class CommandOutcome:
    outcome: str  # result | error | invalid | timeout | disconnected | not connected | ...
    answer: dict[str, Any]


def notification(payload: str) -> tuple[int, str] | None:
    """``(row id, addressee)`` of a notification, None when unreadable."""
    try:
        data = orjson.loads(payload)
        return int(data["id"]), str(data["to"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class CommandQueue:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def submit(
        self,
        charge_point_id: str,
        action: str,
        request: dict[str, Any],
        timeout: float,
        requested_by: str,
        owner: str,
    ) -> int:
        """Write the command and notify its owner (one transaction); returns its id."""

        async def write(connection: Connection) -> int:
            command_id: int = await connection.fetchval(
                """
                INSERT INTO commands
                    (charge_point_id, action, request, timeout, requested_by, owner)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
                """,
                charge_point_id,
                action,
                request,
                timeout,
                requested_by,
                owner,
            )
            await _notify(connection, COMMANDS_CHANNEL, command_id, owner)
            return command_id

        return await self._database.run_in_transaction(write)

    async def take(self, command_id: int, owner: str) -> QueuedCommand | None:
        """The command, if it is this owner's and nobody took it yet (then it is taken)."""

        async def write(connection: Connection) -> QueuedCommand | None:
            row = await connection.fetchrow(
                """
                UPDATE commands SET taken_at = now()
                WHERE id = $1 AND owner = $2 AND taken_at IS NULL
                RETURNING id, charge_point_id, action, request, timeout, requested_by
                """,
                command_id,
                owner,
            )
            return None if row is None else QueuedCommand(*row)

        return await self._database.run(write)

    async def waiting_for(self, owner: str, since: datetime) -> list[int]:
        """Ids of the owner's commands not taken yet, written after ``since``."""

        async def read(connection: Connection) -> list[int]:
            rows = await connection.fetch(
                "SELECT id FROM commands WHERE owner = $1 AND taken_at IS NULL"
                " AND created_at > $2 ORDER BY id",
                owner,
                since,
            )
            return [row[0] for row in rows]

        return await self._database.run(read)

    async def answer(self, command: QueuedCommand, outcome: CommandOutcome) -> None:
        """Write the outcome and notify the requester (one transaction)."""

        async def write(connection: Connection) -> None:
            await connection.execute(
                "UPDATE commands SET answered_at = now(), outcome = $2, answer = $3 WHERE id = $1",
                command.id,
                outcome.outcome,
                outcome.answer,
            )
            await _notify(connection, ANSWERS_CHANNEL, command.id, command.requested_by)

        await self._database.run_in_transaction(write)

    async def outcome(self, command_id: int) -> CommandOutcome | None:
        """The command's outcome once answered, else None."""

        async def read(connection: Connection) -> CommandOutcome | None:
            row = await connection.fetchrow(
                "SELECT outcome, answer FROM commands WHERE id = $1 AND answered_at IS NOT NULL",
                command_id,
            )
            return None if row is None else CommandOutcome(row[0], row[1])

        return await self._database.run(read)

    async def purge_before(self, cutoff: datetime) -> int:
        async def purge(connection: Connection) -> int:
            result: str = await connection.execute(
                "DELETE FROM commands WHERE created_at < $1", cutoff
            )
            return int(result.split()[-1])

        return await self._database.run(purge)


async def _notify(connection: Connection, channel: str, command_id: int, to: str) -> None:
    payload = orjson.dumps({"id": command_id, "to": to}).decode()
    await connection.execute("SELECT pg_notify($1, $2)", channel, payload)
