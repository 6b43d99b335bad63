"""The operator commands, run as ``voltaro`` runs them: parsed, then ``func(args, settings)``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from voltaro import cli_admin
from voltaro.config import Settings
from voltaro.store.migrate import available_migrations
from voltaro.store.testing import TestPostgres


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="voltaro")
    cli_admin.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args, settings)
    return code


def test_chargepoint_commands(
    voltaro_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    s = voltaro_settings
    assert run(s, "chargepoint", "list") == 0
    assert "no charge points" in capsys.readouterr().out
    assert run(s, "chargepoint", "add", "CP-1", "--password", "k3y", "--lenient") == 0
    assert run(s, "chargepoint", "add", "CP-2", "--status", "Pending") == 0
    assert "added charge point CP-2" in capsys.readouterr().out
    assert run(s, "chargepoint", "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["ID", "STATUS", "PRESENCE"]
    cp1 = next(line.split() for line in out if line.startswith("CP-1"))
    cp2 = next(line.split() for line in out if line.startswith("CP-2"))
    assert cp1[:3] == ["CP-1", "Accepted", "offline"] and cp1[4:6] == ["yes", "yes"]
    assert cp2[:2] == ["CP-2", "Pending"] and cp2[4:6] == ["no", "no"]
    assert "k3y" not in "\n".join(out)

    # adding one that is there already (a charger that connected first is Pending) changes
    # only what is given, and says how to accept it
    assert run(s, "chargepoint", "add", "CP-2") == 0
    assert capsys.readouterr().out.splitlines() == [
        "updated charge point CP-2",
        "its status stays Pending: 'voltaro chargepoint accept CP-2' accepts it",
    ]
    assert run(s, "chargepoint", "accept", "CP-2") == 0
    assert run(s, "chargepoint", "add", "CP-1", "--no-lenient") == 0
    assert "updated charge point CP-1" in capsys.readouterr().out
    run(s, "chargepoint", "list")
    out = capsys.readouterr().out
    assert "CP-2  Accepted" in out
    assert [line.split()[5] for line in out.splitlines() if line.startswith("CP-1")] == ["no"]

    assert run(s, "chargepoint", "remove", "CP-2") == 0
    assert run(s, "chargepoint", "remove", "CP-2") == 1
    assert "no charge point 'CP-2'" in capsys.readouterr().err
    assert run(s, "chargepoint", "accept", "NOPE") == 1


def test_idtag_commands(voltaro_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    s = voltaro_settings
    assert (
        run(
            s,
            "idtag",
            "add",
            "CARD-1",
            "--expiry",
            "2030-01-01T12:00:00+01:00",
            "--parent",
            "FLEET",
        )
        == 0
    )
    assert run(s, "idtag", "add", "CARD-2") == 0
    assert run(s, "idtag", "block", "card-2") == 0  # id tags are case-insensitive
    capsys.readouterr()
    assert run(s, "idtag", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "TAG", "STATUS", "EXPIRY", "PARENT"]
    assert lines[1].split() == ["CARD-1", "Accepted", "2030-01-01", "11:00:00Z", "FLEET"]
    assert lines[2].split() == ["CARD-2", "Blocked", "-", "-"]
    assert run(s, "idtag", "add", "CARD-2") == 0  # replaces: Accepted again
    assert "replaced id tag CARD-2" in capsys.readouterr().out
    assert run(s, "idtag", "remove", "CARD-2") == 0
    assert run(s, "idtag", "remove", "CARD-2") == 1
    assert run(s, "idtag", "block", "GHOST") == 1
    assert "no id tag 'GHOST'" in capsys.readouterr().err
    assert run(s, "idtag", "add", "X", "--expiry", "next tuesday") == 1
    assert "not an RFC 3339 date-time" in capsys.readouterr().err
    assert run(s, "idtag", "add", "X", "--expiry", "0001-01-01T00:00:00") == 1
    assert "outside the times Voltaro accepts" in capsys.readouterr().err


def test_db_migrate(
    pg_server: TestPostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg_server.execute('CREATE DATABASE "blank_for_migrate"')
    settings = Settings(database_url=pg_server.url("blank_for_migrate"), data_dir=tmp_path)
    try:
        assert run(settings, "db", "migrate") == 0
        every = ", ".join(f"{m.version:04d}_{m.name}" for m in available_migrations())
        assert capsys.readouterr().out.strip() == f"applied: {every}"
        assert run(settings, "db", "migrate") == 0
        assert capsys.readouterr().out.strip() == "database is up to date"
    finally:
        pg_server.drop_database(settings.database_url or "")


def test_database_unavailable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        database_url=f"postgresql://postgres@/x?host={tmp_path}/nowhere", data_dir=tmp_path
    )
    assert run(settings, "idtag", "list") == 2
    assert run(settings, "db", "migrate") == 2
    assert "error:" in capsys.readouterr().err
