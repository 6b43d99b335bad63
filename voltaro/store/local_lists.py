"""Local Authorization Lists: what each charger's list is, as far as Voltaro knows, and where
keeping it in sync stands (the table ``local_lists``, migration 0013), and the list size
limits a charger reported in its configuration.

A list's ``digest`` is the sum of its entries' hashes (migration 0018, whose SQL functions
keep it; :func:`voltaro.store.list_digests.digest` computes the same in Python), so
an accepted update is recorded by what it changed (:meth:`LocalListRepository.record_update`).
The entries themselves are stored once per distinct list, under its digest, in
``local_list_contents`` (migration 0019): a charger's row names the list it holds.

The rows are written by the charger's answers (an accepted update, a reported version, a
refusal), all on the instance that holds the charger's session; see
:mod:`voltaro.central.profiles.local_list` for what the states mean.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from voltaro.store.database import Connection, Database, stored_json
from voltaro.store.list_digests import hash_sum

STATES = ("unknown", "synced", "mismatch", "failed", "not_supported")

SEND_MAX_KEY = "SendLocalListMaxLength"  # entries one SendLocalList may carry
MAX_LENGTH_KEY = "LocalAuthListMaxLength"  # entries the charger's list may hold

# The columns a caller sets (``digest`` and ``size`` follow from the updates recorded).
_COLUMNS = frozenset(
    {
        "state",
        "version",
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
    digest: str | None = None  # names the list it holds (its entries: held_entries)
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
    """A charge point in the listing: its row's facts (None: no row)."""

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
    touches (sets or removes), $4 the tags it removes, $5 whether it is a Full, $6 the sum
    of the set entries' hashes (decimal text), then ``columns`` ($7...). It updates
    nothing (``UPDATE 0``) when the charger has no row.

    One statement, so one round trip: it locks the charger's row, and the list it then holds
    becomes the list ``local_list_apply`` (migration 0019) makes of it, stored once for every
    charger that holds it; nothing of a list comes to Python. Two answers of one charger
    recorded at once each see the other's result. A charger whose held list was cleaned away
    before a Differential holds a list not known afterwards (digest NULL): it needs a Full."""
    unknown = set(columns) - _COLUMNS
    if unknown:
        raise ValueError(f"not a column an update sets alongside its entries: {sorted(unknown)}")
    given = {name: f"${i + 7}" for i, name in enumerate(columns)}
    needs_full = given.pop("needs_full", "l.needs_full")
    updates = "".join(f", {name} = {value}" for name, value in given.items())
    return f"""
        WITH held AS (
            SELECT digest FROM local_lists WHERE charge_point_id = $1 FOR UPDATE
        ), applied AS (
            SELECT a.list_digest, a.list_size
            FROM held, local_list_apply(
                held.digest, $2::jsonb, $3::text[], $4::text[], $5, $6::text::numeric) AS a
        )
        UPDATE local_lists AS l SET
            digest = applied.list_digest,
            size = coalesce(applied.list_size, 0),
            needs_full = applied.list_digest IS NULL OR {needs_full}{updates},
            updated_at = now()
        FROM applied
        WHERE l.charge_point_id = $1
    """


# The charger's row with the defaults, unless it has one.
_ENSURE_ROW = "INSERT INTO local_lists (charge_point_id) VALUES ($1) ON CONFLICT DO NOTHING"
HELD_LISTS_KEPT = 8  # distinct lists a repository keeps read (a fleet holds a few)
HASHED_UPDATES_KEPT = 64  # distinct updates whose hash sums are kept (one Full: ten messages)


def _touched(listed: list[Any]) -> dict[str, Any]:
    """``{idTag: idTagInfo or None}`` of an update's entries (a tag's last entry counts)."""
    return {entry["idTag"]: entry.get("idTagInfo") for entry in listed}


@functools.lru_cache(maxsize=HASHED_UPDATES_KEPT)
def _set_hashes(listed: bytes) -> int:
    """:func:`hash_sum` of the entries an update's ``localAuthorizationList`` (as JSON) sets;
    kept, as the chargers of a fleet are sent the same messages."""
    touched = _touched(orjson.loads(listed))
    return hash_sum({tag: info for tag, info in touched.items() if info is not None})


class LocalListRepository:
    """Reads and writes of ``local_lists`` (one round trip each)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        # digest -> entries, the most recently used last: contents never change once stored
        self._held: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def get(self, charge_point_id: str) -> LocalListRecord:
        """The charger's row, or the defaults when it has none (its entries:
        :meth:`held_entries`)."""
        row = await self._database.run(
            lambda c: c.fetchrow(
                "SELECT * FROM local_lists WHERE charge_point_id = $1", charge_point_id
            )
        )
        return LocalListRecord(charge_point_id) if row is None else LocalListRecord.from_row(row)

    async def get_many(self, charge_point_ids: list[str]) -> dict[str, LocalListRecord]:
        """The rows of the chargers that have one: what tells whether a list is right, for
        many chargers in one query."""
        rows = await self._database.run(
            lambda c: c.fetch(
                "SELECT * FROM local_lists WHERE charge_point_id = ANY($1::text[])",
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
        operator's update crossing Voltaro's own) each see the other's result. An update of
        the entries is :meth:`record_update`'s."""

        async def write(connection: Connection) -> None:
            await connection.execute(_ENSURE_ROW, charge_point_id)
            row = await connection.fetchrow(
                "SELECT * FROM local_lists WHERE charge_point_id = $1 FOR UPDATE",
                charge_point_id,
            )
            values = changes(LocalListRecord.from_row(row))
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
        (not ``digest`` or ``size``, which follow from the update).

        What it costs follows the update's size, not the list's: the digest (migration 0018)
        is moved by the changed entries' hashes alone (those of the set entries computed
        here, once per distinct update), and the list it names is written only when no
        charger held it before (migration 0019), in one statement that locks the row (see
        :func:`_recorded`); nothing of the list comes back."""
        listed = update.get("localAuthorizationList") or []
        stored = stored_json(listed)
        if b"\\ufffd" in stored:  # a U+0000 replaced: record (and hash) what PostgreSQL holds
            listed = orjson.loads(stored)
        touched = _touched(listed)
        full = update["updateType"] == "Full"
        sets = {tag: info for tag, info in touched.items() if info is not None}
        removed = [tag for tag, info in touched.items() if info is None]
        added = str(_set_hashes(stored))
        sql = _recorded(list(changes))
        arguments = (sets, list(touched), removed, full, added, *changes.values())

        async def write(connection: Connection) -> None:
            if await connection.execute(sql, charge_point_id, *arguments) == "UPDATE 0":
                await connection.execute(_ENSURE_ROW, charge_point_id)
                await connection.execute(sql, charge_point_id, *arguments)

        await self._database.run(write)

    async def held_entries(self, digest: str | None) -> dict[str, Any] | None:
        """The entries of the list of digest ``digest`` ({} for None: nothing accepted yet);
        None when they are not stored (cleaned away, see migration 0019: the charger's list
        is then not known). Kept for the next callers: a tag change makes every charger of a
        fleet ask for the same few lists. The caller must not change what it gets."""
        if digest is None:
            return {}
        held = self._held.get(digest)
        if held is not None:
            self._held.move_to_end(digest)
            return held
        found = await self._database.run(
            lambda c: c.fetchval(
                "SELECT entries FROM local_list_contents WHERE digest = $1", digest
            )
        )
        if found is None:
            return None
        self._held[digest] = found
        if len(self._held) > HELD_LISTS_KEPT:
            self._held.popitem(last=False)
        return found  # type: ignore[no-any-return]

    async def forget_unused(self, stored_before: datetime) -> int:
        """Delete the lists no charger holds that were stored before ``stored_before``; how
        many were deleted."""
        result: str = await self._database.run(
            lambda c: c.execute(
                "DELETE FROM local_list_contents c WHERE c.created_at < $1"
                " AND NOT EXISTS (SELECT 1 FROM local_lists l WHERE l.digest = c.digest)",
                stored_before,
            )
        )
        return int(result.split()[-1])

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
