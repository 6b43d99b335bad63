"""Running Voltaro instances and their leases (``instances``, migration 0010).

An instance registers at start, renews its lease while it runs and retires at shutdown.
An instance whose lease ran out is dead (killed, frozen, cut off from the database): any
live instance expires it, which records its chargers offline (those that did not reconnect
elsewhere meanwhile) and removes its row. All lease times are the database's ``now()``, so
the instances' clocks need not agree.

The renewal can run on a connection of its own (:meth:`InstanceRepository.dedicated`):
then a pool busy with the rest of the process's traffic cannot make a live instance late.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from voltaro.store.database import (
    Connection,
    Database,
    DedicatedConnection,
    open_dedicated_connection,
)


@dataclass(frozen=True)
class Expired:
    """A dead instance, expired: its id and the chargers recorded offline for it."""

    instance_id: str
    charge_point_ids: list[str]


@dataclass(frozen=True)
class Renewal:
    """What a renewal found: how many instances are alive (this one included), and whether
    this one had been expired meanwhile (its row was gone: it registered again)."""

    alive: int
    rejoined: bool


@dataclass(frozen=True)
class InstanceRecord:
    """A row of ``instances``, with the chargers recorded online at it."""

    id: str
    host: str
    pid: int
    started_at: datetime
    alive_until: datetime
    live: bool
    """Its lease has not run out (the database's clock)."""
    chargers: int


class InstanceRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def register(self, instance_id: str, host: str, pid: int, lease: float) -> None:
        """This instance runs (again), its lease ``lease`` seconds from now."""

        async def write(connection: Connection) -> None:
            await connection.execute(
                """
                INSERT INTO instances (id, host, pid, alive_until)
                VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
                    started_at = now(), alive_until = EXCLUDED.alive_until
                """,
                instance_id,
                host,
                pid,
                lease,
            )

        await self._database.run(write)

    @asynccontextmanager
    async def dedicated(self) -> AsyncIterator[DedicatedConnection]:
        """A connection of its own for :meth:`renew`, for the block (see the module doc)."""
        database = self._database
        async with open_dedicated_connection(database.url, deadline=database.deadline) as link:
            yield link

    async def renew(
        self,
        instance_id: str,
        lease: float,
        on: DedicatedConnection | None = None,
        *,
        host: str = "?",
        pid: int = 0,
    ) -> Renewal:
        """Extend the lease (on the connection ``on``, else a pooled one). An instance
        expired meanwhile (frozen, or too busy to renew, for longer than its lease) registers
        again (as ``host`` and ``pid``), and the renewal says so."""

        async def write(connection: Connection) -> Renewal:
            renewed = await connection.execute(
                "UPDATE instances SET alive_until = now() + make_interval(secs => $2)"
                " WHERE id = $1",
                instance_id,
                lease,
            )
            if renewed == "UPDATE 0":
                await connection.execute(
                    "INSERT INTO instances (id, host, pid, alive_until)"
                    " VALUES ($1, $3, $4, now() + make_interval(secs => $2))"
                    " ON CONFLICT (id) DO NOTHING",
                    instance_id,
                    lease,
                    host,
                    pid,
                )
            alive: int = await connection.fetchval(
                "SELECT count(*) FROM instances WHERE alive_until > now()"
            )
            return Renewal(alive, rejoined=renewed == "UPDATE 0")

        if on is not None:
            return await on.run(write)
        return await self._database.run(write)

    async def retire(self, instance_id: str) -> None:
        await self._database.run(
            lambda c: c.execute("DELETE FROM instances WHERE id = $1", instance_id)
        )

    async def expire_dead(self, judge: str, reason: str) -> list[Expired]:
        """Expire every other instance than ``judge`` whose lease ran out: its chargers still
        recorded at it go offline (an event each, ``reason``), its row goes. Two instances
        doing this at once do not both expire one (SKIP LOCKED); an instance never expires
        itself (late with its own renewal, it is alive: it is the one asking)."""

        async def apply(connection: Connection) -> list[Expired]:
            dead = await connection.fetch(
                "SELECT id FROM instances WHERE alive_until < now() AND id <> $1"
                " FOR UPDATE SKIP LOCKED",
                judge,
            )
            expired = []
            for row in dead:
                instance_id = row["id"]
                rows = await connection.fetch(
                    """
                    WITH changed AS (
                        UPDATE charge_points SET online = false, instance_id = NULL
                        WHERE online AND instance_id = $1 RETURNING id)
                    INSERT INTO presence_events (charge_point_id, at, online, reason, instance_id)
                    SELECT id, now(), false, $2, $1 FROM changed RETURNING charge_point_id
                    """,
                    instance_id,
                    reason,
                )
                await connection.execute("DELETE FROM instances WHERE id = $1", instance_id)
                expired.append(Expired(instance_id, [r[0] for r in rows]))
            return expired

        return await self._database.run_in_transaction(apply)

    async def list_all(self) -> list[InstanceRecord]:
        """Every registered instance by id: the live ones, and those whose lease ran out
        that no live instance has expired yet."""
        rows = await self._database.run(
            lambda c: c.fetch(
                """
                SELECT i.id, i.host, i.pid, i.started_at, i.alive_until,
                       i.alive_until > now() AS live, coalesce(held.chargers, 0) AS chargers
                FROM instances i
                LEFT JOIN (SELECT instance_id, count(*) AS chargers FROM charge_points
                           WHERE online GROUP BY instance_id) held ON held.instance_id = i.id
                ORDER BY i.id
                """
            )
        )
        return [InstanceRecord(**dict(row)) for row in rows]

    async def holder(self, charge_point_id: str) -> str | None:
        """The live instance the charger is recorded online at, or None."""

        async def read(connection: Connection) -> str | None:
            holder: str | None = await connection.fetchval(
                """
                SELECT c.instance_id FROM charge_points c
                JOIN instances i ON i.id = c.instance_id AND i.alive_until > now()
                WHERE c.id = $1 AND c.online
                """,
                charge_point_id,
            )
            return holder

        return await self._database.run(read)
