"""The operator commands act on the server's database, and say which one: run from another
directory, they refuse to make a new empty embedded database (only ``voltaro db migrate``
makes one) instead of answering "no charge points" from it."""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from voltaro import cli
from voltaro.cli_admin import redacted_url
from voltaro.config import Settings


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory and no database settings: the default ``./voltaro-data``.

    Not in pytest's temporary tree: run as root, the embedded PostgreSQL runs as another
    user, which must traverse the path to its data, and every pytest session that starts
    (other test runs on the machine) makes that tree private again."""
    for name in ("VOLTARO_DATABASE_URL", "VOLTARO_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    top = Path(tempfile.mkdtemp(prefix="voltaro-cli-"))
    workdir = top / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    yield workdir
    monkeypatch.undo()
    shutil.rmtree(top, ignore_errors=True)


def test_commands_refuse_to_create_an_embedded_database(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["chargepoint", "list"], ["idtag", "add", "CARD-1"], ["idtag", "list"]):
        assert cli.main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == ""
        assert f"error: no Voltaro database in {elsewhere / 'voltaro-data'}" in err
        assert "VOLTARO_DATA_DIR" in err and "VOLTARO_DATABASE_URL" in err
        assert "`voltaro db migrate`" in err
    assert list(elsewhere.iterdir()) == []  # nothing made, not even the data directory

    # asked for: db migrate makes it, then the commands use it and say where it is
    assert cli.main(["db", "migrate"]) == 0
    assert "applied: 0001_core" in capsys.readouterr().out
    assert cli.main(["idtag", "add", "CARD-1"]) == 0
    assert cli.main(["idtag", "list"]) == 0
    out, err = capsys.readouterr()
    assert "CARD-1" in out
    where = f"database: embedded PostgreSQL in {elsewhere / 'voltaro-data'}"
    assert err.count(where) == 2


def test_a_data_dir_elsewhere_is_used_by_its_absolute_path(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a relative --data-dir that does not exist is named absolutely in the refusal
    assert cli.main(["chargepoint", "list", "--data-dir", "../server-data"]) == 2
    assert f"no Voltaro database in {elsewhere.parent / 'server-data'} " in capsys.readouterr().err
    assert not (elsewhere.parent / "server-data").exists()


def test_a_database_url_is_named_without_its_password(
    elsewhere: Path,
    voltaro_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert voltaro_settings.database_url is not None
    parts = urllib.parse.urlsplit(voltaro_settings.database_url)
    host = parts.netloc.rpartition("@")[2]
    # the test server trusts local connections: any password gets in
    url = parts._replace(netloc=f"postgres:s3cr3t-pw@{host}").geturl()
    monkeypatch.setenv("VOLTARO_DATABASE_URL", url)
    assert cli.main(["chargepoint", "list"]) == 0
    out, err = capsys.readouterr()
    assert "no charge points" in out
    assert f"database: {parts._replace(netloc=f'postgres:***@{host}').geturl()}" in err
    assert "s3cr3t-pw" not in err
    assert list(elsewhere.iterdir()) == []


def test_redacted_url() -> None:
    assert (
        redacted_url("postgresql://u:pw@db.example:5432/v")
        == "postgresql://u:***@db.example:5432/v"
    )
    assert redacted_url("postgresql://u@db/v") == "postgresql://u@db/v"
    assert (
        redacted_url("postgresql:///v?host=/run/pg&password=pw&sslmode=require")
        == "postgresql:///v?host=/run/pg&password=***&sslmode=require"
    )
