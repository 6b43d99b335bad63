"""Pytest fixtures for tests that need a real PostgreSQL (never a mock of it).

One embedded server per test session (in a temporary directory, deleted at exit), one
migrated *template* database made once, and a fresh database per test copied from the
template (``CREATE DATABASE ... TEMPLATE``: tens of milliseconds, no migrations per test).

Use from any test folder by loading this module as a plugin in the root ``conftest.py``::

    pytest_plugins = ["voltaro.store.testing"]

(or ``from voltaro.store.testing import *`` in a folder's conftest; the server is a
process-wide singleton either way). Fixtures:

- ``pg_server``  (session): the :class:`TestPostgres`;
- ``database_url``: URL of a fresh, migrated database for this test (sync fixture, so sync
  tests can use it too);
- ``aio_loop``: an open trio-asyncio loop for the test (async tests that touch the store);
- ``voltaro_settings``: :class:`~voltaro.config.Settings` pointing at ``database_url`` with a
  temporary data dir.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import queue
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trio_asyncio

from voltaro.config import Settings
from voltaro.store.embedded import embedded_url, start_embedded, stop_embedded
from voltaro.store.migrate import apply_migrations

TEMPLATE = "voltaro_template"


class TestPostgres:
    """The session's embedded PostgreSQL, and a factory of fresh migrated databases."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    SPARES = (
        3  # databases kept ready (and made concurrently) ahead of the tests that will ask for them
    )

    def __init__(self) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="voltaro-test-pg-"))
        self._server = start_embedded(self.base_dir)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        asyncio.run(self._prepare_template())
        # CREATE DATABASE costs 50-300 ms here (disk): a worker thread makes them ahead.
        self._ready: queue.Queue[str] = queue.Queue()
        self._wanted = threading.Semaphore(self.SPARES)
        self._stopping = threading.Event()
        self._makers = [
            threading.Thread(target=self._make_spares, name=f"test-db-maker-{i}", daemon=True)
            for i in range(self.SPARES)
        ]
        for maker in self._makers:
            maker.start()

    def url(self, database: str = "postgres") -> str:
        return embedded_url(self._server, database)

    def new_database(self, prefix: str = "t") -> str:
        """A database copied from the migrated template, nobody else's; returns its URL."""
        if prefix == "t":
            url = self._ready.get(timeout=60)
            self._wanted.release()
            return url
        return self._create(prefix)

    def _create(self, prefix: str) -> str:
        with self._lock:
            name = f"{prefix}_{next(self._counter)}"
        asyncio.run(self._execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}'))
        return self.url(name)

    def _make_spares(self) -> None:
        while not self._stopping.is_set():
            if self._wanted.acquire(timeout=0.1):
                self._ready.put(self._create("t"))

    @staticmethod
    def database_name(url: str) -> str:
        """The database a URL names (``postgresql://user@/NAME?host=...``)."""
        return urllib.parse.urlsplit(url).path.lstrip("/")

    def drop_database(self, url: str) -> None:
        name = self.database_name(url)
        asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement as the superuser (to simulate outages, for instance)."""
        asyncio.run(self._execute(sql, database))

    def stop(self) -> None:
        self._stopping.set()
        for maker in self._makers:
            maker.join(timeout=10)
        stop_embedded(self._server)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    async def _execute(self, sql: str, database: str = "postgres") -> None:
        connection = await asyncpg.connect(self.url(database))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def _prepare_template(self) -> None:
        # Speed over crash-safety for the throw-away test server: what the tests check is
        # that Voltaro commits before it answers, not that the disk keeps its promises.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await self._execute(f"ALTER SYSTEM SET {setting} = off")
        await self._execute("SELECT pg_reload_conf()")
        await self._execute(f"CREATE DATABASE {TEMPLATE}")
        connection = await asyncpg.connect(self.url(TEMPLATE))
        try:
            await apply_migrations(connection)
        finally:
            await connection.close()


_server: TestPostgres | None = None
_server_lock = threading.Lock()


def shared_test_postgres() -> TestPostgres:
    """The process-wide test server, started on first use and stopped at exit."""
    global _server
    with _server_lock:
        if _server is None:
            _server = TestPostgres()
            atexit.register(_server.stop)
        return _server


@pytest.fixture(scope="session")
def pg_server() -> TestPostgres:
    return shared_test_postgres()


@pytest.fixture
def database_url(pg_server: TestPostgres) -> Iterator[str]:
    url = pg_server.new_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture
async def aio_loop() -> AsyncIterator[Any]:
    async with trio_asyncio.open_loop() as loop:
        yield loop


@pytest.fixture
def voltaro_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path / "data")
