"""Reservations (migration 0012): the records of the Reservation profile and their history.

Every change of status is one statement that updates the reservation *only from the
statuses it may leave* and appends the history row of the change, so it is atomic and
idempotent: several instances may run the same change (the expiry check runs on all of
them) and only one of them changes anything. Each method is one crossing into asyncio and
returns the ids of the reservations it changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voltaro.store.database import Connection, Database

Row = dict[str, Any]

ACCEPTED = "Accepted"
EXPIRED = "Expired"
REQUESTED = "Requested"
NO_ANSWER = "NoAnswer"
ANSWERS = ("Accepted", "Faulted", "Occupied", "Rejected", "Unavailable")
ENDINGS = ("Used", "Cancelled", EXPIRED, "ConnectorUnavailable", "ConnectorFaulted")
STATUSES = (REQUESTED, NO_ANSWER, *ANSWERS, *ENDINGS)
NOT_ANSWERED = (REQUESTED, NO_ANSWER)
"""Sent but not answered: the charger may hold it all the same (its answer was lost), so a
StartTransaction naming it uses it and a CancelReservation it accepts cancels it."""

# One status change and its history row, in one statement.
_CHANGE = """
WITH changed AS (
    UPDATE reservations SET status = $1, updated_at = $2,
        transaction_id = coalesce($3, transaction_id)
    WHERE {where} AND status = ANY($4::text[])
    RETURNING reservation_id
)
INSERT INTO reservation_history (reservation_id, at, status, detail)
SELECT reservation_id, $2, $1, $5::text FROM changed
RETURNING reservation_id
"""

_ITEM_COLUMNS = """
    r.reservation_id, r.charge_point_id, r.connector_id, r.id_tag, r.parent_id_tag,
    r.expiry_date, r.status, r.transaction_id, r.created_at, r.updated_at,
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'status', h.status, 'at', h.at, 'detail', h.detail) ORDER BY h.id), '[]'::jsonb)
     FROM reservation_history h WHERE h.reservation_id = r.reservation_id) AS history
"""


@dataclass(frozen=True)
class ReservationFilter:
    charge_point_id: str | None = None
    status: str | None = None
    active: bool | None = None
    """True: Accepted and not past its expiry; False: every other."""

    def where(self, now: datetime) -> tuple[str, list[Any]]:
        clauses: list[str] = ["true"]
        args: list[Any] = []
        if self.charge_point_id is not None:
            args.append(self.charge_point_id)
            clauses.append(f"r.charge_point_id = ${len(args)}")
        if self.status is not None:
            args.append(self.status)
            clauses.append(f"r.status = ${len(args)}")
        if self.active is not None:
            args.append(now)
            active = f"(r.status = 'Accepted' AND r.expiry_date > ${len(args)})"
            clauses.append(active if self.active else f"NOT {active}")
        return " AND ".join(clauses), args


class ReservationRepository:
    """The reservation records (see the module doc)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(
        self,
        charge_point_id: str,
        connector_id: int,
        id_tag: str,
        parent_id_tag: str | None,
        expiry_date: datetime,
        now: datetime,
    ) -> int:
        """A new reservation, Requested: its id is the reservationId to send."""

        async def insert(connection: Connection) -> int:
            reservation_id: int = await connection.fetchval(
                "INSERT INTO reservations (charge_point_id, connector_id, id_tag,"
                " parent_id_tag, expiry_date, status, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING reservation_id",
                charge_point_id,
                connector_id,
                id_tag,
                parent_id_tag,
                expiry_date,
                REQUESTED,
                now,
            )
            await connection.execute(
                "INSERT INTO reservation_history (reservation_id, at, status) VALUES ($1, $2, $3)",
                reservation_id,
                now,
                REQUESTED,
            )
            return reservation_id

        return await self._database.run_in_transaction(insert)

    async def answered(self, reservation_id: int, status: str, now: datetime) -> list[int]:
        """The charger's answer to ReserveNow (or NoAnswer, with why, via :meth:`failed`)."""
        return await self._change(
            "reservation_id = $6", (reservation_id,), status, now, NOT_ANSWERED
        )

    async def failed(self, reservation_id: int, why: str, now: datetime) -> list[int]:
        return await self._change(
            "reservation_id = $6", (reservation_id,), NO_ANSWER, now, (REQUESTED,), why
        )

    async def cancelled(
        self, charge_point_id: str, reservation_id: int, now: datetime
    ) -> list[int]:
        """CancelReservation answered Accepted by the charge point."""
        return await self._change(
            "charge_point_id = $6 AND reservation_id = $7",
            (charge_point_id, reservation_id),
            "Cancelled",
            now,
            (ACCEPTED, *NOT_ANSWERED),
        )

    async def note(
        self, charge_point_id: str, reservation_id: int, what: str, detail: str, now: datetime
    ) -> None:
        """A history row that changes no status (a refused cancellation)."""

        async def insert(connection: Connection) -> None:
            await connection.execute(
                "INSERT INTO reservation_history (reservation_id, at, status, detail)"
                " SELECT reservation_id, $2, $3, $4 FROM reservations"
                " WHERE reservation_id = $1 AND charge_point_id = $5",
                reservation_id,
                now,
                what,
                detail,
                charge_point_id,
            )

        await self._database.run(insert)

    async def use(
        self,
        charge_point_id: str,
        connector_id: int,
        reservation_id: int | None,
        id_tags: Sequence[str],
        parent_id_tag: str | None,
        transaction_id: int,
        now: datetime,
    ) -> list[int]:
        """A transaction started: the reservation it names (``reservationId``) is Used, also
        when it had been marked Expired but the transaction started (its ``started_at``, the
        charger's clock) before the expiry: a charger offline when the driver came sends its
        StartTransaction late. Else the Accepted one of the charge point on its connector (or
        on connector 0, any) whose id tag is one of ``id_tags`` or whose parent is
        ``parent_id_tag``, the one on that very connector first. Case-insensitive, as id tags
        are matched everywhere."""
        detail = f"transaction {transaction_id} on connector {connector_id}"
        if reservation_id is not None:
            used = await self._change(
                """charge_point_id = $6 AND reservation_id = $7
                AND (status <> 'Expired' OR expiry_date >= (
                    SELECT started_at FROM transactions WHERE transaction_id = $3))""",
                (charge_point_id, reservation_id),
                "Used",
                now,
                (ACCEPTED, *NOT_ANSWERED, EXPIRED),
                detail,
                transaction_id,
            )
            if used:
                return used
        tags = [tag.lower() for tag in id_tags]
        return await self._change(
            """reservation_id = (
                SELECT reservation_id FROM reservations
                WHERE charge_point_id = $6 AND status = 'Accepted'
                  AND connector_id IN ($7, 0)
                  AND (lower(id_tag) = ANY($8::text[]) OR lower(parent_id_tag) = lower($9))
                ORDER BY connector_id = 0, reservation_id
                LIMIT 1)""",
            (charge_point_id, connector_id, tags, parent_id_tag),
            "Used",
            now,
            (ACCEPTED,),
            detail,
            transaction_id,
        )

    async def end_on_connector(
        self, charge_point_id: str, connector_id: int, status: str, now: datetime
    ) -> list[int]:
        """The connector became Unavailable or Faulted (``status``, a ``Connector...``
        ending): its Accepted reservations end; connector 0 (the charge point) ends all of
        the charge point's."""
        where = "charge_point_id = $6"
        args: tuple[Any, ...] = (charge_point_id,)
        if connector_id != 0:
            where += " AND connector_id = $7"
            args = (charge_point_id, connector_id)
        detail = f"connector {connector_id} became {status.removeprefix('Connector')}"
        return await self._change(where, args, status, now, (ACCEPTED,), detail)

    async def expire(self, now: datetime) -> list[int]:
        """Every Accepted reservation whose expiry has come is Expired."""
        return await self._change("expiry_date <= $2", (), EXPIRED, now, (ACCEPTED,))

    async def holding(self, charge_point_id: str, now: datetime) -> list[Row]:
        """The charge point's Accepted reservations that have not expired, by connector."""
        rows, _ = await self.page(
            ReservationFilter(charge_point_id=charge_point_id, active=True), now, 1000, 0
        )
        return sorted(rows, key=lambda row: (row["connector_id"], row["reservation_id"]))

    async def get(self, reservation_id: int) -> Row | None:
        async def read(connection: Connection) -> Row | None:
            row = await connection.fetchrow(
                f"SELECT {_ITEM_COLUMNS} FROM reservations r WHERE r.reservation_id = $1",
                reservation_id,
            )
            return None if row is None else dict(row)

        return await self._database.run(read)

    async def page(
        self, filter: ReservationFilter, now: datetime, limit: int, offset: int
    ) -> tuple[list[Row], int]:
        """Matching reservations, newest first, with their history; and how many match."""
        where, args = filter.where(now)

        async def read(connection: Connection) -> tuple[list[Row], int]:
            total: int = await connection.fetchval(
                f"SELECT count(*) FROM reservations r WHERE {where}", *args
            )
            rows = await connection.fetch(
                f"SELECT {_ITEM_COLUMNS} FROM reservations r WHERE {where}"
                f" ORDER BY r.reservation_id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
                *args,
                limit,
                offset,
            )
            return [dict(row) for row in rows], total

        return await self._database.run(read)

    async def _change(
        self,
        where: str,
        args: tuple[Any, ...],
        status: str,
        now: datetime,
        leaving: Sequence[str],
        detail: str | None = None,
        transaction_id: int | None = None,
    ) -> list[int]:
        """Set ``status`` where ``where`` holds (its own arguments from ``$6``) and the
        status is one of ``leaving``; one history row per reservation changed."""
        sql = _CHANGE.format(where=where)

        async def change(connection: Connection) -> list[int]:
            rows = await connection.fetch(
                sql, status, now, transaction_id, list(leaving), detail, *args
            )
            return [row["reservation_id"] for row in rows]

        return await self._database.run(change)
