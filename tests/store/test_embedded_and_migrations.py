"""The embedded server (start, share with another process, stop) and the migrations."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import trio

from voltaro.central import open_central_system
from voltaro.config import Settings
from voltaro.store import migrate
from voltaro.store.migrate import available_migrations
from voltaro.store.testing import TestPostgres


async def test_embedded_server_shared_with_a_command(tmp_path: Path, aio_loop: Any) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(database_url=None, data_dir=data_dir)
    async with open_central_system(settings) as central:
        assert (data_dir / "pg" / "PG_VERSION").exists()
        assert (data_dir / "pg" / "postmaster.pid").exists()
        # another process (the operator's command) joins the running server
        env = {**os.environ, "VOLTARO_DATA_DIR": str(data_dir)}
        env.pop("VOLTARO_DATABASE_URL", None)
        result = await trio.run_process(
            [sys.executable, "-m", "voltaro", "idtag", "add", "SHARED"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        with trio.fail_after(10):
            while (await central.authorizer.id_tag_info("SHARED"))["status"] != "Accepted":
                await trio.sleep(0.01)
        # ... and leaving did not stop it under us
        await central.store.charge_points.upsert("STILL-UP")
    # the last user stopped it
    assert not (data_dir / "pg" / "postmaster.pid").exists()


def test_migration_files_are_numbered() -> None:
    migrations = available_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "core"


async def test_migrate_is_idempotent_and_recorded(pg_server: TestPostgres, aio_loop: Any) -> None:
    await trio.to_thread.run_sync(pg_server.execute, 'CREATE DATABASE "blank_idempotent"')
    url = pg_server.url("blank_idempotent")
    try:
        # two at once: the advisory lock makes one apply and the other find it done
        results: list[list[str]] = []

        async def one() -> None:
            results.append(await migrate(url))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            nursery.start_soon(one)
        every = [f"{m.version:04d}_{m.name}" for m in available_migrations()]
        assert sorted(results) == [[], every]
        assert await migrate(url) == []
    finally:
        await trio.to_thread.run_sync(pg_server.drop_database, url)
