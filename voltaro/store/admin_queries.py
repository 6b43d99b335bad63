"""Reads for operators (the admin API): filtered, paginated lists and details, and the
charge points' known configuration.

Rows come back as plain dicts of column name to value (snake_case, as stored); the admin
layer names them for its callers. Every operation is one crossing into asyncio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from voltaro.store.database import LONG_DEADLINE, Connection, Database
from voltaro.store.records import pg_text

Row = dict[str, Any]


@dataclass
class Where:
    """A WHERE clause built from optional filters, with numbered parameters."""

    clauses: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def add(self, clause: str, *values: Any) -> None:
        """``clause`` with ``{}`` placeholders, one per value (they become ``$n``)."""
        numbers = []
        for value in values:
            self.args.append(value)
            numbers.append(f"${len(self.args)}")
        self.clauses.append(clause.format(*numbers))

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.clauses)) if self.clauses else ""

    def next(self) -> str:
        return f"${len(self.args) + 1}"


@dataclass(frozen=True)
class Page:
    items: list[Row]
    total: int


async def _page(
    connection: Connection,
    select: str,
    table: str,
    where: Where,
    order: str,
    limit: int,
    offset: int,
) -> Page:
    total: int = await connection.fetchval(
        f"SELECT count(*) FROM {table}{where.sql()}", *where.args
    )
    n = len(where.args)
    rows = await connection.fetch(
        f"SELECT {select} FROM {table}{where.sql()} ORDER BY {order}"
        f" LIMIT ${n + 1} OFFSET ${n + 2}",
        *where.args,
        limit,
        offset,
    )
    return Page([dict(row) for row in rows], total)


@dataclass(frozen=True)
class TransactionFilter:
    charge_point_id: str | None = None
    id_tag: str | None = None
    active: bool | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None

    def where(self) -> Where:
        where = Where()
        if self.charge_point_id is not None:
            where.add("charge_point_id = {}", self.charge_point_id)
        if self.id_tag is not None:
            where.add("lower(id_tag) = lower({})", self.id_tag)
        if self.active is not None:
            where.clauses.append("stopped_at IS NULL" if self.active else "stopped_at IS NOT NULL")
        if self.start_from is not None:
            where.add("started_at >= {}", self.start_from)
        if self.start_to is not None:
            where.add("started_at < {}", self.start_to)
        return where


class AdminQueries:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def ping(self) -> None:
        await self._database.run(lambda c: c.fetchval("SELECT 1"))

    # ---- charge points ------------------------------------------------------------

    async def charge_points(
        self, *, online: bool | None, registration_status: str | None, limit: int, offset: int
    ) -> Page:
        where = Where()
        if online is not None:
            where.add("online = {}", online)
        if registration_status is not None:
            where.add("registration_status = {}", registration_status)
        return await self._database.run(_page, "*", "charge_points", where, "id", limit, offset)

    async def charge_point_detail(self, charge_point_id: str) -> dict[str, Any] | None:
        """The charge point's row with its connectors, open transactions and configuration."""

        async def read(connection: Connection) -> dict[str, Any] | None:
            row = await connection.fetchrow(
                "SELECT * FROM charge_points WHERE id = $1", charge_point_id
            )
            if row is None:
                return None
            connectors = await connection.fetch(
                "SELECT * FROM connectors WHERE charge_point_id = $1 ORDER BY connector_id",
                charge_point_id,
            )
            transactions = await connection.fetch(
                "SELECT * FROM transactions WHERE charge_point_id = $1 AND stopped_at IS NULL"
                " ORDER BY transaction_id",
                charge_point_id,
            )
            configuration = await connection.fetch(
                "SELECT key, value, readonly, updated_at FROM charge_point_configuration"
                " WHERE charge_point_id = $1 ORDER BY key",
                charge_point_id,
            )
            return {
                "charge_point": dict(row),
                "connectors": [dict(r) for r in connectors],
                "transactions": [dict(r) for r in transactions],
                "configuration": [dict(r) for r in configuration],
            }

        return await self._database.run(read)

    async def status_history(self, charge_point_id: str, *, limit: int, offset: int) -> Page:
        where = Where()
        where.add("charge_point_id = {}", charge_point_id)
        return await self._database.run(
            _page, "*", "connector_status_history", where, "id DESC", limit, offset
        )

    async def messages(
        self,
        charge_point_id: str,
        *,
        action: str | None,
        direction: str | None,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        offset: int,
    ) -> Page:
        where = Where()
        where.add("charge_point_id = {}", charge_point_id)
        if action is not None:
            where.add("action = {}", action)
        if direction is not None:
            where.add("direction = {}", direction)
        if start is not None:
            where.add("logged_at >= {}", start)
        if end is not None:
            where.add("logged_at < {}", end)
        return await self._database.run(_page, "*", "message_log", where, "id", limit, offset)

    # ---- id tags --------------------------------------------------------------------

    async def id_tags(self, *, status: str | None, limit: int, offset: int) -> Page:
        where = Where()
        if status is not None:
            where.add("status = {}", status)
        return await self._database.run(_page, "*", "id_tags", where, "id_tag", limit, offset)

    # ---- transactions -----------------------------------------------------------------

    async def transactions(self, filter: TransactionFilter, *, limit: int, offset: int) -> Page:
        return await self._database.run(
            _page, "*", "transactions", filter.where(), "transaction_id", limit, offset
        )

    async def all_transactions(self, filter: TransactionFilter) -> list[Row]:
        """Every matching transaction (the CSV export), by transactionId."""
        where = filter.where()

        async def read(connection: Connection) -> list[Row]:
            rows = await connection.fetch(
                f"SELECT * FROM transactions{where.sql()} ORDER BY transaction_id", *where.args
            )
            return [dict(row) for row in rows]

        # every transaction there is: long by nature, so the long deadline
        return await self._database.run(read, deadline=LONG_DEADLINE)

    async def transaction_detail(self, transaction_id: int) -> tuple[Row, list[Row]] | None:
        """The transaction and its meter values (OCPP defaults filled in), in time order."""

        async def read(connection: Connection) -> tuple[Row, list[Row]] | None:
            row = await connection.fetchrow(
                "SELECT * FROM transactions WHERE transaction_id = $1", transaction_id
            )
            if row is None:
                return None
            values = await connection.fetch(
                "SELECT * FROM meter_values_effective WHERE transaction_id = $1"
                " AND charge_point_id = $2 ORDER BY sampled_at, set_id, ordinal",
                transaction_id,
                row["charge_point_id"],
            )
            return dict(row), [dict(v) for v in values]

        return await self._database.run(read)

    # ---- known configuration ------------------------------------------------------------

    async def replace_configuration(
        self,
        charge_point_id: str,
        keys: Sequence[tuple[str, str | None, bool | None]],
        at: datetime,
        *,
        complete: bool,
    ) -> None:
        """Store what a GetConfiguration reported: (key, value, readonly) triples. When the
        request asked for every key (``complete``), keys no longer reported are forgotten."""

        async def write(connection: Connection) -> None:
            if complete:
                await connection.execute(
                    "DELETE FROM charge_point_configuration WHERE charge_point_id = $1",
                    charge_point_id,
                )
            await connection.executemany(
                """
                INSERT INTO charge_point_configuration
                    (charge_point_id, key, value, readonly, updated_at)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (charge_point_id, key) DO UPDATE SET
                    value = EXCLUDED.value, readonly = EXCLUDED.readonly,
                    updated_at = EXCLUDED.updated_at
                """,
                [
                    (charge_point_id, pg_text(key), pg_text(value), readonly, at)
                    for key, value, readonly in keys
                ],
            )

        await self._database.run_in_transaction(write)

    async def set_configuration_value(
        self, charge_point_id: str, key: str, value: str, at: datetime
    ) -> None:
        """An accepted ChangeConfiguration: the key now has ``value``."""
        await self._database.run(
            lambda c: c.execute(
                """
                INSERT INTO charge_point_configuration
                    (charge_point_id, key, value, readonly, updated_at)
                VALUES ($1, $2, $3, false, $4)
                ON CONFLICT (charge_point_id, key) DO UPDATE SET
                    value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
                """,
                charge_point_id,
                pg_text(key),
                pg_text(value),
                at,
            )
        )
