"""Local Authorization Lists: what each charger's list is, as far as Voltaro knows, and where
keeping it in sync stands (the table ``local_lists``, migration 0013), and the list size
limits a charger reported in its configuration.

A list's ``digest`` is the sum of its entries' hashes (migration 0018, whose SQL functions
keep it; :func:`voltaro.central.local_list_entries.digest` computes the same in Python), so
an accepted update is recorded by what it changed (:meth:`LocalListRepository.record_update`).

The rows are written by the charger's answers (an accepted update, a reported version, a
refusal), all on the instance that holds the charger's session; see
:mod:`voltaro.central.profiles.local_list` for what the states mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voltaro.store.database import Connection, Database

STATES = ("unknown", "synced", "mismatch", "failed", "not_supported")

SEND_MAX_KEY = "SendLocalListMaxLength"  # entries one SendLocalList may carry
MAX_LENGTH_KEY = "LocalAuthListMaxLength"  # entries the charger's list may hold

_COLUMNS = frozenset(
    {
        "state",
        "version",
        "entries",
        "digest",
        "size",
        "needs_full",
        "check_version",
        "reported_version",
        "reported_at",
        "max_length",
        "failures",
        "retry_at",
        "last_status",
    }
)


@dataclass(frozen=True)
class LocalListRecord:
    """One charger's row (the defaults: a charger Voltaro has not dealt with yet)."""

    charge_point_id: str
    state: str = "unknown"
    version: int | None = None
    entries: dict[str, Any] | None = None
    digest: str | None = None
    size: int = 0
    needs_full: bool = True
    check_version: bool = True
    reported_version: int | None = None
    reported_at: datetime | None = None
    max_length: int | None = None
    failures: int = 0
    retry_at: datetime | None = None
    last_status: str | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> LocalListRecord:
        return cls(**dict(row))


@dataclass(frozen=True)
class ListSummary:
    """A charge point in the listing: its row's facts without the entries (None: no row)."""

    charge_point_id: str
    online: bool
    state: str | None
    version: int | None
    size: int | None
    digest: str | None
    needs_full: bool | None
    max_length: int | None
    reported_version: int | None
    last_status: str | None
    updated_at: datetime | None


def _limit(value: str | None) -> int | None:
    """A configuration value as a size limit; None when absent or not a positive number."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None


_WITHOUT_ENTRIES = ", ".join(["charge_point_id", *sorted(_COLUMNS - {"entries"}), "updated_at"])


def _upsert(changes: dict[str, Any]) -> str:
    """The statement setting ``changes``' columns ($2...) of charger $1's row."""
    unknown = changes.keys() - _COLUMNS
    if unknown:
        raise ValueError(f"local_lists has no column {sorted(unknown)}")
    names = list(changes)
    columns = ", ".join(names)
    values = ", ".join(f"${i + 2}" for i in range(len(names)))
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in names)
    return (
        f"INSERT INTO local_lists (charge_point_id, {columns}, updated_at)"
        f" VALUES ($1, {values}, now())"
        f" ON CONFLICT (charge_point_id) DO UPDATE SET {updates}, updated_at = now()"
    )


def _recorded(columns: list[str]) -> str:
    """The statement recording an accepted update of charger $1 (see
    :meth:`LocalListRepository.record_update`): $2 the entries it sets, $3 the tags it
    touches (sets or removes), $4 the tags it removes, $5 how many entries it sets, $6
    whether it is a Full, then ``columns`` ($7...).

    One statement, so one round trip: the upsert locks the row and computes every column
    from the row as it is then (two answers of one charger recorded at once each see the
    other's result). Of the entries held only those the update touches are hashed (to take
    them away from the digest), and only when it touches one at all (``?|``, a look-up per
    tag): adding tags, as the messages after a Full's first do, hashes none of the held
    ones. PostgreSQL still reads and writes the whole jsonb value, in C; nothing of it
    comes to Python. Set entries replace held ones by ``||``: only removed tags go through
    ``-`` (a scan of the list per tag removed). A digest not of the sum form (written
    before migration 0018) is computed from the whole list instead, once."""
    unknown = set(columns) - _COLUMNS
    if unknown or {"entries", "digest", "size"} & set(columns):
        raise ValueError(f"not a column an update sets alongside its entries: {columns}")
    names = "".join(f", {name}" for name in columns)
    values = "".join(f", ${i + 7}" for i in range(len(columns)))
    updates = "".join(f", {name} = EXCLUDED.{name}" for name in columns)
    return f"""
        INSERT INTO local_lists AS l (charge_point_id, entries, digest, size{names}, updated_at)
        VALUES ($1, $2::jsonb, local_list_digest($2::jsonb), $5{values}, now())
        ON CONFLICT (charge_point_id) DO UPDATE SET
            entries = CASE WHEN $6 THEN EXCLUDED.entries
                           ELSE (l.entries - $4::text[]) || EXCLUDED.entries END,
            (size, digest) = (
                SELECT CASE WHEN $6 THEN EXCLUDED.size
                            ELSE l.size - held.present + EXCLUDED.size END,
                       CASE WHEN $6 THEN EXCLUDED.digest
                            WHEN l.digest LIKE 'sum:%' THEN local_list_digest_moved(
                                l.digest, substr(EXCLUDED.digest, 5)::numeric, held.hashes)
                            ELSE local_list_digest((l.entries - $4::text[]) || EXCLUDED.entries)
                       END
                FROM local_list_hashes(
                    CASE WHEN $6 OR NOT l.entries ?| $3::text[] THEN '{{}}'::jsonb
                         ELSE l.entries END,
                    $3::text[]) AS held
            ){updates}, updated_at = now()
    """


class LocalListRepository:
    """Reads and writes of ``local_lists`` (one round trip each)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, charge_point_id: str) -> LocalListRecord:
        """The charger's row, or the defaults when it has none."""
        row = await self._database.run(
            lambda c: c.fetchrow(
                "SELECT * FROM local_lists WHERE charge_point_id = $1", charge_point_id
            )
        )
        return LocalListRecord(charge_point_id) if row is None else LocalListRecord.from_row(row)

    async def get_many(self, charge_point_ids: list[str]) -> dict[str, LocalListRecord]:
        """The rows of the chargers that have one, without their entries (``entries`` None):
        what tells whether a list is right, for many chargers in one query."""
        rows = await self._database.run(
            lambda c: c.fetch(
                f"SELECT {_WITHOUT_ENTRIES} FROM local_lists"
                " WHERE charge_point_id = ANY($1::text[])",
                charge_point_ids,
            )
        )
        return {row["charge_point_id"]: LocalListRecord.from_row(row) for row in rows}

    async def update(self, charge_point_id: str, **changes: Any) -> None:
        """Set the named columns of the charger's row (made with the defaults if missing)."""
        sql = _upsert(changes)
        await self._database.run(lambda c: c.execute(sql, charge_point_id, *changes.values()))

    async def change(
        self, charge_point_id: str, changes: Callable[[LocalListRecord], dict[str, Any]]
    ) -> None:
        """Set the columns ``changes(row)`` names, computed from the row as it is, in one
        transaction with the row locked: two answers of one charger recorded at once (an
        operator's update crossing Voltaro's own) each see the other's result. The row is
        read without its entries (``entries`` None; a list of a thousand tags is ~80 KB,
        and every charger's version answer comes here): an update of the entries is
        :meth:`record_update`'s."""

        async def write(connection: Connection) -> None:
            await connection.execute(
                "INSERT INTO local_lists (charge_point_id) VALUES ($1) ON CONFLICT DO NOTHING",
                charge_point_id,
            )
            row = await connection.fetchrow(
                f"SELECT {_WITHOUT_ENTRIES} FROM local_lists WHERE charge_point_id = $1 FOR UPDATE",
                charge_point_id,
            )
            values = changes(LocalListRecord.from_row(row))
            if "entries" in values:
                raise ValueError("the entries change with record_update, not change")
            await connection.execute(_upsert(values), charge_point_id, *values.values())

        await self._database.run_in_transaction(write)

    async def record_update(
        self,
        charge_point_id: str,
        update: Mapping[str, Any],
        **changes: Any,
    ) -> None:
        """Record that the charger accepted ``update`` (a SendLocalList request: a Full
        replaces its list, a Differential sets the entries with ``idTagInfo`` and removes
        those without, the last of a tag's entries counting) and set the named columns
        (not ``entries``, ``digest`` or ``size``, which follow from the update).

        What it costs follows the update's size, not the list's: its entries are changed in
        SQL and the digest (migration 0018) moved by their hashes alone, in one statement
        that locks the row (see :func:`_recorded`); nothing of the list comes back."""
        touched: dict[str, Any] = {}
        for entry in update.get("localAuthorizationList") or ():
            touched[entry["idTag"]] = entry.get("idTagInfo")
        full = update["updateType"] == "Full"
        sets = {tag: dict(info) for tag, info in touched.items() if info is not None}
        removed = [tag for tag, info in touched.items() if info is None]
        sql = _recorded(list(changes))
        arguments = (sets, list(touched), removed, len(sets), full, *changes.values())
        await self._database.run(lambda c: c.execute(sql, charge_point_id, *arguments))

    async def limits(self, charge_point_id: str) -> tuple[int | None, int | None]:
        """``(SendLocalListMaxLength, LocalAuthListMaxLength)`` from the charger's known
        configuration; None for a key not known (or not a positive number)."""
        return (await self.limits_many([charge_point_id])).get(charge_point_id, (None, None))

    async def limits_many(
        self, charge_point_ids: list[str]
    ) -> dict[str, tuple[int | None, int | None]]:
        """:meth:`limits` of many chargers in one query (those with neither key left out)."""
        rows = await self._database.run(
            lambda c: c.fetch(
                "SELECT charge_point_id, key, value FROM charge_point_configuration"
                " WHERE charge_point_id = ANY($1::text[]) AND key = ANY($2::text[])",
                charge_point_ids,
                [SEND_MAX_KEY, MAX_LENGTH_KEY],
            )
        )
        known: dict[str, dict[str, int | None]] = {}
        for row in rows:
            known.setdefault(row["charge_point_id"], {})[row["key"]] = _limit(row["value"])
        return {
            charge_point_id: (keys.get(SEND_MAX_KEY), keys.get(MAX_LENGTH_KEY))
            for charge_point_id, keys in known.items()
        }

    async def summaries(self, charge_point_id: str | None = None) -> list[ListSummary]:
        """Every registered charge point (or the one named), by id, with its row's facts."""

        async def read(connection: Connection) -> list[ListSummary]:
            rows = await connection.fetch(
                """
                SELECT cp.id AS charge_point_id, cp.online, l.state, l.version, l.size,
                       l.digest, l.needs_full, l.max_length, l.reported_version,
                       l.last_status, l.updated_at
                FROM charge_points cp
                LEFT JOIN local_lists l ON l.charge_point_id = cp.id
                WHERE $1::text IS NULL OR cp.id = $1
                ORDER BY cp.id
                """,
                charge_point_id,
            )
            return [ListSummary(**dict(row)) for row in rows]

        return await self._database.run(read)
