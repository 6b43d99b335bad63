"""Security events (failed logins, for now): appended in batches, purged by age."""

from __future__ import annotations

from datetime import datetime

from voltaro.store.database import Connection, Database
from voltaro.store.records import pg_text
from voltaro.store.writer import CopyTarget, GroupCommitWriter, Write

SECURITY_EVENTS = CopyTarget(
    "security_events", ("at", "charge_point_id", "remote_address", "kind", "detail")
)


class SecurityEventRepository:
    def __init__(self, database: Database, writer: GroupCommitWriter) -> None:
        self._database = database
        self._writer = writer

    def post(
        self,
        at: datetime,
        charge_point_id: str | None,
        remote_address: str | None,
        kind: str,
        detail: str | None,
    ) -> None:
        """Fire-and-forget: the event goes into the next batch's COPY."""
        row = (at, pg_text(charge_point_id), pg_text(remote_address), kind, pg_text(detail))
        self._writer.post(Write(copies={SECURITY_EVENTS: [row]}, label="security event"))

    async def purge_before(self, cutoff: datetime) -> int:
        async def purge(connection: Connection) -> int:
            result: str = await connection.execute(
                "DELETE FROM security_events WHERE at < $1", cutoff
            )
            return int(result.split()[-1])

        return await self._database.run(purge)

    async def recent(self, limit: int = 100) -> list[dict[str, object]]:
        """The newest events first (tests, the admin surface later)."""

        async def read(connection: Connection) -> list[dict[str, object]]:
            rows = await connection.fetch(
                "SELECT * FROM security_events ORDER BY id DESC LIMIT $1", limit
            )
            return [dict(row) for row in rows]

        return await self._database.run(read)
