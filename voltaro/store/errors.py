"""What can go wrong in the store, said in two kinds: the database is away, or one write is bad.

The difference matters to the group-commit writer: an outage fails the whole batch (every
waiting caller raises :class:`StoreUnavailable` and the handler answers InternalError), while a
bad write fails only itself and its batch-mates are committed without it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

# SQLSTATE classes that mean "the server or the link is in trouble", not "your data is wrong":
# 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown,
# terminated backend, database does not accept connections), 58 system error.
_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})


# SQLSTATEs of a server that answers but will not let this URL in, which no waiting cures:
# class 28 invalid authorization (no such role, a wrong password), 3D000 no such database.
_REFUSAL_SQLSTATE_CLASSES = frozenset({"28"})
_REFUSAL_SQLSTATES = frozenset({"3D000"})


class StoreError(Exception):
    """Base of the store's own exceptions."""


class StoreUnavailable(StoreError):
    """The database could not be reached or lost the connection; nothing was committed.

    A caller (an OCPP handler) answers InternalError so that the charger keeps its data and
    retries. The store recovers by itself when the database is back.
    """


class SchemaMismatch(StoreError):
    """The database's schema and this Voltaro do not go together, and nothing was changed:
    a newer Voltaro migrated it, or migrating it now would break the older instances running
    on it. The message says which, and what to do."""


class WriteFailed(StoreError):
    """This one write was rejected by the database; its batch-mates were committed."""


def is_outage(exc: BaseException, connection: Any = None) -> bool:
    """True when ``exc`` says the database is unreachable rather than that a write is wrong.

    ``connection``, when given, is the asyncpg connection the error came from: if it is closed
    afterwards, the link is gone whatever the exception says.
    """
    if connection is not None and connection.is_closed():
        return True
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES
    if isinstance(exc, asyncpg.InternalClientError):
        # an operation on a connection whose protocol is still taking in an error: the
        # server ended the backend while it sat in the pool ("cannot switch to state 12;
        # another operation (2) is in progress"). The link failed, not the data.
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # asyncpg also uses InterfaceError for bad query arguments; only a closed or
        # never-opened connection is an outage.
        return "closed" in str(exc) or "connect" in str(exc)
    return isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError)


def is_refusal(exc: BaseException) -> bool:
    """True when ``exc`` says the database server refused this URL's database, role or
    password: a setting to correct, not an outage to wait out."""
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate[:2] in _REFUSAL_SQLSTATE_CLASSES or sqlstate in _REFUSAL_SQLSTATES
