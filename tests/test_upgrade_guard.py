"""Instances of two versions on one database do not work across a migration, so Voltaro
does not migrate under older instances that run, and an older Voltaro does not use a
database a newer one migrated (``voltaro.store.migrate``; the README's "Upgrading").

"This Voltaro" in these tests knows one migration more than the code (``available_migrations``
patched, in this process); the server it meets is a real ``voltaro serve`` in a process of its
own, which knows only the real ones: to this process, an older Voltaro.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.central.test_cli_admin import run
from voltaro import cli
from voltaro.config import Settings
from voltaro.store.errors import SchemaMismatch
from voltaro.store.migrate import Migration, available_migrations
from voltaro.store.testing import TestPostgres

# the module, not the function voltaro.store exports under the same name
migrate_module = importlib.import_module("voltaro.store.migrate")

READY = re.compile(r"Voltaro is ready: chargers connect to ws://[^:]+:(\d+)/")
WAIT = 30.0  # seconds a start or a stop may take (a generous bound)


def with_one_more(monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    """Make this process a Voltaro that knows one migration more (creating table ``name``);
    returns its file name."""
    every = available_migrations()
    extra = Migration(every[-1].version + 1, name, f"CREATE TABLE {name} (x integer)")
    monkeypatch.setattr(migrate_module, "available_migrations", lambda: [*every, extra])
    return f"{extra.version:04d}_{extra.name}"


@contextmanager
def older_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A real ``voltaro serve`` on the database until the block ends (stopped by SIGTERM,
    as an operator stops one); yields its instance id."""
    log_file = tmp_path / "older.log"
    env = {**os.environ, "VOLTARO_DATABASE_URL": database_url, "VOLTARO_ADMIN_PORT": "0"}
    env.update(
        VOLTARO_OCPP_HOST="127.0.0.1",
        VOLTARO_OCPP_PORT="0",
        VOLTARO_ADMIN_TOKEN="upgrade-guard-token",
    )
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "voltaro", "serve"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + WAIT
        while not (ready := READY.search(log_file.read_text(errors="replace"))):
            assert process.poll() is None, log_file.read_text(errors="replace")
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield f"{os.uname().nodename}:{ready[1]}"
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0, log_file.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_no_migration_under_an_older_server_and_no_older_server_after_one(
    voltaro_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = voltaro_settings.database_url or ""
    with older_server(url, tmp_path) as older:
        extra = with_one_more(monkeypatch, "upgrade_guard_probe")
        # an operator's command of the newer version does not migrate under it ...
        assert run(voltaro_settings, "idtag", "list") == 2
        err = capsys.readouterr().err
        assert f"error: not migrating the database to this Voltaro's schema ({extra})" in err
        assert "while 1 instance of an older Voltaro runs on it, which would fail" in err
        assert f"{older} (pid " in err and "lease until " in err
        # ... nor does `db migrate`, unless forced
        assert run(voltaro_settings, "db", "migrate") == 2
        assert "`voltaro db migrate --force`" in capsys.readouterr().err
        assert run(voltaro_settings, "db", "migrate", "--force") == 0
        assert capsys.readouterr().out.strip() == f"applied: {extra}"
    # stopped, the older server retired its lease; what the newer version asks, it answers
    assert run(voltaro_settings, "idtag", "list") == 0
    assert "no id tags" in capsys.readouterr().out
    monkeypatch.undo()
    # and now a server of the older version refuses the database, saying why
    serve = ["serve", "--database-url", url, "--ocpp-host", "127.0.0.1", "--ocpp-port", "0"]
    assert cli.main([*serve, "--admin-port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"error: the database was migrated by a newer Voltaro ({extra} applied;" in err
    assert "Traceback" not in err
    assert run(voltaro_settings, "chargepoint", "list") == 2
    assert "run the newer Voltaro here too" in capsys.readouterr().err


async def test_whose_leases_hold_a_migration_back(
    pg_server: TestPostgres, aio_loop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's own earlier processes (killed before they retired: ``node``, ``node/w1``)
    and leases that ran out do not count; another node does, unless forced."""
    await trio.to_thread.run_sync(pg_server.execute, 'CREATE DATABASE "blank_upgrade_guard"')
    url = pg_server.url("blank_upgrade_guard")
    every = available_migrations()
    first = Migration(every[-1].version + 1, "guard_first", "CREATE TABLE guard_first ()")
    second = Migration(every[-1].version + 2, "guard_second", "CREATE TABLE guard_second ()")
    try:
        assert await migrate_module.migrate(url)  # every real one: nobody runs yet
        leases = """
            INSERT INTO instances (id, host, pid, alive_until) VALUES
              ('node:9000', 'a', 1, now() + interval '1 minute'),
              ('node:9000/w1', 'a', 2, now() + interval '1 minute'),
              ('gone:9000', 'b', 3, now() - interval '1 second')
        """
        await trio.to_thread.run_sync(pg_server.execute, leases, "blank_upgrade_guard")
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: [*every, first])
        assert await migrate_module.migrate(url, node_id="node:9000") == [name(first)]

        other = "INSERT INTO instances (id, host, pid, alive_until)"
        other += " VALUES ('node:90001', 'c', 4, now() + interval '1 minute')"
        await trio.to_thread.run_sync(pg_server.execute, other, "blank_upgrade_guard")
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: [*every, first, second])
        with pytest.raises(
            SchemaMismatch,
            match=r" 1 instance of an older Voltaro runs .*: node:90001 \(pid 4 on c",
        ):
            await migrate_module.migrate(url, node_id="node:9000")
        assert await migrate_module.migrate(url, force=True) == [name(second)]
    finally:
        await trio.to_thread.run_sync(pg_server.drop_database, url)


def name(migration: Migration) -> str:
    return f"{migration.version:04d}_{migration.name}"
