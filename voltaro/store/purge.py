"""Deleting old rows of a large, busy table (the message log, the audit log) a chunk per
transaction: each DELETE stays short, so it never holds locks or a snapshot for long, and
several instances purging at once each delete what is still there."""

from __future__ import annotations

from datetime import datetime

from voltaro.store.database import LONG_DEADLINE, Connection, Database

PURGE_CHUNK = 10_000  # rows per DELETE


async def purge_older_than(database: Database, table: str, column: str, cutoff: datetime) -> int:
    """Delete the rows of ``table`` whose ``column`` is before ``cutoff`` (both names are
    Voltaro's own constants, never input); the count deleted."""
    statement = (
        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {column} < $1 LIMIT $2)"
    )
    total = 0
    while True:
        deleted = await database.run(_delete, statement, cutoff, deadline=LONG_DEADLINE)
        total += deleted
        if deleted < PURGE_CHUNK:
            return total


async def _delete(connection: Connection, statement: str, cutoff: datetime) -> int:
    result: str = await connection.execute(statement, cutoff, PURGE_CHUNK)
    return int(result.split()[-1])
