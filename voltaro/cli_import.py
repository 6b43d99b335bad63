"""Charge points and id tags from CSV, for ``voltaro chargepoint import`` and ``voltaro
idtag import``.

A file has a header row naming its columns (the admin API's names, in any order; only the
key column is required) and one row per charge point or id tag. The whole file is read and
every row checked before anything is written, so a bad row is reported with its line number
and nothing is imported; the rows are then written in one database transaction. An empty
cell leaves that field as ``add`` would without the option (a new charge point Accepted, an
existing one unchanged; an id tag Accepted, without expiry or parent). Blank lines are
skipped.

Each value is checked by the rule the admin API applies to the same field, with the same
message: what the API refuses, an import refuses too.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from voltaro.admin.api import ID_TAG_SCHEMA, ID_TAG_STATUSES, REGISTRATION_STATUSES
from voltaro.admin.spec import Param
from voltaro.central.timestamps import BadTimestamp, read_timestamp
from voltaro.transport.handshake import charge_point_id_problem


class BadFile(Exception):
    """The file cannot be imported; ``line`` is where (1 is the header row)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Column:
    """One CSV column: its name, what it takes (for ``--help``) and how a cell is read
    (``read`` raises ValueError with the reason)."""

    name: str
    takes: str
    read: Callable[[str], Any]
    key: bool = False
    """The column that names the row (required; a second row with the same value is an
    error)."""
    any_case: bool = False
    """Values match whatever their case (id tags: CiString20)."""


Row = dict[str, Any]
"""A checked row: column name -> value, for the cells that were not empty."""


def read_rows(stream: TextIO, columns: Sequence[Column]) -> list[Row]:
    """Every row of ``stream``, checked; raises :class:`BadFile` at the first problem."""
    by_name = {column.name: column for column in columns}
    key = next(column for column in columns if column.key)
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
        if header is None:
            raise BadFile(1, f"no header row (columns: {', '.join(by_name)})")
        names = [name.strip() for name in header]
        _check_header(names, by_name, key)
        rows: list[Row] = []
        first_line: dict[str, int] = {}
        line = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                row = _read_row(line, names, cells, by_name, key)
                folded = row[key.name].lower() if key.any_case else row[key.name]
                if folded in first_line:
                    raise BadFile(
                        line,
                        f"{key.name} {row[key.name]!r} is already on line {first_line[folded]}",
                    )
                first_line[folded] = line
                rows.append(row)
            line = reader.line_num + 1
    except csv.Error as error:
        raise BadFile(reader.line_num, f"not CSV: {error}") from None
    return rows


def _check_header(names: Sequence[str], by_name: dict[str, Column], key: Column) -> None:
    known = ", ".join(by_name)
    for name in names:
        if name not in by_name:
            raise BadFile(1, f"unknown column {name!r} (columns: {known})")
        if names.count(name) > 1:
            raise BadFile(1, f"column {name!r} given twice")
    if key.name not in names:
        raise BadFile(1, f"no column {key.name!r} (the header row names the columns: {known})")


def _read_row(
    line: int, names: Sequence[str], cells: Sequence[str], by_name: dict[str, Column], key: Column
) -> Row:
    if len(cells) != len(names):
        raise BadFile(line, f"{len(cells)} cells, the header row has {len(names)}")
    row: Row = {}
    for name, cell in zip(names, cells, strict=True):
        text = cell.strip()
        if not text:
            continue
        try:
            row[name] = by_name[name].read(text)
        except ValueError as why:
            raise BadFile(line, f"{name}: {why}") from None
    if key.name not in row:
        raise BadFile(line, f"{key.name} is empty")
    return row


def decode(data: bytes) -> str:
    """The text of a file's bytes: UTF-8, a byte order mark (spreadsheets write one)
    dropped; :class:`BadFile` at the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise BadFile(line, "not UTF-8 text") from None


def columns_help(columns: Iterable[Column]) -> str:
    """The columns, one a line, for a command's ``--help``."""
    return "\n".join(
        f"  {column.name:<20} {column.takes}{' (required)' if column.key else ''}"
        for column in columns
    )


# ---- the two files ------------------------------------------------------------------------


def _checked(param: Param) -> Callable[[str], str]:
    def read(text: str) -> str:
        problem = param.problem(text)
        if problem is not None:
            raise ValueError(problem)
        return text

    return read


def _charge_point_id(text: str) -> str:
    problem = charge_point_id_problem(text)
    if problem is not None:
        raise ValueError(f"{problem}: a charger could never connect as {text!r}")
    return text


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"{text!r} is not true or false")
    return lowered == "true"


def _date_time(text: str) -> datetime:
    try:
        return read_timestamp(text)
    except BadTimestamp as why:
        raise ValueError(f"{text!r}: {why}; e.g. 2027-12-31T23:59:59Z") from None


CHARGE_POINT_COLUMNS = (
    Column("chargePointId", "the charge point's id", _charge_point_id, key=True),
    Column(
        "registrationStatus",
        " | ".join(REGISTRATION_STATUSES) + " (empty: Accepted when new, else unchanged)",
        _checked(Param("registrationStatus", {"enum": REGISTRATION_STATUSES})),
    ),
    Column(
        "password", "Basic-auth password, stored hashed (empty: none when new, else unchanged)", str
    ),
    Column(
        "lenient",
        "true | false: accept the known schema breakers of real chargers",
        _boolean,
    ),
)

ID_TAG_COLUMNS = (
    Column(
        "idTag",
        "the id tag, at most 20 characters",
        _checked(Param("idTag", ID_TAG_SCHEMA)),
        key=True,
        any_case=True,
    ),
    Column(
        "status",
        " | ".join(ID_TAG_STATUSES) + " (empty: Accepted)",
        _checked(Param("status", {"enum": ID_TAG_STATUSES})),
    ),
    Column("expiryDate", "ISO 8601, e.g. 2027-12-31T23:59:59Z (no offset: UTC)", _date_time),
    Column("parentIdTag", "parent id tag (group)", _checked(Param("parentIdTag", ID_TAG_SCHEMA))),
)
