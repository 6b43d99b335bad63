"""The embedded server (start, share with another process, stop) and the migrations."""

from __future__ import annotations

import importlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from voltaro.central import open_central_system
from voltaro.config import Settings
from voltaro.store import migrate
from voltaro.store.database import open_database
from voltaro.store.migrate import available_migrations
from voltaro.store.testing import TestPostgres

# the module, not the function voltaro.store exports under the same name
migrate_module = importlib.import_module("voltaro.store.migrate")


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


async def test_meter_values_kept_through_the_move_to_sets(
    pg_server: TestPostgres, aio_loop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0005 stores sampled values one row per message; the rows stored one per
    value before it read back the same through the ``meter_values`` view."""
    await trio.to_thread.run_sync(pg_server.execute, 'CREATE DATABASE "blank_meter_sets"')
    url = pg_server.url("blank_meter_sets")
    every = available_migrations()
    try:
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: every[:4])
        await migrate(url)
        old_rows = """
            INSERT INTO meter_values (charge_point_id, connector_id, transaction_id,
                sampled_at, received_at, source, value, context, format, measurand, phase,
                location, unit)
            VALUES
              ('CP1', 1, 7, '2024-05-01 10:30:00.123456+00', '2024-05-01 10:30:01+00',
               'MeterValues', '1500', NULL, NULL, NULL, NULL, NULL, NULL),
              ('CP1', 1, 7, '2024-05-01 10:30:00.123456+00', '2024-05-01 10:30:01+00',
               'MeterValues', '230.1', 'Sample.Clock', 'Raw', 'Voltage', 'L1-N', 'Inlet', 'V'),
              ('CP2', 2, NULL, '2024-05-01 11:00:00+02', '2024-05-01 09:00:02+00',
               'StopTransaction', 'ünïcode', NULL, 'SignedData', NULL, NULL, 'EV', NULL)
        """
        await trio.to_thread.run_sync(pg_server.execute, old_rows, "blank_meter_sets")
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: every)
        assert await migrate(url) == [f"{m.version:04d}_{m.name}" for m in every[4:]]

        async with open_database(url) as database:
            rows = await database.run(
                lambda c: c.fetch(
                    "SELECT charge_point_id, connector_id, transaction_id, sampled_at,"
                    " received_at, source, value, context, format, measurand, phase,"
                    " location, unit FROM meter_values ORDER BY set_id, ordinal"
                )
            )
            effective = await database.run(
                lambda c: c.fetch(
                    "SELECT measurand, location, unit FROM meter_values_effective"
                    " ORDER BY set_id, ordinal"
                )
            )
        utc = UTC
        assert [tuple(r) for r in rows] == [
            ("CP1", 1, 7, datetime(2024, 5, 1, 10, 30, 0, 123456, utc),
             datetime(2024, 5, 1, 10, 30, 1, tzinfo=utc), "MeterValues", "1500",
             None, None, None, None, None, None),
            ("CP1", 1, 7, datetime(2024, 5, 1, 10, 30, 0, 123456, utc),
             datetime(2024, 5, 1, 10, 30, 1, tzinfo=utc), "MeterValues", "230.1",
             "Sample.Clock", "Raw", "Voltage", "L1-N", "Inlet", "V"),
            ("CP2", 2, None, datetime(2024, 5, 1, 9, 0, 0, tzinfo=utc),
             datetime(2024, 5, 1, 9, 0, 2, tzinfo=utc), "StopTransaction", "ünïcode",
             None, "SignedData", None, None, "EV", None),
        ]  # fmt: skip
        assert [tuple(r) for r in effective] == [
            ("Energy.Active.Import.Register", "Outlet", "Wh"),
            ("Voltage", "Inlet", "V"),
            ("Energy.Active.Import.Register", "EV", "Wh"),
        ]
    finally:
        await trio.to_thread.run_sync(pg_server.drop_database, url)
