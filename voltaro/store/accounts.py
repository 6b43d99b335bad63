"""Operator accounts, their dashboard sessions and their API tokens (migration 0014).

Only hashes of secrets reach this module: the caller (:mod:`voltaro.central.accounts`)
hashes passwords (scrypt) and session ids and tokens (SHA-256). Lookups by a hash join the
account, so a role change or a removed account takes effect on the next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from voltaro.store.database import Connection, Database


@dataclass(frozen=True)
class AccountRecord:
    name: str
    role: str
    password_hash: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TokenRecord:
    id: int
    account: str
    label: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class Holder:
    """Who a session or token belongs to: ``account`` None is the bootstrap admin token."""

    account: str | None
    role: str


def _account(row: Any) -> AccountRecord:
    return AccountRecord(
        row["name"], row["role"], row["password_hash"], row["created_at"], row["updated_at"]
    )


def _token(row: Any) -> TokenRecord:
    return TokenRecord(
        row["id"], row["account"], row["label"], row["created_at"], row["last_used_at"]
    )


class AccountRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    # ---- accounts

    async def list_all(self) -> list[AccountRecord]:
        async def read(connection: Connection) -> list[AccountRecord]:
            rows = await connection.fetch("SELECT * FROM operator_accounts ORDER BY name")
            return [_account(row) for row in rows]

        return await self._database.run(read)

    async def get(self, name: str) -> AccountRecord | None:
        async def read(connection: Connection) -> AccountRecord | None:
            row = await connection.fetchrow("SELECT * FROM operator_accounts WHERE name = $1", name)
            return None if row is None else _account(row)

        return await self._database.run(read)

    async def upsert(self, name: str, *, role: str | None, password_hash: str | None) -> bool:
        """Add the account (``role`` required then) or change the given fields; True when
        it was added."""

        async def write(connection: Connection) -> bool:
            added: bool = await connection.fetchval(
                """
                INSERT INTO operator_accounts AS a (name, role, password_hash)
                VALUES ($1, coalesce($2, 'viewer'), $3)
                ON CONFLICT (name) DO UPDATE SET
                    role = coalesce($2, a.role),
                    password_hash = coalesce($3, a.password_hash),
                    updated_at = now()
                RETURNING xmax = 0
                """,
                name,
                role,
                password_hash,
            )
            return added

        return await self._database.run(write)

    async def remove(self, name: str) -> bool:
        """Remove the account with its sessions and tokens (their rows cascade)."""

        async def write(connection: Connection) -> bool:
            result: str = await connection.execute(
                "DELETE FROM operator_accounts WHERE name = $1", name
            )
            return result != "DELETE 0"

        return await self._database.run(write)

    # ---- sessions

    async def add_session(self, id_hash: str, account: str | None, expires_at: datetime) -> None:
        """Record a new session; expired ones of anybody go (sign-ins are rare: the table
        stays as small as the sessions alive)."""

        async def write(connection: Connection) -> None:
            await connection.execute("DELETE FROM operator_sessions WHERE expires_at <= now()")
            await connection.execute(
                "INSERT INTO operator_sessions (id_hash, account, expires_at) VALUES ($1, $2, $3)",
                id_hash,
                account,
                expires_at,
            )

        await self._database.run(write)

    async def purge_expired_sessions(self) -> int:
        """Delete the sessions past their expiry (a revoked one is deleted when revoked); the
        count."""

        async def write(connection: Connection) -> int:
            result: str = await connection.execute(
                "DELETE FROM operator_sessions WHERE expires_at <= now()"
            )
            return int(result.split()[-1])

        return await self._database.run(write)

    async def session_holder(self, id_hash: str) -> Holder | None:
        """The holder of a live (unexpired) session; None when unknown, revoked or expired."""

        async def read(connection: Connection) -> Holder | None:
            row = await connection.fetchrow(
                """
                SELECT s.account, a.role FROM operator_sessions s
                LEFT JOIN operator_accounts a ON a.name = s.account
                WHERE s.id_hash = $1 AND s.expires_at > now()
                """,
                id_hash,
            )
            if row is None:
                return None
            return Holder(row["account"], row["role"] or "admin")

        return await self._database.run(read)

    async def end_session(self, id_hash: str) -> None:
        async def write(connection: Connection) -> None:
            await connection.execute("DELETE FROM operator_sessions WHERE id_hash = $1", id_hash)

        await self._database.run(write)

    async def end_sessions(self, account: str | None) -> int:
        """End every session of ``account`` (None: of the admin token), and expired ones of
        anybody; the number of live sessions ended."""

        async def write(connection: Connection) -> int:
            async with connection.transaction():
                await connection.execute("DELETE FROM operator_sessions WHERE expires_at <= now()")
                result: str = await connection.execute(
                    "DELETE FROM operator_sessions WHERE account IS NOT DISTINCT FROM $1", account
                )
            return int(result.split()[-1])

        return await self._database.run(write)

    # ---- API tokens

    async def add_token(self, account: str, label: str, token_hash: str) -> TokenRecord:
        async def write(connection: Connection) -> TokenRecord:
            try:
                row = await connection.fetchrow(
                    """
                    INSERT INTO api_tokens (account, label, token_hash) VALUES ($1, $2, $3)
                    RETURNING *
                    """,
                    account,
                    label,
                    token_hash,
                )
            except asyncpg.ForeignKeyViolationError:
                raise LookupError(account) from None
            return _token(row)

        return await self._database.run(write)

    async def tokens(self, account: str) -> list[TokenRecord]:
        async def read(connection: Connection) -> list[TokenRecord]:
            rows = await connection.fetch(
                "SELECT * FROM api_tokens WHERE account = $1 ORDER BY id", account
            )
            return [_token(row) for row in rows]

        return await self._database.run(read)

    async def remove_token(self, account: str, token_id: int) -> bool:
        async def write(connection: Connection) -> bool:
            result: str = await connection.execute(
                "DELETE FROM api_tokens WHERE account = $1 AND id = $2", account, token_id
            )
            return result != "DELETE 0"

        return await self._database.run(write)

    async def token_holder(self, token_hash: str) -> Holder | None:
        """The account a token belongs to; None when unknown. Its last use is recorded to
        the minute (a write, and so a commit, on every request would cost more than the
        request)."""

        async def read(connection: Connection) -> Holder | None:
            row = await connection.fetchrow(
                """
                SELECT t.id, t.account, a.role,
                       t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'
                           AS stale
                FROM api_tokens t JOIN operator_accounts a ON a.name = t.account
                WHERE t.token_hash = $1
                """,
                token_hash,
            )
            if row is None:
                return None
            if row["stale"]:
                await connection.execute(
                    "UPDATE api_tokens SET last_used_at = now() WHERE id = $1", row["id"]
                )
            return Holder(row["account"], row["role"])

        return await self._database.run(read)
