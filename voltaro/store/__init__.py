"""Everything that talks to PostgreSQL, and only this (see DESIGN.md, "Data").

- :func:`open_store` / :class:`Store`: the running store and its repositories;
- :mod:`.writer`: the group-commit writer (a reply goes out only after its commit);
- :mod:`.id_tags`: the id tag table and its LISTEN/NOTIFY-fed cache;
- :mod:`.migrate`: numbered SQL migrations (``migrations/NNNN_*.sql``);
- :mod:`.embedded`: the embedded PostgreSQL used when no database URL is set;
- :mod:`.testing`: pytest fixtures (one embedded server per session, a fresh migrated
  database per test).

Callers are trio code running inside ``trio_asyncio.open_loop()``. Errors: every operation
may raise :class:`StoreUnavailable` (database away, or not answering within its deadline:
see :mod:`.database`) and writes may raise :class:`WriteFailed` (this write was rejected).
The message log keeps within byte bounds (:mod:`.message_log`).
"""

from voltaro.store.errors import StoreError, StoreUnavailable, WriteFailed
from voltaro.store.migrate import migrate
from voltaro.store.store import Store, database_url, open_store

__all__ = [
    "Store",
    "StoreError",
    "StoreUnavailable",
    "WriteFailed",
    "database_url",
    "migrate",
    "open_store",
]
