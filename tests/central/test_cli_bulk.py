"""The operator commands for many charge points and id tags at once (accept --all-pending,
CSV import), reject and unblock, and the id tag length rule the API applies, run as
``voltaro`` runs them against a real database."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from voltaro.central.passwords import verify_password
from voltaro.cli import build_parser
from voltaro.config import Settings


def run(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args, settings)
    return code


def rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    """What the database holds, read apart from the commands."""

    async def fetch() -> list[tuple[Any, ...]]:
        connection = await asyncpg.connect(settings.database_url)
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(fetch())


def test_reject_and_accept_all_pending(
    voltaro_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    s = voltaro_settings
    for charge_point_id, status in [("P-2", "Pending"), ("P-1", "Pending"), ("A-1", "Accepted")]:
        assert run(s, "chargepoint", "add", charge_point_id, "--status", status) == 0
    assert run(s, "chargepoint", "reject", "A-1") == 0
    assert "charge point A-1 rejected" in capsys.readouterr().out
    assert run(s, "chargepoint", "reject", "NOPE") == 1
    assert "error: no charge point 'NOPE'" in capsys.readouterr().err

    assert run(s, "chargepoint", "accept", "--all-pending") == 0
    assert capsys.readouterr().out.splitlines() == ["accepted 2 charge points:", "  P-1", "  P-2"]
    assert run(s, "chargepoint", "list") == 0
    listed = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert listed == {"ID": "STATUS", "A-1": "Rejected", "P-1": "Accepted", "P-2": "Accepted"}
    assert run(s, "chargepoint", "accept", "--all-pending") == 0
    assert capsys.readouterr().out.strip() == "no charge point is Pending"

    assert run(s, "chargepoint", "accept") == 1
    assert run(s, "chargepoint", "accept", "A-1", "--all-pending") == 1
    assert "give a charge point id or --all-pending" in capsys.readouterr().err


def test_unblock(voltaro_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    s = voltaro_settings
    assert run(s, "idtag", "add", "CARD-9") == 0
    assert run(s, "idtag", "block", "CARD-9") == 0
    assert run(s, "idtag", "unblock", "card-9") == 0  # any case: CiString20
    assert "id tag CARD-9 unblocked (Accepted)" in capsys.readouterr().out
    assert run(s, "idtag", "list") == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["CARD-9", "Accepted"]
    assert run(s, "idtag", "unblock", "CARD-9") == 0
    assert "is not blocked" in capsys.readouterr().out
    assert run(s, "idtag", "unblock", "NOBODY") == 1
    assert "error: no id tag 'NOBODY'" in capsys.readouterr().err


def test_idtag_add_refuses_what_the_api_refuses(
    voltaro_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OCPP IdToken is CiString20: the API's words (tests/admin: the same text)."""
    s = voltaro_settings
    assert run(s, "idtag", "add", "T" * 21) == 1
    too_long = f'"{"T" * 21}" is 21 characters long, the maximum is 20'
    assert capsys.readouterr().err.strip() == f"error: id tag: {too_long}"
    assert run(s, "idtag", "add", "OK", "--parent", "P" * 21) == 1
    assert "error: --parent: " in capsys.readouterr().err
    assert run(s, "idtag", "add", "T" * 20) == 0
    assert run(s, "idtag", "list") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()][-2:] == [
        "ID",
        "T" * 20,
    ]


def test_chargepoint_import(
    voltaro_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = voltaro_settings
    assert run(s, "chargepoint", "add", "CP-2", "--status", "Pending", "--lenient") == 0
    capsys.readouterr()
    csv_file = tmp_path / "chargers.csv"
    csv_file.write_text(
        "\ufeffchargePointId,registrationStatus,password,lenient\n"  # a spreadsheet's BOM
        "CP-1,,s3cret-pass,TRUE\n"
        "\n"
        "CP-2,,,\n"
        'CP-3,Rejected,"with,comma",false\n'
    )
    assert run(s, "chargepoint", "import", str(csv_file)) == 0
    assert capsys.readouterr().out.strip() == "imported 3 charge points: 2 added, 1 updated"
    found = rows(
        s,
        "SELECT id, registration_status, lenient, password_hash FROM charge_points ORDER BY id",
    )
    assert [r[:3] for r in found] == [
        ("CP-1", "Accepted", True),
        ("CP-2", "Pending", True),  # empty cells leave it as it was
        ("CP-3", "Rejected", False),
    ]
    assert verify_password("s3cret-pass", found[0][3])
    assert found[1][3] is None and verify_password("with,comma", found[2][3])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "line 1: no header row"),
        ("chargePointId,colour\nCP-9,red\n", "line 1: unknown column 'colour'"),
        ("registrationStatus\nAccepted\n", "line 1: no column 'chargePointId'"),
        ("chargePointId,chargePointId\nA,B\n", "line 1: column 'chargePointId' given twice"),
        (
            "chargePointId,registrationStatus\nCP-9,Accepted\nCP-10,Maybe\n",
            'line 3: registrationStatus: "Maybe" is not one of "Accepted", "Pending", "Rejected"',
        ),
        ("chargePointId,lenient\nCP-9,yes\n", "line 2: lenient: 'yes' is not true or false"),
        ("chargePointId,lenient\nCP-9\n", "line 2: 1 cells, the header row has 2"),
        ("chargePointId,lenient\n,true\n", "line 2: chargePointId is empty"),
        (
            "chargePointId\nCP-9\n\nCP-10\nCP-9\n",
            "line 5: chargePointId 'CP-9' is already on line 2",
        ),
        ("chargePointId\nCP-9\na/b\n", "line 3: chargePointId: "),
        ('chargePointId\n"CP\n9"\nCP-\xff\n', "line 4: not UTF-8 text"),
    ],
)
def test_a_bad_charge_point_file_imports_nothing(
    voltaro_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    says: str,
) -> None:
    csv_file = tmp_path / "chargers.csv"
    csv_file.write_bytes(text.encode("latin-1" if "\xff" in text else "utf-8"))
    assert run(voltaro_settings, "chargepoint", "import", str(csv_file)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {csv_file} {says}"), err
    assert err.rstrip().endswith("nothing was imported")
    assert rows(voltaro_settings, "SELECT id FROM charge_points") == []


def test_idtag_import_from_stdin(
    voltaro_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = voltaro_settings
    assert run(s, "idtag", "add", "OLD-1", "--parent", "GONE") == 0
    capsys.readouterr()
    text = (
        "status,idTag,expiryDate,parentIdTag\n"
        ",04A2B3C4,2027-12-31T23:59:59Z,FLEET\n"
        "Blocked,old-1,,\n"  # replaces OLD-1 (any case): no parent any more
        "Expired,CARD-3,2027-01-01T01:00:00+01:00,\n"
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert run(s, "idtag", "import", "-") == 0
    assert capsys.readouterr().out.strip() == "imported 3 id tags: 2 added, 1 replaced"
    found = rows(
        s,
        "SELECT id_tag, status, to_char(expiry_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
        " parent_id_tag FROM id_tags ORDER BY id_tag",
    )
    assert found == [
        ("04A2B3C4", "Accepted", "2027-12-31 23:59", "FLEET"),
        ("CARD-3", "Expired", "2027-01-01 00:00", None),
        ("OLD-1", "Blocked", None, None),
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("idTag,status\nA,Banned\n", 'line 2: status: "Banned" is not one of "Accepted",'),
        ("idTag\nOK\n" + "T" * 21 + "\n", 'line 3: idTag: "' + "T" * 21 + '" is 21 characters'),
        ("idTag,parentIdTag\nOK," + "P" * 21 + "\n", "line 2: parentIdTag: "),
        ("idTag,expiryDate\nOK,next year\n", "line 2: expiryDate: 'next year': not an RFC 3339"),
        ("idTag\ncard-1\nCARD-1\n", "line 3: idTag 'CARD-1' is already on line 2"),
    ],
)
def test_a_bad_id_tag_file_imports_nothing(
    voltaro_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    says: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert run(voltaro_settings, "idtag", "import", "-") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: <stdin> {says}"), err
    assert rows(voltaro_settings, "SELECT id_tag FROM id_tags") == []


def test_an_unreadable_file_is_one_line(
    voltaro_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(voltaro_settings, "idtag", "import", str(tmp_path / "missing.csv")) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot read {tmp_path / 'missing.csv'}: No such file or directory\n"
