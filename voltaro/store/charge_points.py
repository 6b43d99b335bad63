"""Charge points: registration, boot details and history, presence, lenient-mode counts,
and the operator's commands (add, accept, list, remove)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from voltaro.store.charge_point_cache import AdmissionFacts
from voltaro.store.database import Connection, Database, JsonbElement
from voltaro.store.records import BootDetails, ChargePointRecord, pg_text
from voltaro.store.writer import GroupCommitWriter, MergedQuery, MergedUpdate, Write

# Last-seen times of many chargers in one UPDATE; never moves a last_seen backwards.
LAST_SEEN = MergedUpdate(
    "last_seen",
    """
    UPDATE charge_points AS c SET last_seen = u.at
    FROM (SELECT DISTINCT ON (id) id, at
          FROM unnest($1::text[], $2::timestamptz[]) AS x(id, at)
          ORDER BY id, at DESC) AS u
    WHERE c.id = u.id AND (c.last_seen IS NULL OR c.last_seen < u.at)
    """,
)

# Many chargers' presence changes in one statement: each change is an event, and a
# charger's last change in the batch sets ``online`` and the instance holding it (WITH
# ORDINALITY keeps the batch's order), each going online counting as seen. Going offline
# applies only to a charger recorded as the reporting instance's (or as nobody's): one that
# reconnected to another instance stays online there. One statement, so that a batch of
# handshakes' presence records commits in one round trip (see the writer's one-statement
# batches).
PRESENCE = MergedUpdate(
    "presence",
    """
    WITH changes AS (
        SELECT * FROM unnest($1::text[], $2::boolean[], $3::timestamptz[], $4::text[],
                             $5::text[])
                      WITH ORDINALITY AS x(id, online, at, instance, reason, n)
    ), events AS (
        INSERT INTO presence_events (charge_point_id, at, online, reason, instance_id)
        SELECT id, at, online, reason, instance FROM changes ORDER BY n
    )
    UPDATE charge_points AS c
    SET online = u.online,
        instance_id = CASE WHEN u.online THEN u.instance END,
        last_seen = greatest(c.last_seen, u.seen)
    FROM (SELECT id, (array_agg(online ORDER BY n DESC))[1] AS online,
                 (array_agg(instance ORDER BY n DESC))[1] AS instance,
                 max(at) FILTER (WHERE online) AS seen
          FROM changes GROUP BY id) AS u
    WHERE c.id = u.id
      AND (u.online OR c.instance_id IS NULL OR c.instance_id = u.instance)
    """,
)

LENIENT_DEVIATIONS = MergedUpdate(
    "lenient_deviations",
    """
    UPDATE charge_points AS c SET lenient_deviations = c.lenient_deviations + u.n
    FROM (SELECT id, sum(n) AS n FROM unnest($1::text[], $2::bigint[]) AS x(id, n)
          GROUP BY id) AS u
    WHERE c.id = u.id
    """,
)

# Every BootNotification of a batch in one statement (a storm of reconnecting chargers is all
# boots). A charger that booted twice in one batch keeps its last boot's details; each boot
# gets a history row and is answered the charge point's registration status.
BOOTS = MergedQuery(
    "BootNotification",
    """
    WITH boot AS (
        SELECT * FROM unnest($1::integer[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                             $11::text[], $12::text[], $13::timestamptz[], $14::jsonb[])
            AS b(n, id, status_if_new, vendor, model, serial_number, charge_box_serial_number,
                 firmware_version, iccid, imsi, meter_type, meter_serial_number, received_at,
                 payload)
    ), charge_point AS (
        INSERT INTO charge_points AS c (
            id, registration_status, vendor, model, serial_number, charge_box_serial_number,
            firmware_version, iccid, imsi, meter_type, meter_serial_number, last_boot_at,
            last_seen)
        SELECT DISTINCT ON (id) id, status_if_new, vendor, model, serial_number,
               charge_box_serial_number, firmware_version, iccid, imsi, meter_type,
               meter_serial_number, received_at, received_at
        FROM boot ORDER BY id, n DESC
        ON CONFLICT (id) DO UPDATE SET
            vendor = EXCLUDED.vendor, model = EXCLUDED.model,
            serial_number = EXCLUDED.serial_number,
            charge_box_serial_number = EXCLUDED.charge_box_serial_number,
            firmware_version = EXCLUDED.firmware_version, iccid = EXCLUDED.iccid,
            imsi = EXCLUDED.imsi, meter_type = EXCLUDED.meter_type,
            meter_serial_number = EXCLUDED.meter_serial_number,
            last_boot_at = EXCLUDED.last_boot_at,
            last_seen = greatest(c.last_seen, EXCLUDED.last_seen),
            updated_at = now()
        RETURNING c.id, c.registration_status
    ), history AS (
        INSERT INTO boot_notifications
            (charge_point_id, received_at, registration_status, payload)
        SELECT b.id, b.received_at, c.registration_status, b.payload
        FROM boot b JOIN charge_point c USING (id) ORDER BY b.n
    )
    SELECT b.n, c.registration_status FROM boot b JOIN charge_point c USING (id)
    """,
)


# Every registration of an unknown charge point in a batch in one statement (a storm of new
# chargers is all registrations): each is answered the facts its handshake is decided by,
# its own if it was added, the existing row's if it was known. A row another transaction
# added after this statement's snapshot gets no answer (the caller reads it).
REGISTRATIONS = MergedQuery(
    "register charge point",
    """
    WITH registration AS (
        SELECT * FROM unnest($1::integer[], $2::text[], $3::text[]) AS r(n, id, status)
    ), added AS (
        INSERT INTO charge_points (id, registration_status)
        SELECT DISTINCT ON (id) id, status FROM registration ORDER BY id, n
        ON CONFLICT (id) DO NOTHING
        RETURNING id, registration_status, password_hash, lenient
    ), facts AS (
        SELECT * FROM added
        UNION ALL
        SELECT id, registration_status, password_hash, lenient FROM charge_points
        WHERE id IN (SELECT id FROM registration)
    )
    SELECT r.n, jsonb_build_array(f.registration_status, f.password_hash, f.lenient)
    FROM registration r JOIN facts f USING (id)
    """,
)


class ChargePointChange(NamedTuple):
    """What :meth:`ChargePointRepository.upsert` sets; None leaves a field as it is."""

    charge_point_id: str
    status: str | None = None
    password_hash: str | None = None
    lenient: bool | None = None


class ChargePointRepository:
    def __init__(
        self,
        database: Database,
        writer: GroupCommitWriter,
        *,
        changed: Callable[[str], None] | None = None,
    ) -> None:
        """``changed(charge_point_id)`` hears each operator command that changed or removed
        a row, once committed (the admission cache drops its copy)."""
        self._database = database
        self._writer = writer
        self._changed = changed

    # ---- reads ----------------------------------------------------------------------

    async def get(self, charge_point_id: str) -> ChargePointRecord | None:
        return await self._database.run(_get, charge_point_id)

    async def list_all(self) -> list[ChargePointRecord]:
        return await self._database.run(_list)

    # ---- writes through the group-commit writer -------------------------------------

    async def register(self, charge_point_id: str, status: str) -> AdmissionFacts | None:
        """Record an unknown charge point with ``status``; returns its admission facts (the
        existing row's when it was known), or None when another transaction added it
        meanwhile (read it then). All registrations of a batch are one statement."""
        answer: list[Any] | None = await self._writer.submit(
            Write(query=(REGISTRATIONS, (charge_point_id, status)), label="register charge point")
        )
        if answer is None:
            return None
        registration_status, password_hash, lenient = answer
        return AdmissionFacts(registration_status, password_hash, lenient)

    async def boot(
        self,
        charge_point_id: str,
        details: BootDetails,
        payload: dict[str, Any],
        received_at: datetime,
        status_if_new: str,
    ) -> str:
        """Store a BootNotification (details and a history row); returns the charge point's
        registration status (``status_if_new`` when it was not known)."""

        row = (
            charge_point_id,
            status_if_new,
            pg_text(details.vendor),
            pg_text(details.model),
            pg_text(details.serial_number),
            pg_text(details.charge_box_serial_number),
            pg_text(details.firmware_version),
            pg_text(details.iccid),
            pg_text(details.imsi),
            pg_text(details.meter_type),
            pg_text(details.meter_serial_number),
            received_at,
            JsonbElement(payload),
        )
        status: str = await self._writer.submit(Write(query=(BOOTS, row), label="BootNotification"))
        return status

    async def presence(
        self, charge_point_id: str, online: bool, reason: str, at: datetime, instance_id: str
    ) -> None:
        """Record that the charge point went online or offline at ``instance_id``, and why
        (offline applies only while it is recorded as that instance's)."""
        write = self._presence_write(charge_point_id, online, reason, at, instance_id)
        await self._writer.submit(write)

    def presence_soon(
        self,
        charge_point_id: str,
        online: bool,
        reason: str,
        at: datetime,
        instance_id: str,
        on_done: Callable[[BaseException | None], object],
    ) -> None:
        """Like :meth:`presence`, without waiting: see :meth:`GroupCommitWriter.submit_soon`
        (raises StoreUnavailable at once when the writer is not running)."""
        write = self._presence_write(charge_point_id, online, reason, at, instance_id)
        self._writer.submit_soon(write, on_done)

    @staticmethod
    def _presence_write(
        charge_point_id: str, online: bool, reason: str, at: datetime, instance_id: str
    ) -> Write[None]:
        return Write(
            merges={PRESENCE: [(charge_point_id, online, at, instance_id, pg_text(reason))]},
            label="presence",
        )

    async def mark_instance_offline(self, instance_id: str, reason: str, at: datetime) -> list[str]:
        """The chargers recorded online at ``instance_id`` (or at no instance: rows from
        before instances were recorded) are offline now, with an event each; returns the ids.

        Used at start (a previous run of this instance left them online) and at shutdown; a
        direct transaction rather than the writer, so it also works while the writer stops.
        """

        async def apply(connection: Connection) -> list[str]:
            rows = await connection.fetch(
                """
                WITH changed AS (
                    UPDATE charge_points SET online = false, instance_id = NULL
                    WHERE online AND (instance_id = $3 OR instance_id IS NULL)
                    RETURNING id)
                INSERT INTO presence_events (charge_point_id, at, online, reason, instance_id)
                SELECT id, $1, false, $2, $3 FROM changed RETURNING charge_point_id
                """,
                at,
                reason,
                instance_id,
            )
            return [row[0] for row in rows]

        return await self._database.run_in_transaction(apply)

    async def restore_online(
        self, charge_point_ids: list[str], instance_id: str, reason: str, at: datetime
    ) -> list[str]:
        """Of chargers that spoke on a live session of ``instance_id``, record online there
        those the database has as offline (someone marked them so wrongly); an event each.
        Returns their ids. One recorded online at another instance is left alone: its
        session moved there, and this instance closes its own."""
        if not charge_point_ids:
            return []

        async def apply(connection: Connection) -> list[str]:
            rows = await connection.fetch(
                """
                WITH changed AS (
                    UPDATE charge_points SET online = true, instance_id = $2
                    WHERE id = ANY($1::text[]) AND NOT online
                    RETURNING id)
                INSERT INTO presence_events (charge_point_id, at, online, reason, instance_id)
                SELECT id, $3, true, $4, $2 FROM changed RETURNING charge_point_id
                """,
                charge_point_ids,
                instance_id,
                at,
                reason,
            )
            return [row[0] for row in rows]

        return await self._database.run_in_transaction(apply)

    def post_last_seen(self, seen: dict[str, datetime]) -> None:
        """Fire-and-forget: many chargers' last-seen times in the next batch."""
        if seen:
            self._writer.post(Write(merges={LAST_SEEN: list(seen.items())}, label="last seen"))

    def post_deviations(self, counts: dict[str, int]) -> None:
        """Fire-and-forget: add lenient-mode deviation counts per charge point."""
        if counts:
            self._writer.post(
                Write(merges={LENIENT_DEVIATIONS: list(counts.items())}, label="deviations")
            )

    # ---- operator commands (direct transactions: rare, and a CLI wants the error) ----

    async def upsert(
        self,
        charge_point_id: str,
        *,
        status: str | None = None,
        password_hash: str | None = None,
        lenient: bool | None = None,
    ) -> bool:
        """Add a charge point (status default Accepted) or change the given fields of an
        existing one. Returns True when it was added."""
        try:
            return await self._database.run_in_transaction(
                _upsert, charge_point_id, status, password_hash, lenient
            )
        finally:
            self._was_changed(charge_point_id)

    async def set_status(self, charge_point_id: str, status: str) -> bool:
        """Set the registration status; False when the id is unknown."""
        result: str = await self._database.run(
            lambda c: c.execute(
                "UPDATE charge_points SET registration_status = $2, updated_at = now()"
                " WHERE id = $1",
                charge_point_id,
                status,
            )
        )
        self._was_changed(charge_point_id)
        return result != "UPDATE 0"

    async def upsert_many(self, changes: Sequence[ChargePointChange]) -> int:
        """:meth:`upsert` each of ``changes`` in one transaction: all or none. Returns how
        many were added."""

        async def apply(connection: Connection) -> int:
            added = 0
            for change in changes:
                added += await _upsert(connection, *change)
            return added

        try:
            return await self._database.run_in_transaction(apply)
        finally:
            for change in changes:
                self._was_changed(change.charge_point_id)

    async def accept_pending(self) -> list[str]:
        """Set every Pending charge point Accepted; returns their ids, sorted."""
        rows = await self._database.run(
            lambda c: c.fetch(
                "UPDATE charge_points SET registration_status = 'Accepted', updated_at = now()"
                " WHERE registration_status = 'Pending' RETURNING id"
            )
        )
        accepted = sorted(str(row["id"]) for row in rows)
        for charge_point_id in accepted:
            self._was_changed(charge_point_id)
        return accepted

    async def remove(self, charge_point_id: str) -> bool:
        """Remove a charge point and its connectors' current state (history stays)."""
        try:
            return await self._database.run_in_transaction(_remove, charge_point_id)
        finally:
            self._was_changed(charge_point_id)

    def _was_changed(self, charge_point_id: str) -> None:
        # also when the outcome is unknown (a lost connection at COMMIT): reading again is safe
        if self._changed is not None:
            self._changed(charge_point_id)


async def _get(connection: Connection, charge_point_id: str) -> ChargePointRecord | None:
    row = await connection.fetchrow("SELECT * FROM charge_points WHERE id = $1", charge_point_id)
    return None if row is None else ChargePointRecord.from_row(row)


async def _list(connection: Connection) -> list[ChargePointRecord]:
    rows = await connection.fetch("SELECT * FROM charge_points ORDER BY id")
    return [ChargePointRecord.from_row(row) for row in rows]


async def _upsert(
    connection: Connection,
    charge_point_id: str,
    status: str | None,
    password_hash: str | None,
    lenient: bool | None,
) -> bool:
    """One statement, so that the row is announced once, as it ends up: an INSERT and then
    an UPDATE announced a new charge point without its password first, and a handshake
    decided from the cache between the two announcements was let in without one."""
    inserted: bool = await connection.fetchval(
        """
        INSERT INTO charge_points AS cp (id, registration_status, password_hash, lenient)
        VALUES ($1, coalesce($2, 'Accepted'), $3, coalesce($4, false))
        ON CONFLICT (id) DO UPDATE SET
            registration_status = coalesce($2, cp.registration_status),
            password_hash = coalesce($3, cp.password_hash),
            lenient = coalesce($4, cp.lenient),
            updated_at = now()
        RETURNING xmax = 0
        """,
        charge_point_id,
        status,
        password_hash,
        lenient,
    )
    return bool(inserted)


async def _remove(connection: Connection, charge_point_id: str) -> bool:
    await connection.execute("DELETE FROM connectors WHERE charge_point_id = $1", charge_point_id)
    result: str = await connection.execute(
        "DELETE FROM charge_points WHERE id = $1", charge_point_id
    )
    return result != "DELETE 0"
