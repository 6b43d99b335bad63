"""Operator accounts: who may do what, and how they prove who they are.

Three roles, each allowed what the one before it is:

- ``viewer``: reads everything (lists, details, the message log, the audit log);
- ``operator``: also sends OCPP commands and manages id tags (blocking a lost card, adding
  a customer's is the day-to-day of running chargers);
- ``admin``: also manages charge points (add, accept or reject, password, remove), operator
  accounts and their tokens and sessions, and other settings.

The admin token (``VOLTARO_ADMIN_TOKEN`` or ``<data dir>/admin-token``) is the bootstrap
admin: it acts as :data:`BOOTSTRAP_ACTOR` with the admin role, so the first accounts can be
made through the API (or with ``voltaro account add``).

Secrets: passwords are kept as scrypt hashes (:mod:`voltaro.central.passwords`, hashed
and checked off the event loop). Dashboard session ids and API tokens are 256-bit random
values kept as their SHA-256 (a slow hash adds nothing against guessing one of 2^256, and
every request would pay it); a token is shown once, when it is made.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

import trio

from voltaro.central.passwords import hash_password, verify_password
from voltaro.store.accounts import AccountRecord, AccountRepository, Holder, TokenRecord

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")

BOOTSTRAP_ACTOR = "@admin-token"
"""The actor name of the admin token (``@`` cannot start an account's name)."""

TOKEN_PREFIX = "vlt_"  # tells an account's token from the admin token in a log or a paste
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD = 8


@functools.cache
def _no_account_hash() -> str:
    """A hash no password matches, checked when the account is unknown, so that a wrong
    name costs as long as a wrong password (no telling which names exist by timing)."""
    return hash_password(secrets.token_urlsafe(16))


def account_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an account's name, or None."""
    if ACCOUNT_NAME.fullmatch(name) is None:
        return (
            "an account name is 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or a digit"
        )
    return None


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(cast(Role, role)) >= ROLES.index(cast(Role, needed))


@dataclass(frozen=True)
class Principal:
    """Who is asking: an account (``account``) or the admin token (``account`` None)."""

    account: str | None
    role: Role

    @property
    def name(self) -> str:
        return BOOTSTRAP_ACTOR if self.account is None else self.account

    def may(self, needed: Role) -> bool:
        return role_at_least(self.role, needed)


BOOTSTRAP = Principal(None, "admin")


def _principal(holder: Holder | None) -> Principal | None:
    return None if holder is None else Principal(holder.account, cast(Role, holder.role))


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Accounts:
    """Accounts, sessions and tokens over one store (see the module doc)."""

    def __init__(self, repository: AccountRepository) -> None:
        self._repository = repository

    async def list_all(self) -> list[AccountRecord]:
        return await self._repository.list_all()

    async def get(self, name: str) -> AccountRecord | None:
        return await self._repository.get(name)

    async def put(self, name: str, *, role: Role | None, password: str | None) -> bool:
        """Add the account or change the given fields; True when it was added (a new
        account without a role is a viewer)."""
        password_hash = None
        if password is not None:
            password_hash = await trio.to_thread.run_sync(hash_password, password)
        return await self._repository.upsert(name, role=role, password_hash=password_hash)

    async def remove(self, name: str) -> bool:
        """Remove the account; its sessions and tokens end with it."""
        return await self._repository.remove(name)

    async def check_password(self, name: str, password: str) -> Principal | None:
        """The account, when ``password`` is its password; None otherwise (an account
        without a password cannot sign in: it has tokens only)."""
        record = await self._repository.get(name)
        stored = None if record is None else record.password_hash
        if stored is None:
            stored = await trio.to_thread.run_sync(_no_account_hash)
        matches = await trio.to_thread.run_sync(verify_password, password, stored)
        if not matches or record is None or record.password_hash is None:
            return None
        return Principal(record.name, cast(Role, record.role))

    # ---- dashboard sessions

    async def start_session(self, principal: Principal, lifetime: timedelta) -> str:
        """A new session of ``principal``; its id (keep it in the session cookie)."""
        session_id = secrets.token_urlsafe(32)
        await self._repository.add_session(
            secret_hash(session_id), principal.account, datetime.now(UTC) + lifetime
        )
        return session_id

    async def session(self, session_id: str) -> Principal | None:
        return _principal(await self._repository.session_holder(secret_hash(session_id)))

    async def end_session(self, session_id: str) -> None:
        await self._repository.end_session(secret_hash(session_id))

    async def end_sessions(self, principal: Principal) -> int:
        """Sign ``principal`` out everywhere; the number of sessions ended."""
        return await self._repository.end_sessions(principal.account)

    async def end_account_sessions(self, name: str) -> int:
        """Sign the account ``name`` out everywhere; the number of sessions ended."""
        return await self._repository.end_sessions(name)

    # ---- API tokens

    async def create_token(self, account: str, label: str) -> tuple[TokenRecord, str]:
        """A new token of ``account`` and its value (shown once: only its hash is kept).
        LookupError when there is no such account."""
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = await self._repository.add_token(account, label, secret_hash(value))
        return record, value

    async def tokens(self, account: str) -> list[TokenRecord]:
        return await self._repository.tokens(account)

    async def revoke_token(self, account: str, token_id: int) -> bool:
        return await self._repository.remove_token(account, token_id)

    async def token(self, value: str) -> Principal | None:
        """Who holds the token ``value``; None when it is no account's token."""
        if not value.startswith(TOKEN_PREFIX):
            return None
        return _principal(await self._repository.token_holder(secret_hash(value)))
