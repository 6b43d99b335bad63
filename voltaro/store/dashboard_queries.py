"""Reads for the operator dashboard's overview and tables, each one crossing into asyncio.

Rows are plain dicts of column name to value (snake_case, as stored).

The charts' aggregates (migration 0016 says which table and index each reads) are given
for every day or hour asked for, zero where nothing happened, so that a chart's axis does
not depend on the data. Days are UTC days, as every time the dashboard shows is UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from voltaro.store.database import Connection, Database

Row = dict[str, Any]


@dataclass(frozen=True)
class Overview:
    charge_points: int
    online: int
    pending: int
    faulted: int
    """Charge points with a Faulted connector (or connector 0)."""
    charging: int
    """Connectors in Charging."""
    energy_today_wh: float
    energy_month_wh: float
    active_transactions: int


@dataclass(frozen=True)
class DayEnergy:
    day: date
    energy_wh: float
    """Of the transactions stopped that day (negative energy, flagged, left out)."""
    sessions: int
    """Transactions stopped that day."""


@dataclass(frozen=True)
class HourCount:
    hour: datetime
    sessions: int
    """Transactions started in the hour."""


@dataclass(frozen=True)
class FleetSample:
    at: datetime
    """The start of the five minutes sampled."""
    charge_points: int
    online: int
    charging: int
    """Connectors (not connector 0) in Charging, of online chargers."""


@dataclass(frozen=True)
class ConnectorUse:
    connector_id: int
    charging_seconds: float
    known_seconds: float
    """The part of the period since the connector's first status (and before ``now``)."""

    @property
    def share(self) -> float:
        return self.charging_seconds / self.known_seconds if self.known_seconds > 0 else 0.0


# Each day in [$1, $2]; the days still pending a fold (and $3, today) summed from the
# transactions that stopped then, the others read from the rollup.
ENERGY_PER_DAY = """
WITH days AS (
    SELECT d::date AS day FROM generate_series($1::date, $2::date, interval '1 day') AS d
), live AS (
    SELECT day FROM days
    WHERE day = $3::date OR day IN (SELECT day FROM energy_per_day_pending)
), live_totals AS (
    SELECT l.day,
           coalesce(sum(t.energy_wh) FILTER (WHERE t.energy_wh >= 0), 0) AS energy_wh,
           count(t.stopped_at) AS sessions
    FROM live AS l
    LEFT JOIN transactions AS t
        ON t.stopped_at >= l.day::timestamp AT TIME ZONE 'UTC'
       AND t.stopped_at < (l.day + 1)::timestamp AT TIME ZONE 'UTC'
    GROUP BY l.day
)
SELECT d.day, coalesce(lt.energy_wh, e.energy_wh, 0) AS energy_wh,
       coalesce(lt.sessions, e.sessions, 0) AS sessions
FROM days AS d
LEFT JOIN live_totals AS lt ON lt.day = d.day
LEFT JOIN energy_per_day AS e ON e.day = d.day
ORDER BY d.day
"""

SESSIONS_PER_HOUR = """
WITH counted AS (
    SELECT date_bin('1 hour', started_at, $1::timestamptz) AS hour, count(*) AS sessions
    FROM transactions
    WHERE started_at >= $1::timestamptz AND started_at < $1::timestamptz + $2 * interval '1 hour'
    GROUP BY 1
)
SELECT h.hour, coalesce(c.sessions, 0) AS sessions
FROM generate_series($1::timestamptz, $1::timestamptz + ($2 - 1) * interval '1 hour',
                     interval '1 hour') AS h(hour)
LEFT JOIN counted AS c ON c.hour = h.hour
ORDER BY h.hour
"""

CHARGE_POINT_ENERGY_PER_DAY = """
WITH totals AS (
    SELECT (stopped_at AT TIME ZONE 'UTC')::date AS day,
           coalesce(sum(energy_wh) FILTER (WHERE energy_wh >= 0), 0) AS energy_wh,
           count(*) AS sessions
    FROM transactions
    WHERE charge_point_id = $3
      AND stopped_at >= $1::date::timestamp AT TIME ZONE 'UTC'
      AND stopped_at < ($2::date + 1)::timestamp AT TIME ZONE 'UTC'
    GROUP BY 1
)
SELECT d::date AS day, coalesce(t.energy_wh, 0) AS energy_wh, coalesce(t.sessions, 0) AS sessions
FROM generate_series($1::date, $2::date, interval '1 day') AS d
LEFT JOIN totals AS t ON t.day = d::date
ORDER BY 1
"""

# Per connector: its status at $2 (the last change before) and its changes until $3, each
# lasting until the next change (the last until $3), clipped to [$2, $3].
UTILISATION = """
SELECT c.connector_id,
       coalesce(sum(extract(epoch FROM h.until - h.since))
                FILTER (WHERE h.status = 'Charging'), 0)::float8 AS charging_seconds,
       coalesce(sum(extract(epoch FROM h.until - h.since)), 0)::float8 AS known_seconds
FROM connectors AS c
LEFT JOIN LATERAL (
    SELECT s.status, greatest(s.received_at, $2) AS since,
           least(coalesce(lead(s.received_at) OVER (ORDER BY s.received_at, s.id), $3), $3)
               AS until
    FROM (
        (SELECT status, received_at, id FROM connector_status_history
         WHERE charge_point_id = c.charge_point_id AND connector_id = c.connector_id
           AND received_at < $2
         ORDER BY received_at DESC, id DESC LIMIT 1)
        UNION ALL
        (SELECT status, received_at, id FROM connector_status_history
         WHERE charge_point_id = c.charge_point_id AND connector_id = c.connector_id
           AND received_at >= $2 AND received_at < $3)
    ) AS s
) AS h ON h.until > h.since
WHERE c.charge_point_id = $1 AND c.connector_id > 0
GROUP BY c.connector_id
ORDER BY c.connector_id
"""


def _days(rows: list[Any]) -> list[DayEnergy]:
    return [DayEnergy(r["day"], float(r["energy_wh"]), int(r["sessions"])) for r in rows]


async def energy_per_day(
    connection: Connection, first: date, last: date, today: date
) -> list[DayEnergy]:
    """The fleet's energy per day from ``first`` to ``last`` (inclusive)."""
    return _days(await connection.fetch(ENERGY_PER_DAY, first, last, today))


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
        """Counts for the overview. Energy today / this month: that of the transactions
        stopped since the start of the day / month (as the energy per day) plus the running
        energy of the active ones; negative energy (flagged, not billed) left out."""

        async def read(connection: Connection) -> Overview:
            counts = await connection.fetchrow(
                "SELECT count(*) AS total, count(*) FILTER (WHERE online) AS online,"
                " count(*) FILTER (WHERE registration_status = 'Pending') AS pending"
                " FROM charge_points"
            )
            # counted here: at 20,000 chargers every connector's row is some 60,000 rows
            connectors = await connection.fetchrow(
                "SELECT count(DISTINCT charge_point_id) FILTER (WHERE status = 'Faulted')"
                " AS faulted, count(*) FILTER (WHERE status = 'Charging') AS charging"
                " FROM connectors"
            )
            # Through the rollup and the open-transactions index: summing the month's
            # transactions themselves reads some million rows at 20,000 chargers.
            running = await connection.fetchrow(
                "SELECT coalesce(sum(energy_wh) FILTER (WHERE energy_wh >= 0), 0) AS wh,"
                " count(*) AS active FROM transactions WHERE stopped_at IS NULL"
            )
            days = await energy_per_day(
                connection, month_start.date(), day_start.date(), day_start.date()
            )
            running_wh = float(running["wh"])
            return Overview(
                charge_points=counts["total"],
                online=counts["online"],
                pending=counts["pending"],
                faulted=connectors["faulted"],
                charging=connectors["charging"],
                energy_today_wh=days[-1].energy_wh + running_wh,
                energy_month_wh=sum(d.energy_wh for d in days) + running_wh,
                active_transactions=running["active"],
            )

        result: Overview = await self._database.run(read)
        return result

    # ---- the charts ---------------------------------------------------------------------

    async def energy_per_day(self, first: date, last: date, today: date) -> list[DayEnergy]:
        """The fleet's energy per day, ``first`` to ``last`` inclusive; ``today`` (and any
        day a recent stop changed) is summed from its transactions, the rest comes from the
        daily rollup."""
        return await self._database.run(energy_per_day, first, last, today)

    async def sessions_per_hour(self, first_hour: datetime, hours: int) -> list[HourCount]:
        """Transactions started in each of ``hours`` hours from ``first_hour``."""
        rows = await self._database.run(lambda c: c.fetch(SESSIONS_PER_HOUR, first_hour, hours))
        return [HourCount(r["hour"], int(r["sessions"])) for r in rows]

    async def fleet_samples(self, since: datetime, until: datetime) -> list[FleetSample]:
        """The five-minute samples taken in ``[since, until)``, oldest first (none where no
        instance ran)."""
        rows = await self._database.run(
            lambda c: c.fetch(
                "SELECT at, charge_points, online, charging FROM fleet_samples"
                " WHERE at >= $1 AND at < $2 ORDER BY at",
                since,
                until,
            )
        )
        return [FleetSample(r["at"], r["charge_points"], r["online"], r["charging"]) for r in rows]

    async def charge_point_energy_per_day(
        self, charge_point_id: str, first: date, last: date
    ) -> list[DayEnergy]:
        """One charge point's energy per day, ``first`` to ``last`` inclusive."""
        rows = await self._database.run(
            lambda c: c.fetch(CHARGE_POINT_ENERGY_PER_DAY, first, last, charge_point_id)
        )
        return _days(rows)

    async def utilisation(
        self, charge_point_id: str, since: datetime, now: datetime
    ) -> list[ConnectorUse]:
        """Per connector (not 0) of the charge point: how long it was Charging between
        ``since`` and ``now``, by its status history (a charger that went offline while
        Charging counts as charging until its next status: the history knows no better)."""
        rows = await self._database.run(lambda c: c.fetch(UTILISATION, charge_point_id, since, now))
        return [
            ConnectorUse(r["connector_id"], r["charging_seconds"], r["known_seconds"]) for r in rows
        ]
