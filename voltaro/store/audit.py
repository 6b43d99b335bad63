"""The audit log: one row per operator action (who, when, through what, on which charge
point, with which request, and the outcome), newest first when read.

A row is written directly (one commit) before the operator is answered, not through the
group-commit writer: actions are rare, and an answer must not outrun its record. Rows older
than the retention are deleted by :meth:`AuditRepository.purge_before` (run on every
instance by :mod:`voltaro.central.retention`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voltaro.store.admin_queries import Page, Where, _page
from voltaro.store.database import Connection, Database
from voltaro.store.purge import purge_older_than
from voltaro.store.records import pg_text


@dataclass(frozen=True)
class AuditEntry:
    """One operator action, as it is recorded."""

    actor: str
    role: str
    via: str  # api | dashboard | cli
    action: str  # the API operation, e.g. commandReset, putChargePoint
    charge_point_id: str | None
    target: str | None  # what the action was on when not a charge point (an id tag, ...)
    request: Any  # the request body (secrets redacted by the caller)
    status: int  # the HTTP status the action was answered with
    outcome: Any  # the result, or the problem document


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    charge_point_id: str | None = None
    action: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    failed: bool | None = None

    def where(self) -> Where:
        where = Where()
        if self.actor is not None:
            where.add("actor = {}", pg_text(self.actor))
        if self.charge_point_id is not None:
            where.add("charge_point_id = {}", pg_text(self.charge_point_id))
        if self.action is not None:
            where.add("action = {}", pg_text(self.action))
        if self.start is not None:
            where.add("at >= {}", self.start)
        if self.end is not None:
            where.add("at < {}", self.end)
        if self.failed is not None:
            where.add("(status >= 400) = {}", self.failed)
        return where


class AuditRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def record(self, entry: AuditEntry) -> None:
        async def write(connection: Connection) -> None:
            await connection.execute(
                """
                INSERT INTO audit_log (actor, role, via, action, charge_point_id, target,
                                       request, status, outcome)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """,
                pg_text(entry.actor),
                entry.role,
                entry.via,
                pg_text(entry.action),
                pg_text(entry.charge_point_id),
                pg_text(entry.target),
                entry.request,
                entry.status,
                entry.outcome,
            )

        await self._database.run(write)

    async def page(self, filters: AuditFilter, *, limit: int, offset: int) -> Page:
        """Matching entries, newest first."""

        async def read(connection: Connection) -> Page:
            return await _page(
                connection, "*", "audit_log", filters.where(), "id DESC", limit, offset
            )

        return await self._database.run(read)

    async def purge_before(self, cutoff: datetime) -> int:
        """Delete the entries recorded before ``cutoff``, a chunk per transaction (several
        instances may purge at once: each deletes what is still there); the count."""
        return await purge_older_than(self._database, "audit_log", "at", cutoff)
