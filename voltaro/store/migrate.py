"""Numbered SQL migrations (``migrations/NNNN_name.sql``), applied in order, each once.

All pending files are applied in ONE transaction holding an advisory lock, so two processes
starting together (a server and ``voltaro db migrate``) cannot both apply a file, and a
failing file leaves the schema as it was. Each applied file is recorded in
``schema_migrations`` with a checksum; a file edited after it was applied is reported, not
re-run (write a new file instead).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import trio_asyncio

from voltaro.store.database import Connection, connect, redacted_url
from voltaro.store.errors import StoreUnavailable, is_outage, is_refusal

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key: "voltaro" in ASCII, so unrelated applications will not collide.
ADVISORY_LOCK_KEY = 0x766F6C7461726F

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


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


async def apply_migrations(connection: Connection) -> list[str]:
    """Apply what is pending on ``connection`` (asyncio side); returns the files applied."""
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
        rows = await connection.fetch("SELECT version, checksum FROM schema_migrations")
        done = {row["version"]: row["checksum"] for row in rows}
        for migration in available_migrations():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    log.warning(
                        "migration %04d_%s changed after it was applied; not re-applied",
                        migration.version,
                        migration.name,
                    )
                continue
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(f"{migration.version:04d}_{migration.name}")
    for name in applied_now:
        log.info("applied migration %s", name)
    return applied_now


async def _migrate_aio(url: str) -> list[str]:
    connection = await connect(url)
    try:
        return await apply_migrations(connection)
    finally:
        await connection.close()


async def migrate(url: str) -> list[str]:
    """Bring the database at ``url`` up to date (trio side; inside ``open_loop()``).

    Returns the names of the files applied now (empty when already current). Raises
    :class:`StoreUnavailable` naming the database (without its password) when it is out of
    reach, or refuses the URL's database, role or password.
    """
    try:
        result: list[str] = await trio_asyncio.aio_as_trio(_migrate_aio)(url)
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
