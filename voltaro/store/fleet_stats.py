"""Upkeep of the tables the charts read (migration 0016): the fleet's energy per day and the
five-minute samples of chargers online and connectors charging.

Both run from the central system's housekeeping, on every instance: the database decides
which instance does the work (an advisory lock for the fold, the sample's primary key), so
no instance needs to be the leader. Neither is on a charger's path: a StopTransaction only
appends its day to ``energy_per_day_pending`` (a trigger), and nothing waits for a fold.
"""

from __future__ import annotations

from datetime import timedelta

from voltaro.store.database import Connection, Database

SAMPLE_PERIOD = timedelta(minutes=5)  # 288 points a day: finer than a chart of 24 h shows


class FleetStats:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def fold(self) -> int:
        """Recompute the days whose transactions changed since the last fold; returns how
        many days (0 also when another instance is folding at this moment)."""

        async def fold(connection: Connection) -> int:
            folded: int = await connection.fetchval("SELECT energy_per_day_fold()")
            return folded

        return await self._database.run(fold)

    async def sample(self) -> bool:
        """Record the current period's counts unless an instance already did; returns
        whether this call did."""

        async def take(connection: Connection) -> bool:
            taken: bool = await connection.fetchval("SELECT fleet_samples_take($1)", SAMPLE_PERIOD)
            return taken

        return await self._database.run(take)

    async def upkeep(self) -> None:
        """The fold, then the sample: one housekeeping step."""
        await self.fold()
        await self.sample()
