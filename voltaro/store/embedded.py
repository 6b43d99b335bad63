"""The embedded PostgreSQL: what Voltaro runs when no database URL is configured.

It is the ``pgserver`` package's PostgreSQL binaries with a data directory under Voltaro's
own (``<data_dir>/pg``): the same engine and SQL as a real deployment, nothing to install.
pgserver shares one running server between processes that open the same directory (it keeps
a list of the processes holding it), so ``voltaro chargepoint add`` works while ``voltaro
serve`` runs; the last process to let go stops the server.

Starting and stopping block (``pg_ctl -w``, about a second), so both run in a worker thread.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger(__name__)


def _import_pgserver() -> Any:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset; pgserver copes, so do we.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


def _refresh_holders(server: Any, *, include_self: bool) -> None:
    """Drop processes that died without letting go (SIGKILL) from pgserver's holder list,
    and (``include_self``) make sure this process is on it.

    Otherwise the list never empties again and the server would be left running after the
    last live process exits; and pgserver re-hands a cached handle to a process without
    listing it again, so another process's exit could stop a server still in use here.
    """
    try:
        holders = server.global_process_id_list
        with server._lock:
            alive = [pid for pid in holders.get() if _pid_alive(pid)]
            if include_self and os.getpid() not in alive:
                alive.append(os.getpid())
            holders.put(alive)
    except (AttributeError, OSError) as exc:  # pgserver internals moved: not fatal
        log.debug("could not prune pgserver holders: %s", exc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# pgserver hands out one handle per data directory and process, and counts processes, not
# users: within one process (the server plus an in-process command, or tests) we count.
_users: dict[Path, int] = {}
_users_lock = threading.Lock()


def embedded_exists(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds an embedded database (one :func:`start_embedded` made)."""
    return (data_dir / "pg" / "PG_VERSION").is_file()


def start_embedded(data_dir: Path) -> Any:
    """Start (or join) the embedded server in ``data_dir/pg``; blocking. Returns the handle."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "pg"
    pgserver = _import_pgserver()
    with _users_lock:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        _users[pgdata] = _users.get(pgdata, 0) + 1
    _refresh_holders(server, include_self=True)
    log.info("embedded PostgreSQL running in %s", pgdata)
    return server


def stop_embedded(server: Any) -> None:
    """Let go of the embedded server; stops it when no other user holds it. Blocking."""
    pgdata = Path(server.pgdata)
    with _users_lock:
        remaining = _users.get(pgdata, 1) - 1
        if remaining > 0:
            _users[pgdata] = remaining
            return
        _users.pop(pgdata, None)
        _refresh_holders(server, include_self=False)
        server.cleanup()


def embedded_url(server: Any, database: str | None = None) -> str:
    """The connection URL (a Unix socket) of database ``database`` (default ``postgres``)."""
    return str(server.get_uri(database))


@asynccontextmanager
async def embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """Run the embedded server for the duration of the block; yields its URL."""
    server = await trio.to_thread.run_sync(start_embedded, data_dir)
    try:
        yield embedded_url(server)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(stop_embedded, server)
