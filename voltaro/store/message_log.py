"""The OCPP message log: every frame in and out, appended in batches, purged by age."""

from __future__ import annotations

from datetime import datetime

from voltaro.store.database import LONG_DEADLINE, Connection, Database
from voltaro.store.records import pg_text
from voltaro.store.writer import CopyTarget, GroupCommitWriter, Write

MESSAGE_LOG = CopyTarget(
    "message_log",
    (
        "logged_at",
        "charge_point_id",
        "direction",
        "message_id",
        "action",
        "payload",
        "error_code",
    ),
)

PURGE_CHUNK = 10_000  # rows per DELETE: short transactions, no long lock on a busy table


class MessageLogRepository:
    def __init__(self, database: Database, writer: GroupCommitWriter) -> None:
        self._database = database
        self._writer = writer

    def post(
        self,
        logged_at: datetime,
        charge_point_id: str,
        direction: str,
        message_id: str | None,
        action: str | None,
        payload: object,
        error_code: str | None,
    ) -> None:
        """Fire-and-forget: the frame goes into the next batch's COPY."""
        row = (
            logged_at,
            charge_point_id,
            direction,
            pg_text(message_id),
            pg_text(action),
            payload,
            pg_text(error_code),
        )
        self._writer.post(Write(copies={MESSAGE_LOG: [row]}, label="message log"))

    async def purge_before(self, cutoff: datetime) -> int:
        """Delete entries logged before ``cutoff``, a chunk per transaction; returns the count."""
        total = 0
        while True:
            deleted = await self._database.run(_purge_chunk, cutoff, deadline=LONG_DEADLINE)
            total += deleted
            if deleted < PURGE_CHUNK:
                return total


async def _purge_chunk(connection: Connection, cutoff: datetime) -> int:
    result: str = await connection.execute(
        "DELETE FROM message_log WHERE id IN"
        " (SELECT id FROM message_log WHERE logged_at < $1 LIMIT $2)",
        cutoff,
        PURGE_CHUNK,
    )
    return int(result.split()[-1])
