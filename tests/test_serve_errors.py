"""`voltaro serve` that cannot start says why in one line and exits 2: a port in use (the
chargers' or the admin API's), a database out of reach or one that refuses the URL (no
such database or role). No traceback for an operator's configuration problem."""

from __future__ import annotations

import socket
import urllib.parse
from pathlib import Path

import pytest

from voltaro import cli
from voltaro.store.testing import TestPostgres, pg_server

__all__ = ["pg_server"]


def serve(*flags: str) -> int:
    return cli.main(["serve", "--ocpp-host", "127.0.0.1", "--ocpp-port", "0", *flags])


def test_ports_in_use_and_an_unreachable_database_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOLTARO_ADMIN_TOKEN", raising=False)  # a start generates one
    data_dir = str(tmp_path / "data")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        assert serve("--data-dir", data_dir, "--ocpp-port", str(port), "--admin-port", "0") == 2
        err = capsys.readouterr().err
        assert f"error: cannot listen for chargers on 127.0.0.1:{port}:" in err
        assert "Traceback" not in err

        assert serve("--data-dir", data_dir, "--admin-port", str(port)) == 2
        out, err = capsys.readouterr()
        assert f"error: cannot listen for the admin API on 127.0.0.1:{port}:" in err
        assert "Traceback" not in err
        # no token shown by a start that never listened, and none kept: the next shows one
        assert "Admin API token" not in out
        assert not (tmp_path / "data" / "admin-token").exists()

    assert serve("--database-url", "postgresql://nobody@127.0.0.1:1/none") == 2
    err = capsys.readouterr().err
    assert "error: cannot migrate: database unavailable" in err
    assert "Traceback" not in err


def test_a_database_or_role_that_does_not_exist_is_a_one_line_error(
    pg_server: TestPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new user's first multi-node start: the URL names a database not created yet, or a
    role not made yet. The server is there and answers; waiting would not help."""
    no_database = pg_server.url("no_such_database")
    assert serve("--database-url", no_database, "--admin-port", "0") == 2
    err = capsys.readouterr().err
    assert "error: cannot migrate: the database at " in err
    assert 'database "no_such_database" does not exist' in err
    assert "Traceback" not in err

    user = urllib.parse.urlsplit(no_database).username
    no_role = pg_server.url().replace(f"//{user}", "//no_such_role", 1)
    assert serve("--database-url", no_role, "--admin-port", "0") == 2
    err = capsys.readouterr().err
    assert 'role "no_such_role" does not exist' in err
    assert "Traceback" not in err
