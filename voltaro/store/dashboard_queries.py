"""Reads for the operator dashboard's overview and tables, each one crossing into asyncio.

Rows are plain dicts of column name to value (snake_case, as stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voltaro.store.database import Connection, Database

Row = dict[str, Any]


@dataclass(frozen=True)
class Overview:
    charge_points: int
    online: int
    pending: int
    connectors: list[Row]
    """Every connector of every charge point: charge_point_id, connector_id, status."""
    energy_today_wh: float
    energy_month_wh: float
    active_transactions: int


class DashboardQueries:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def connectors(self, charge_point_ids: list[str]) -> list[Row]:
        """The connectors of these charge points, by charge point then connector."""
        rows = await self._database.run(
            lambda c: c.fetch(
                "SELECT charge_point_id, connector_id, status, error_code FROM connectors"
                " WHERE charge_point_id = ANY($1::text[])"
                " ORDER BY charge_point_id, connector_id",
                charge_point_ids,
            )
        )
        return [dict(row) for row in rows]

    async def overview(self, day_start: datetime, month_start: datetime) -> Overview:
        """Counts for the overview; energy is that of transactions started since the start
        of the day / month (running energy for the active ones), negative energy (flagged,
        not billed) left out."""

        async def read(connection: Connection) -> Overview:
            counts = await connection.fetchrow(
                "SELECT count(*) AS total, count(*) FILTER (WHERE online) AS online,"
                " count(*) FILTER (WHERE registration_status = 'Pending') AS pending"
                " FROM charge_points"
            )
            connectors = await connection.fetch(
                "SELECT c.charge_point_id, c.connector_id, c.status, p.online"
                " FROM connectors c JOIN charge_points p ON p.id = c.charge_point_id"
                " ORDER BY c.charge_point_id, c.connector_id"
            )
            energy = await connection.fetchrow(
                "SELECT coalesce(sum(energy_wh) FILTER (WHERE started_at >= $1"
                " AND energy_wh >= 0), 0) AS today,"
                " coalesce(sum(energy_wh) FILTER (WHERE started_at >= $2"
                " AND energy_wh >= 0), 0) AS month,"
                " count(*) FILTER (WHERE stopped_at IS NULL) AS active"
                " FROM transactions WHERE started_at >= $2 OR stopped_at IS NULL",
                day_start,
                month_start,
            )
            return Overview(
                charge_points=counts["total"],
                online=counts["online"],
                pending=counts["pending"],
                connectors=[dict(row) for row in connectors],
                energy_today_wh=float(energy["today"]),
                energy_month_wh=float(energy["month"]),
                active_transactions=energy["active"],
            )

        result: Overview = await self._database.run(read)
        return result
