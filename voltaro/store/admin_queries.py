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
    total_capped: bool = False
    """More rows match than were counted (``total`` is :data:`COUNT_CAP`)."""


COUNT_CAP = 100_000
"""Rows counted at most for a list's total: counting every one of millions of matching log
entries on each page would cost more than the page; past this, "100,000 or more"."""


@dataclass(frozen=True)
class SortKey:
    """A column a list may be ordered by. ``nullable`` columns put their NULLs last both
    ways; the others leave the NULLS clause out, so an index on the column can serve."""

    column: str
    nullable: bool = False


@dataclass(frozen=True)
class Order:
    """A list's order: one of its sort keys (by name) and the direction. Rows that tie are
    ordered by the list's unique key in the same direction, so pages never overlap."""

    key: str
    descending: bool = False


@dataclass(frozen=True)
class Period:
    """A list's date filter: the rows whose time ``key`` (one of the list's date keys) is at
    or after ``start`` and before ``end``; either end may be open. A row without that time
    (a charge point never seen, an id tag that never expires) is outside every period."""

    key: str
    start: datetime | None = None
    end: datetime | None = None

    def add_to(self, where: Where, columns: dict[str, str]) -> None:
        column = columns.get(self.key)
        if column is None:  # the admin layer checks names first; this guards the SQL text
            raise ValueError(f"no date {self.key!r} (allowed: {', '.join(columns)})")
        if self.start is not None:
            where.add(f"{column} >= {{}}", self.start)
        if self.end is not None:
            where.add(f"{column} < {{}}", self.end)


def like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def order_by(keys: dict[str, SortKey], order: Order, unique: str) -> str:
    """The ORDER BY text for ``order`` among ``keys``, ties broken by ``unique``."""
    key = keys.get(order.key)
    if key is None:  # the admin layer checks names first; this guards the SQL text
        raise ValueError(f"cannot order by {order.key!r} (allowed: {', '.join(keys)})")
    direction = "DESC" if order.descending else "ASC"
    first = f"{key.column} {direction}" + (" NULLS LAST" if key.nullable else "")
    return first if key.column == unique else f"{first}, {unique} {direction}"


async def _page(
    connection: Connection,
    select: str,
    table: str,
    where: Where,
    order: str,
    limit: int,
    offset: int,
) -> Page:
    counted: int = await connection.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM {table}{where.sql()} LIMIT {COUNT_CAP + 1}) AS m",
        *where.args,
    )
    n = len(where.args)
    rows = await connection.fetch(
        f"SELECT {select} FROM {table}{where.sql()} ORDER BY {order}"
        f" LIMIT ${n + 1} OFFSET ${n + 2}",
        *where.args,
        limit,
        offset,
    )
    capped = counted > COUNT_CAP
    return Page([dict(row) for row in rows], min(counted, COUNT_CAP), capped)


CHARGE_POINT_SORTS = {
    "id": SortKey("id"),
    "online": SortKey("online"),
    "registration_status": SortKey("registration_status"),
    "last_seen": SortKey("last_seen", nullable=True),
    "vendor": SortKey("vendor", nullable=True),
    "model": SortKey("model", nullable=True),
    "firmware_version": SortKey("firmware_version", nullable=True),
}
ID_TAG_SORTS = {
    "id_tag": SortKey("id_tag"),
    "status": SortKey("status"),
    "expiry_date": SortKey("expiry_date", nullable=True),
    "parent_id_tag": SortKey("parent_id_tag", nullable=True),
    "created_at": SortKey("created_at"),
    "updated_at": SortKey("updated_at"),
}
TRANSACTION_SORTS = {
    "transaction_id": SortKey("transaction_id"),
    "charge_point_id": SortKey("charge_point_id"),
    "id_tag": SortKey("id_tag"),
    "started_at": SortKey("started_at"),
    "stopped_at": SortKey("stopped_at", nullable=True),
    "energy_wh": SortKey("energy_wh", nullable=True),
}
MESSAGE_SORTS = {
    "logged_at": SortKey("logged_at"),
    "charge_point_id": SortKey("charge_point_id"),
    "action": SortKey("action", nullable=True),
}
STATUS_HISTORY_SORTS = {
    "received_at": SortKey("received_at"),
    "connector_id": SortKey("connector_id"),
    "status": SortKey("status"),
}
CHARGE_POINT_DATES = {"last_seen": "last_seen", "created_at": "created_at"}
ID_TAG_DATES = {
    "expiry_date": "expiry_date",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
REFUSED_ID_TAG_SORTS = {
    "last_seen": SortKey("r.last_seen"),
    "id_tag": SortKey("r.id_tag"),
    "times": SortKey("r.times"),
    "reason": SortKey("r.reason"),
    "charge_point_id": SortKey("r.charge_point_id"),
}


@dataclass(frozen=True)
class TransactionFilter:
    charge_point_id: str | None = None
    id_tag: str | None = None
    active: bool | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    search: str | None = None
    """Part of the charge point's id or of the id tag, any case (see
    :func:`_transaction_where`)."""

    def where(self) -> Where:
        """The filters but the search (which needs the database to resolve)."""
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


async def _matching_charge_points(connection: Connection, search: str) -> list[str]:
    """The ids of the charge points (as registered now) that contain ``search``."""
    rows = await connection.fetch(
        "SELECT id FROM charge_points WHERE id ILIKE $1", like_pattern(search)
    )
    return [row[0] for row in rows]


async def _matching_id_tags(connection: Connection, search: str) -> list[str]:
    """The id tags (lower case) known or refused that contain ``search``."""
    rows = await connection.fetch(
        "SELECT lower(id_tag) FROM id_tags WHERE id_tag ILIKE $1"
        " UNION SELECT key FROM refused_id_tags WHERE id_tag ILIKE $1",
        like_pattern(search),
    )
    return [row[0] for row in rows]


async def _transaction_where(connection: Connection, filter: TransactionFilter) -> Where:
    """The filter's WHERE clause, its search resolved first against the small tables: the
    charge points and id tags (known or refused) whose ids contain it. The transactions are
    then found through their indexes (transactions_cp, transactions_id_tag) instead of a
    substring test of every one of millions of rows (seconds, measured: see
    ``benchmarks/list_queries.py``). A transaction of a charge point since removed, or of a
    tag since deleted and never refused, is not found by a search (its exact filter finds
    it)."""
    where = filter.where()
    if filter.search:
        charge_points = await _matching_charge_points(connection, filter.search)
        id_tags = await _matching_id_tags(connection, filter.search)
        where.add(
            "(charge_point_id = ANY({}::text[]) OR lower(id_tag) = ANY({}::text[]))",
            charge_points,
            id_tags,
        )
    return where


class AdminQueries:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def ping(self) -> None:
        await self._database.run(lambda c: c.fetchval("SELECT 1"))

    # ---- charge points ------------------------------------------------------------

    async def charge_points(
        self,
        *,
        online: bool | None,
        registration_status: str | None,
        limit: int,
        offset: int,
        search: str | None = None,
        order: Order = Order("id"),
        period: Period | None = None,
    ) -> Page:
        """``search``: part of the id, vendor or model, any case; ``period``: of one of
        :data:`CHARGE_POINT_DATES` (last seen, registered). No index serves the dates (nor
        the other orders): 20,000 short rows are scanned in a few milliseconds, and an index
        on ``last_seen`` would cost every charger's presence update (see migration 0015)."""
        where = Where()
        if online is not None:
            where.add("online = {}", online)
        if registration_status is not None:
            where.add("registration_status = {}", registration_status)
        if period is not None:
            period.add_to(where, CHARGE_POINT_DATES)
        if search:
            where.add("(id ILIKE {0} OR vendor ILIKE {0} OR model ILIKE {0})", like_pattern(search))
        sql_order = order_by(CHARGE_POINT_SORTS, order, "id")
        return await self._database.run(
            _page, "*", "charge_points", where, sql_order, limit, offset
        )

    async def charge_point(self, charge_point_id: str) -> Row | None:
        """The charge point's row, for one row of a list (the dashboard's live rows)."""
        row = await self._database.run(
            lambda c: c.fetchrow("SELECT * FROM charge_points WHERE id = $1", charge_point_id)
        )
        return None if row is None else dict(row)

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

    async def status_history(
        self,
        charge_point_id: str,
        *,
        limit: int,
        offset: int,
        order: Order = Order("received_at", descending=True),
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page:
        where = Where()
        where.add("charge_point_id = {}", charge_point_id)
        if start is not None:
            where.add("received_at >= {}", start)
        if end is not None:
            where.add("received_at < {}", end)
        sql_order = order_by(STATUS_HISTORY_SORTS, order, "id")
        return await self._database.run(
            _page, "*", "connector_status_history", where, sql_order, limit, offset
        )

    async def messages(
        self,
        charge_point_id: str | None,
        *,
        action: str | None,
        direction: str | None,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        offset: int,
        search: str | None = None,
        order: Order = Order("logged_at", descending=True),
    ) -> Page:
        """The message log of one charge point, or of all (``charge_point_id`` None).
        ``search``: of one charge point, part of the message id; of all, part of the id of
        a charge point registered now (resolved first, then found through the log's index
        per charge point, as the transactions' search)."""
        where = Where()
        if charge_point_id is not None:
            where.add("charge_point_id = {}", charge_point_id)
        if action is not None:
            where.add("action = {}", action)
        if direction is not None:
            where.add("direction = {}", direction)
        if start is not None:
            where.add("logged_at >= {}", start)
        if end is not None:
            where.add("logged_at < {}", end)
        if search and charge_point_id is not None:
            where.add("message_id ILIKE {}", like_pattern(search))
        sql_order = order_by(MESSAGE_SORTS, order, "id")

        async def read(connection: Connection) -> Page:
            found = Where(list(where.clauses), list(where.args))  # run may be run again
            if search and charge_point_id is None:
                matching = await _matching_charge_points(connection, search)
                found.add("charge_point_id = ANY({}::text[])", matching)
            return await _page(connection, "*", "message_log", found, sql_order, limit, offset)

        return await self._database.run(read)

    # ---- id tags --------------------------------------------------------------------

    async def id_tags(
        self,
        *,
        status: str | None,
        limit: int,
        offset: int,
        search: str | None = None,
        order: Order = Order("id_tag"),
        period: Period | None = None,
    ) -> Page:
        """``search``: part of the id tag or of its parent, any case; ``period``: of one of
        :data:`ID_TAG_DATES` (expiry, added, last changed)."""
        where = Where()
        if status is not None:
            where.add("status = {}", status)
        if period is not None:
            period.add_to(where, ID_TAG_DATES)
        if search:
            where.add("(id_tag ILIKE {0} OR parent_id_tag ILIKE {0})", like_pattern(search))
        sql_order = order_by(ID_TAG_SORTS, order, "id_tag")
        return await self._database.run(_page, "*", "id_tags", where, sql_order, limit, offset)

    async def id_tag(self, id_tag: str) -> Row | None:
        """The id tag's row (matched in any case), with when it was added and changed."""
        row = await self._database.run(
            lambda c: c.fetchrow("SELECT * FROM id_tags WHERE lower(id_tag) = lower($1)", id_tag)
        )
        return None if row is None else dict(row)

    async def refused_id_tags(
        self,
        *,
        reason: str | None,
        limit: int,
        offset: int,
        search: str | None = None,
        order: Order = Order("last_seen", descending=True),
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page:
        """The id tags chargers presented and were refused, with the tag's status now
        (``current_status``: None while it is still unknown); ``start``/``end`` bound when
        they were last refused."""
        where = Where()
        if reason is not None:
            where.add("r.reason = {}", reason)
        if start is not None:
            where.add("r.last_seen >= {}", start)
        if end is not None:
            where.add("r.last_seen < {}", end)
        if search:
            where.add("(r.id_tag ILIKE {0} OR r.charge_point_id ILIKE {0})", like_pattern(search))
        sql_order = order_by(REFUSED_ID_TAG_SORTS, order, "r.key")
        return await self._database.run(
            _page,
            "r.*, t.status AS current_status",
            "refused_id_tags r LEFT JOIN id_tags t ON lower(t.id_tag) = r.key",
            where,
            sql_order,
            limit,
            offset,
        )

    # ---- transactions -----------------------------------------------------------------

    async def transactions(
        self,
        filter: TransactionFilter,
        *,
        limit: int,
        offset: int,
        order: Order = Order("transaction_id", descending=True),
    ) -> Page:
        sql_order = order_by(TRANSACTION_SORTS, order, "transaction_id")

        async def read(connection: Connection) -> Page:
            where = await _transaction_where(connection, filter)
            return await _page(connection, "*", "transactions", where, sql_order, limit, offset)

        return await self._database.run(read)

    async def transactions_by_id(self, transaction_ids: Sequence[int]) -> list[Row]:
        """These transactions' rows, without their meter values (rows of a list), by id."""
        rows = await self._database.run(
            lambda c: c.fetch(
                "SELECT * FROM transactions WHERE transaction_id = ANY($1::integer[])"
                " ORDER BY transaction_id",
                list(transaction_ids),
            )
        )
        return [dict(row) for row in rows]

    async def all_transactions(self, filter: TransactionFilter) -> list[Row]:
        """Every matching transaction (the CSV export), by transactionId."""

        async def read(connection: Connection) -> list[Row]:
            where = await _transaction_where(connection, filter)
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
