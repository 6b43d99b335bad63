"""Numbered SQL migrations (``migrations/NNNN_name.sql``), applied in order, each once.

All pending files are applied in ONE transaction holding an advisory lock, so two processes
starting together (a server and ``voltaro db migrate``) cannot both apply a file, and a
failing file leaves the schema as it was. Each applied file is recorded in
``schema_migrations`` with a checksum; a file edited after it was applied is reported, not
re-run (write a new file instead).

Instances of two versions on one database do not work across a migration (the README's
"Upgrading"), so the files are applied only when that cannot happen, else
:class:`~voltaro.store.errors.SchemaMismatch` says why and nothing changes:

- a database migrated by a newer Voltaro (a file this one does not know was applied) is
  used by no older one: run the newer version here too;
- pending files are not applied while another instance holds a live lease (``instances``):
  it runs the older version and would fail on the new schema. An instance of this node
  (``node_id``, or ``<node_id>/<role>``: the same process or worker last time, killed
  before it could retire) does not count; ``force`` (``voltaro db migrate --force``)
  applies them anyway.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import trio_asyncio

from voltaro.store.database import Connection, connect, redacted_url
from voltaro.store.errors import SchemaMismatch, StoreUnavailable, is_outage, is_refusal

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key: "voltaro" in ASCII, so unrelated applications will not collide.
ADVISORY_LOCK_KEY = 0x766F6C7461726F

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Live instances named in a refusal; more are counted.
_INSTANCES_NAMED = 5


@dataclass(frozen=True)
class Migration:
    """One SQL file: its number, name, text and checksum."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The migration files shipped with this Voltaro, by number."""
    found: list[Migration] = []
    for entry in resources.files("voltaro.store.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migration files share a number: {versions}")
    return found


async def apply_migrations(
    connection: Connection, *, node_id: str | None = None, force: bool = False
) -> list[str]:
    """Apply what is pending on ``connection`` (asyncio side); returns the files applied.

    Raises :class:`SchemaMismatch` (nothing applied) for a database of a newer Voltaro, or
    while another instance than ``node_id``'s is live, unless ``force`` (see the module doc).
    """
    applied_now: list[str] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
        await connection.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await connection.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {row["version"]: row["checksum"] for row in rows}
        available = available_migrations()
        _refuse_a_newer_schema(rows, available)
        pending = [m for m in available if m.version not in done]
        for migration in available:
            if migration.version in done and done[migration.version] != migration.checksum:
                log.warning(
                    "migration %04d_%s changed after it was applied; not re-applied",
                    migration.version,
                    migration.name,
                )
        if pending and not force:
            live = await _live_instances(connection, node_id)
            if live:
                raise SchemaMismatch(_older_instances_problem(pending, live))
        for migration in pending:
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(_file_name(migration.version, migration.name))
    for name in applied_now:
        log.info("applied migration %s", name)
    return applied_now


def _file_name(version: int, name: str) -> str:
    return f"{version:04d}_{name}"


def _refuse_a_newer_schema(applied: Sequence[Any], available: Sequence[Migration]) -> None:
    known = {m.version for m in available}
    unknown = [_file_name(r["version"], r["name"]) for r in applied if r["version"] not in known]
    if unknown:
        newest = available[-1]
        raise SchemaMismatch(
            f"the database was migrated by a newer Voltaro ({', '.join(sorted(unknown))}"
            f" applied; this one knows up to {_file_name(newest.version, newest.name)}) and"
            " an older one could damage its data: run the newer Voltaro here too"
        )


@dataclass(frozen=True)
class LiveInstance:
    """An instance whose lease had not run out when a migration was considered."""

    id: str
    host: str
    pid: int
    alive_until: datetime


async def _live_instances(connection: Connection, node_id: str | None) -> list[LiveInstance]:
    if await connection.fetchval("SELECT to_regclass('instances')") is None:
        return []  # a database from before migration 0010: no instance can be running
    rows = await connection.fetch(
        """
        SELECT id, host, pid, alive_until FROM instances
        WHERE alive_until > now()
          AND ($1::text IS NULL OR (id <> $1 AND left(id, length($1) + 1) <> $1 || '/'))
        ORDER BY id
        """,
        node_id,
    )
    return [LiveInstance(r["id"], r["host"], r["pid"], r["alive_until"]) for r in rows]


def _older_instances_problem(pending: Sequence[Migration], live: Sequence[LiveInstance]) -> str:
    named = "; ".join(
        f"{i.id} (pid {i.pid} on {i.host}, lease until {i.alive_until:%Y-%m-%d %H:%M:%S %Z})"
        for i in live[:_INSTANCES_NAMED]
    )
    more = f"; and {len(live) - _INSTANCES_NAMED} more" if len(live) > _INSTANCES_NAMED else ""
    files = ", ".join(_file_name(m.version, m.name) for m in pending)
    running = (
        "1 instance of an older Voltaro runs"
        if len(live) == 1
        else f"{len(live)} instances of an older Voltaro run"
    )
    return (
        f"not migrating the database to this Voltaro's schema ({files}) while {running} on"
        f" it, which would fail on the new schema: {named}{more}. Stop them first (the"
        ' README\'s "Upgrading"; an instance killed without stopping is counted until its'
        " lease runs out), or apply the migrations anyway with `voltaro db migrate --force`"
    )


async def _migrate_aio(url: str, node_id: str | None, force: bool) -> list[str]:
    connection = await connect(url)
    try:
        return await apply_migrations(connection, node_id=node_id, force=force)
    finally:
        await connection.close()


async def migrate(url: str, *, node_id: str | None = None, force: bool = False) -> list[str]:
    """Bring the database at ``url`` up to date (trio side; inside ``open_loop()``).

    Returns the names of the files applied now (empty when already current). Raises
    :class:`StoreUnavailable` naming the database (without its password) when it is out of
    reach, or refuses the URL's database, role or password; :class:`SchemaMismatch` as
    :func:`apply_migrations` does (``node_id``, ``force``: see there).
    """
    try:
        result: list[str] = await trio_asyncio.aio_as_trio(_migrate_aio)(url, node_id, force)
    except SchemaMismatch:
        raise
    except Exception as exc:
        # Named, since it may come from an environment variable set long ago; said in one
        # line, since a start that fails here is an operator's to fix, not a crash.
        where = redacted_url(url)
        if is_refusal(exc):
            raise StoreUnavailable(
                f"cannot migrate: the database at {where} refused us: {exc} (VOLTARO_DATABASE_URL"
                " / --database-url: its database and role must exist, its password be right)"
            ) from exc
        if is_outage(exc):
            raise StoreUnavailable(
                f"cannot migrate: database unavailable at {where}: {exc}"
            ) from exc
        raise
    return result
