"""Counters of dashboard sign-ins with a password, shared by every instance on the database
(migration 0017): the facts behind :mod:`voltaro.central.sign_in`.

A sign-in is counted against its keys (its account, its client address) *before* its
password is checked, in one transaction that locks the keys' rows: so concurrent guesses,
on one instance or on several, cannot slip past a limit between the check and the count.
One that then succeeds gives its count back (:meth:`SignInAttempts.succeeded`).

A key is blocked while its count has reached its limit and its last counted attempt is less
than ``block`` seconds ago; a refused attempt is not counted and does not extend the block
(a guesser who keeps trying does not keep the account locked for longer). A count whose
last attempt is ``block`` seconds old starts again from nothing. Times are the database's
(``now()``), so instances with skewed clocks agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voltaro.store.database import Connection, Database
from voltaro.store.records import pg_text


@dataclass(frozen=True)
class Begun:
    """What :meth:`SignInAttempts.begin` decided."""

    retry_after: float
    """Seconds until the blocked keys may try again; 0: not blocked, the attempt counted."""
    blocked: tuple[str, ...] = ()
    """The keys that refused it (none when it was counted)."""
    first_refusal: bool = False
    """Whether this is the first attempt refused in the current block of one of them."""
    at_limit: tuple[str, ...] = ()
    """The keys this attempt brought to their limit: if it fails, they are blocked now."""


class SignInAttempts:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def begin(self, limits: Mapping[str, int], block: float) -> Begun:
        """Count a sign-in against each key of ``limits`` (key -> failed attempts allowed
        within ``block`` seconds; 0: that key is not counted), unless one of them is blocked."""
        keys = sorted(pg_text(key) or "" for key, limit in limits.items() if limit > 0)
        limit_of = {pg_text(key): limit for key, limit in limits.items()}
        if not keys:
            return Begun(0.0)
        return await self._database.run_in_transaction(_begin, keys, limit_of, block)

    async def succeeded(self, cleared: str | None, given_back: str | None) -> None:
        """A counted sign-in succeeded: forget the count of ``cleared`` (its account), and
        take this attempt off the count of ``given_back`` (its address, which others share)."""

        async def write(connection: Connection) -> None:
            if cleared is not None:
                await connection.execute(
                    "DELETE FROM sign_in_attempts WHERE key = $1", pg_text(cleared)
                )
            if given_back is not None:
                await connection.execute(
                    "UPDATE sign_in_attempts SET attempts = greatest(attempts - 1, 0)"
                    " WHERE key = $1",
                    pg_text(given_back),
                )

        await self._database.run(write)

    async def purge_older_than(self, block: float) -> int:
        """Delete the counts whose last attempt is ``block`` seconds old (they block nothing
        and would start again from nothing); the number deleted."""

        async def write(connection: Connection) -> int:
            result: str = await connection.execute(
                "DELETE FROM sign_in_attempts WHERE last_at <= now() - make_interval(secs => $1)",
                block,
            )
            return int(result.split()[-1])

        return await self._database.run(write)

    async def count(self, key: str) -> int:
        """The current count of ``key`` (0 without one): for tests and diagnostics."""

        async def read(connection: Connection) -> int:
            value = await connection.fetchval(
                "SELECT attempts FROM sign_in_attempts WHERE key = $1", pg_text(key)
            )
            return int(value or 0)

        return await self._database.run(read)


async def _begin(
    connection: Connection, keys: list[str], limit_of: Mapping[str | None, int], block: float
) -> Begun:
    # Every key gets its row first, so that the SELECT below locks all of them: without it,
    # concurrent first sign-ins of a key would each find no row and all be counted.
    await connection.execute(
        "INSERT INTO sign_in_attempts (key, attempts, last_at)"
        " SELECT unnest($1::text[]), 0, now() ON CONFLICT (key) DO NOTHING",
        keys,
    )
    rows = await connection.fetch(
        """
        SELECT key, attempts, refused,
               extract(epoch FROM last_at + make_interval(secs => $2) - now())::float8 AS left
        FROM sign_in_attempts WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE
        """,
        keys,
        block,
    )
    blocked = [row for row in rows if row["left"] > 0 and row["attempts"] >= limit_of[row["key"]]]
    if blocked:
        names = [row["key"] for row in blocked]
        await connection.execute(
            "UPDATE sign_in_attempts SET refused = refused + 1 WHERE key = ANY($1::text[])", names
        )
        return Begun(
            retry_after=max(row["left"] for row in blocked),
            blocked=tuple(names),
            first_refusal=any(row["refused"] == 0 for row in blocked),
        )
    at_limit = []
    for key in keys:  # in key order, as locked: concurrent sign-ins cannot deadlock
        attempts = await connection.fetchval(
            """
            INSERT INTO sign_in_attempts AS s (key, attempts, last_at) VALUES ($1, 1, now())
            ON CONFLICT (key) DO UPDATE SET
                attempts = CASE WHEN s.last_at <= now() - make_interval(secs => $2)
                                THEN 1 ELSE s.attempts + 1 END,
                refused = CASE WHEN s.last_at <= now() - make_interval(secs => $2)
                               THEN 0 ELSE s.refused END,
                last_at = now()
            RETURNING attempts
            """,
            key,
            block,
        )
        if attempts >= limit_of[key]:
            at_limit.append(key)
    return Begun(0.0, at_limit=tuple(at_limit))
