"""Operator commands: ``voltaro db migrate``, ``voltaro chargepoint
add|accept|reject|import|list|remove``, ``voltaro idtag add|block|unblock|import|list|remove``
and ``voltaro account add|list|remove`` (the first operator accounts, without the API).

They talk to the same database as ``voltaro serve`` (``VOLTARO_DATABASE_URL``, or the
embedded server in ``VOLTARO_DATA_DIR``, which they share with a running server). A running
server hears of id tag changes and of removed charge points at once (LISTEN/NOTIFY: it
closes a removed charger's connection), and of other charge point changes at that charger's
next connection.

Each command says on stderr which database it acts on (the URL without its password, or the
embedded server's absolute data directory). Only ``voltaro db migrate`` creates an embedded
database: the data directory is relative to where the command runs, and a command run from
the wrong directory would otherwise act on a new, empty database nobody serves (answering
"no charge points", adding id tags no charger is ever checked against).

Each command migrates the database first, as a server does, and like one refuses to under
instances of an older Voltaro, or to use a database a newer one migrated
(:mod:`voltaro.store.migrate`; ``voltaro db migrate --force`` migrates anyway).

Each command is ``func(args, settings) -> exit code``: 0 done, 1 refused (unknown id, bad
value), 2 database unavailable (or no database where the settings point, or a schema of
another version). Each change is
written to the audit log as the API's would be, by ``cli:<login name>`` with the admin role
(whoever can reach the database can do anything), through ``cli``.
"""

from __future__ import annotations

import argparse
import getpass
import io
import sys
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio
import trio_asyncio

from voltaro.admin.api import ID_TAG
from voltaro.central.accounts import MIN_PASSWORD, ROLES, Accounts, account_name_problem
from voltaro.central.passwords import hash_password
from voltaro.central.timestamps import BadTimestamp, read_timestamp
from voltaro.cli_import import (
    CHARGE_POINT_COLUMNS,
    ID_TAG_COLUMNS,
    BadFile,
    Column,
    Row,
    columns_help,
    decode,
    read_rows,
)
from voltaro.config import Settings
from voltaro.store import Store, StoreUnavailable, migrate, open_store
from voltaro.store.audit import AuditEntry
from voltaro.store.charge_points import ChargePointChange
from voltaro.store.database import redacted_url
from voltaro.store.embedded import embedded_exists
from voltaro.store.errors import SchemaMismatch
from voltaro.store.id_tags import IdTagChange
from voltaro.store.store import database_url
from voltaro.transport.handshake import charge_point_id_problem

REGISTRATION_STATUSES = ("Accepted", "Pending", "Rejected")

Command = Callable[[argparse.Namespace, Settings], int]
SubParsers = Any  # argparse._SubParsersAction, private in typeshed's eyes


class CommandError(Exception):
    """A refusal to print as ``error: ...`` with exit code 1."""


def add_commands(subparsers: SubParsers) -> None:
    """Add ``db``, ``chargepoint`` and ``idtag`` to the ``voltaro`` command's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        dest="database_url",
        default=None,
        metavar="URL",
        help="PostgreSQL URL (env VOLTARO_DATABASE_URL; default: the embedded server)",
    )
    common.add_argument(
        "--data-dir",
        dest="data_dir",
        default=None,
        metavar="DIR",
        help="data directory of the embedded server (env VOLTARO_DATA_DIR)",
    )

    db = subparsers.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    migrate_command = db_commands.add_parser(
        "migrate",
        parents=[common],
        help="apply pending schema migrations",
        description="Apply this Voltaro's pending schema migrations. Refused while instances"
        " of an older Voltaro run on the database (they would fail on the new schema: stop"
        " them first), unless --force.",
    )
    migrate_command.add_argument(
        "--force",
        action="store_true",
        help="apply them even while other instances run on the database",
    )
    migrate_command.set_defaults(func=db_migrate)

    cp = subparsers.add_parser("chargepoint", help="manage charge points")
    cp_commands = cp.add_subparsers(dest="chargepoint_command", metavar="COMMAND", required=True)
    add = cp_commands.add_parser(
        "add",
        parents=[common],
        help="add a charge point, or change an existing one",
        description="Add a charge point (registration status Accepted unless --status), or "
        "change the given settings of an existing one.",
    )
    add.add_argument("id", help="charge point id (the last path segment of its URL)")
    add.add_argument(
        "--password",
        help="Basic-auth password (AuthorizationKey); stored hashed. Use '-' to be prompted.",
    )
    add.add_argument(
        "--lenient",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="accept the known schema breakers of real chargers (counted and logged)",
    )
    add.add_argument("--status", choices=REGISTRATION_STATUSES, help="registration status")
    add.set_defaults(func=chargepoint_add)
    accept = cp_commands.add_parser(
        "accept",
        parents=[common],
        help="set status Accepted",
        description="Set a charge point's registration status Accepted, or that of every "
        "Pending one (--all-pending).",
    )
    accept.add_argument("id", nargs="?", help="charge point id")
    accept.add_argument(
        "--all-pending", action="store_true", help="accept every charge point that is Pending"
    )
    accept.set_defaults(func=chargepoint_accept)
    reject = cp_commands.add_parser(
        "reject",
        parents=[common],
        help="set status Rejected",
        description="Set a charge point's registration status Rejected: its BootNotification "
        "is answered Rejected and it gets no id tag information until accepted again.",
    )
    reject.add_argument("id", help="charge point id")
    reject.set_defaults(func=chargepoint_reject)
    cp_import = cp_commands.add_parser(
        "import",
        parents=[common],
        help="add or change charge points from a CSV file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Add charge points from a CSV file, or change the given fields of existing ones. "
            "The first row names the columns (any order; only chargePointId is required); an "
            "empty cell leaves that field as 'chargepoint add' would. Every row is checked "
            "first: a bad one is reported with its line number and nothing is imported."
        ),
        epilog="columns:\n" + columns_help(CHARGE_POINT_COLUMNS) + "\n\nexample:\n"
        "  chargePointId,registrationStatus,password,lenient\n"
        "  CP-0001,Accepted,s3cret-pass,false\n"
        "  CP-0002,Pending,,",
    )
    cp_import.add_argument("file", metavar="FILE.csv", help="the CSV file; '-' reads stdin")
    cp_import.set_defaults(func=chargepoint_import)
    cp_commands.add_parser("list", parents=[common], help="list charge points").set_defaults(
        func=chargepoint_list
    )
    remove = cp_commands.add_parser(
        "remove", parents=[common], help="remove a charge point (its history is kept)"
    )
    remove.add_argument("id")
    remove.set_defaults(func=chargepoint_remove)

    tag = subparsers.add_parser("idtag", help="manage id tags (RFID cards, app tokens)")
    tag_commands = tag.add_subparsers(dest="idtag_command", metavar="COMMAND", required=True)
    tag_add = tag_commands.add_parser(
        "add",
        parents=[common],
        help="add an id tag as Accepted (or replace an existing one)",
    )
    tag_add.add_argument("id_tag", metavar="ID_TAG")
    tag_add.add_argument(
        "--expiry", help="expiry date, ISO 8601 (e.g. 2026-12-31T23:59:59Z; no offset = UTC)"
    )
    tag_add.add_argument("--parent", help="parent id tag (group)")
    tag_add.set_defaults(func=idtag_add)
    block = tag_commands.add_parser("block", parents=[common], help="block an id tag")
    block.add_argument("id_tag", metavar="ID_TAG")
    block.set_defaults(func=idtag_block)
    unblock = tag_commands.add_parser(
        "unblock", parents=[common], help="set a blocked id tag Accepted again"
    )
    unblock.add_argument("id_tag", metavar="ID_TAG")
    unblock.set_defaults(func=idtag_unblock)
    tag_import = tag_commands.add_parser(
        "import",
        parents=[common],
        help="add or replace id tags from a CSV file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Add id tags from a CSV file, or replace existing ones (matched "
            "case-insensitively), as 'idtag add' does. The first row names the columns (any "
            "order; only idTag is required). Every row is checked first: a bad one is "
            "reported with its line number and nothing is imported."
        ),
        epilog="columns:\n" + columns_help(ID_TAG_COLUMNS) + "\n\nexample:\n"
        "  idTag,status,expiryDate,parentIdTag\n"
        "  04A2B3C4,Accepted,2027-12-31T23:59:59Z,FLEET-1\n"
        "  04A2B3C5,Blocked,,",
    )
    tag_import.add_argument("file", metavar="FILE.csv", help="the CSV file; '-' reads stdin")
    tag_import.set_defaults(func=idtag_import)
    tag_commands.add_parser("list", parents=[common], help="list id tags").set_defaults(
        func=idtag_list
    )
    tag_remove = tag_commands.add_parser("remove", parents=[common], help="remove an id tag")
    tag_remove.add_argument("id_tag", metavar="ID_TAG")
    tag_remove.set_defaults(func=idtag_remove)

    account = subparsers.add_parser("account", help="manage operator accounts")
    account_commands = account.add_subparsers(
        dest="account_command", metavar="COMMAND", required=True
    )
    account_add = account_commands.add_parser(
        "add",
        parents=[common],
        help="add an operator account, or change an existing one's role or password",
        description="Roles: viewer (reads), operator (also commands and id tags), admin "
        "(also charge points and accounts).",
    )
    account_add.add_argument("name", metavar="NAME")
    account_add.add_argument("--role", choices=ROLES, help="role (required for a new account)")
    account_add.add_argument(
        "--password",
        help="dashboard password; '-' reads it (prompted on a terminal, else one line of stdin)",
    )
    account_add.set_defaults(func=account_add_command)
    account_commands.add_parser(
        "list", parents=[common], help="list operator accounts"
    ).set_defaults(func=account_list)
    account_remove = account_commands.add_parser(
        "remove", parents=[common], help="remove an account, its sessions and its API tokens"
    )
    account_remove.add_argument("name", metavar="NAME")
    account_remove.set_defaults(func=account_remove_command)


# ---- running an operation against the store ---------------------------------------------


class NoDatabase(Exception):
    """The settings point at an embedded database that does not exist (exit code 2)."""


def which_database(settings: Settings, *, create: bool = False) -> str:
    """Say on stderr which database the command uses, and return that description.

    Raises :class:`NoDatabase` when it is an embedded one that does not exist yet, unless
    ``create``.
    """
    if settings.database_url is not None:
        where = f"database: {redacted_url(settings.database_url)}"
    else:
        data_dir = settings.data_dir.resolve()
        if not create and not embedded_exists(data_dir):
            raise NoDatabase(
                f"no Voltaro database in {data_dir} (the data directory, VOLTARO_DATA_DIR,"
                " default ./voltaro-data where the command runs). Run the command in the"
                " directory where `voltaro serve` runs, or point it at the server's database:"
                " VOLTARO_DATA_DIR=/path/to/voltaro-data (or --data-dir), or"
                " VOLTARO_DATABASE_URL (or --database-url). To start a new database here:"
                " `voltaro db migrate`"
            )
        where = f"database: embedded PostgreSQL in {data_dir}"
    print(where, file=sys.stderr)
    return where


def _run(settings: Settings, operation: Callable[[Store], Awaitable[None]]) -> int:
    try:
        which_database(settings)
    except NoDatabase as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        async with trio_asyncio.open_loop():
            try:
                async with open_store(
                    settings.database_url, settings.data_dir, background=False
                ) as store:
                    await operation(store)
            except CommandError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            except (StoreUnavailable, SchemaMismatch) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        return 0

    return trio.run(main)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _parse_expiry(text: str) -> datetime:
    """An RFC 3339 date-time (no offset: UTC) in the range Voltaro accepts everywhere."""
    try:
        return read_timestamp(text)
    except BadTimestamp as why:
        raise CommandError(f"--expiry {text!r}: {why}; e.g. 2027-12-31T23:59:59Z") from None


def _check_id_tag(what: str, id_tag: str) -> None:
    """Refuse what the admin API refuses (an OCPP IdToken is CiString20), in its words."""
    problem = ID_TAG.problem(id_tag)
    if problem is not None:
        raise CommandError(f"{what}: {problem}")


def _read_csv(source: str, columns: Sequence[Column]) -> list[Row]:
    """The checked rows of the CSV file ``source`` ('-': stdin)."""
    name = "<stdin>" if source == "-" else source
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {name}: {error.strerror or error}") from None
    try:
        return read_rows(io.StringIO(decode(data), newline=""), columns)
    except BadFile as error:
        raise CommandError(f"{name} {error}; nothing was imported") from None


def _imported(total: int, noun: str, added: int, other: str) -> str:
    plural = "" if total == 1 else "s"
    return f"imported {total} {noun}{plural}: {added} added, {total - added} {other}"


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's numeric user)
        return "cli"


async def _audit(
    store: Store,
    action: str,
    effect: str,
    *,
    charge_point_id: str | None = None,
    target: str | None = None,
    request: dict[str, Any] | None = None,
) -> None:
    status = {"created": 201, "removed": 204}.get(effect, 200)
    entry = AuditEntry(
        actor=_actor(),
        role="admin",
        via="cli",
        action=action,
        charge_point_id=charge_point_id,
        target=target,
        request={k: v for k, v in (request or {}).items() if v is not None} or None,
        status=status,
        outcome={"effect": effect},
    )
    await store.audit.record(entry)


# ---- commands ---------------------------------------------------------------------------


def db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    which_database(settings, create=True)

    async def main() -> int:
        async with trio_asyncio.open_loop():
            try:
                async with database_url(settings.database_url, settings.data_dir) as url:
                    applied = await migrate(url, force=args.force)
            except (StoreUnavailable, SchemaMismatch) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
        return 0

    return trio.run(main)


def chargepoint_add(args: argparse.Namespace, settings: Settings) -> int:
    problem = charge_point_id_problem(args.id)
    if problem is not None:
        print(f"error: {problem}: a charger could never connect as {args.id!r}", file=sys.stderr)
        return 1
    password: str | None = args.password
    if password == "-":
        password = getpass.getpass(f"password for {args.id}: ")
    if password is not None and not password:
        print("error: the password must not be empty", file=sys.stderr)
        return 1
    hashed = None if password is None else hash_password(password)

    async def operation(store: Store) -> None:
        added = await store.charge_points.upsert(
            args.id, status=args.status, password_hash=hashed, lenient=args.lenient
        )
        print(f"{'added' if added else 'updated'} charge point {args.id}")
        record = None if added or args.status else await store.charge_points.get(args.id)
        if record is not None and record.registration_status != "Accepted":
            # it connected before it was added (Pending): add changes only what it is given
            print(
                f"its status stays {record.registration_status}:"
                f" 'voltaro chargepoint accept {args.id}' accepts it"
            )
        request = {"registrationStatus": args.status, "lenient": args.lenient}
        if hashed is not None:
            request["password"] = "(redacted)"
        await _audit(
            store,
            "putChargePoint",
            "created" if added else "updated",
            charge_point_id=args.id,
            request=request,
        )

    return _run(settings, operation)


def chargepoint_accept(args: argparse.Namespace, settings: Settings) -> int:
    if (args.id is None) == (not args.all_pending):
        print("error: give a charge point id or --all-pending (not both)", file=sys.stderr)
        return 1
    if args.all_pending:
        return _run(settings, _accept_all_pending)
    return _set_registration(settings, args.id, "Accepted")


async def _accept_all_pending(store: Store) -> None:
    accepted = await store.charge_points.accept_pending()
    if not accepted:
        print("no charge point is Pending")
        return
    for charge_point_id in accepted:
        request = {"registrationStatus": "Accepted"}
        await _audit(
            store, "putChargePoint", "updated", charge_point_id=charge_point_id, request=request
        )
    print(f"accepted {len(accepted)} charge point{'s' if len(accepted) > 1 else ''}:")
    for charge_point_id in accepted:
        print(f"  {charge_point_id}")


def chargepoint_reject(args: argparse.Namespace, settings: Settings) -> int:
    return _set_registration(settings, args.id, "Rejected")


def _set_registration(settings: Settings, charge_point_id: str, status: str) -> int:
    async def operation(store: Store) -> None:
        if not await store.charge_points.set_status(charge_point_id, status):
            raise CommandError(f"no charge point {charge_point_id!r}")
        print(f"charge point {charge_point_id} {status.lower()}")
        await _audit(
            store,
            "putChargePoint",
            "updated",
            charge_point_id=charge_point_id,
            request={"registrationStatus": status},
        )

    return _run(settings, operation)


def chargepoint_import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        rows = _read_csv(args.file, CHARGE_POINT_COLUMNS)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    changes = [
        ChargePointChange(
            row["chargePointId"],
            status=row.get("registrationStatus"),
            password_hash=None if "password" not in row else hash_password(row["password"]),
            lenient=row.get("lenient"),
        )
        for row in rows
    ]

    async def operation(store: Store) -> None:
        added = await store.charge_points.upsert_many(changes)
        print(_imported(len(changes), "charge point", added, "updated"))
        request = {"rows": len(changes), "added": added}
        await _audit(store, "importChargePoints", "updated", request=request)

    return _run(settings, operation)


def chargepoint_list(args: argparse.Namespace, settings: Settings) -> int:
    async def operation(store: Store) -> None:
        records = await store.charge_points.list_all()
        if not records:
            print("no charge points")
            return
        rows = [
            [
                r.id,
                r.registration_status,
                "online" if r.online else "offline",
                _when(r.last_seen),
                "yes" if r.password_hash else "no",
                "yes" if r.lenient else "no",
                r.vendor or "-",
                r.model or "-",
                r.firmware_version or "-",
            ]
            for r in records
        ]
        headers = ["ID", "STATUS", "PRESENCE", "LAST SEEN", "PASSWORD", "LENIENT", "VENDOR"]
        print(_table([*headers, "MODEL", "FIRMWARE"], rows))

    return _run(settings, operation)


def chargepoint_remove(args: argparse.Namespace, settings: Settings) -> int:
    async def operation(store: Store) -> None:
        if not await store.charge_points.remove(args.id):
            raise CommandError(f"no charge point {args.id!r}")
        print(f"charge point {args.id} removed")
        await _audit(store, "deleteChargePoint", "removed", charge_point_id=args.id)

    return _run(settings, operation)


def idtag_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        _check_id_tag("id tag", args.id_tag)
        if args.parent is not None:
            _check_id_tag("--parent", args.parent)
        expiry = None if args.expiry is None else _parse_expiry(args.expiry)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    async def operation(store: Store) -> None:
        added = await store.id_tags.upsert(
            args.id_tag, expiry_date=expiry, parent_id_tag=args.parent
        )
        print(f"{'added' if added else 'replaced'} id tag {args.id_tag}")
        request = {"expiryDate": args.expiry, "parentIdTag": args.parent}
        effect = "created" if added else "updated"
        await _audit(store, "putIdTag", effect, target=args.id_tag, request=request)

    return _run(settings, operation)


def idtag_block(args: argparse.Namespace, settings: Settings) -> int:
    async def operation(store: Store) -> None:
        if not await store.id_tags.set_status(args.id_tag, "Blocked"):
            raise CommandError(f"no id tag {args.id_tag!r}")
        print(f"id tag {args.id_tag} blocked")
        request = {"status": "Blocked"}
        await _audit(store, "putIdTag", "updated", target=args.id_tag, request=request)

    return _run(settings, operation)


def idtag_unblock(args: argparse.Namespace, settings: Settings) -> int:
    async def operation(store: Store) -> None:
        record = await store.id_tags.get(args.id_tag)
        if record is None:
            raise CommandError(f"no id tag {args.id_tag!r}")
        if record.status == "Accepted":
            print(f"id tag {record.id_tag} is not blocked (Accepted)")
            return
        if record.status != "Blocked":
            raise CommandError(
                f"id tag {record.id_tag} is {record.status}, not Blocked: to accept it, "
                f"replace it with 'voltaro idtag add {record.id_tag}'"
            )
        await store.id_tags.set_status(record.id_tag, "Accepted")
        print(f"id tag {record.id_tag} unblocked (Accepted)")
        request = {"status": "Accepted"}
        await _audit(store, "putIdTag", "updated", target=record.id_tag, request=request)

    return _run(settings, operation)


def idtag_import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        rows = _read_csv(args.file, ID_TAG_COLUMNS)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    changes = [
        IdTagChange(
            row["idTag"],
            status=row.get("status", "Accepted"),
            expiry_date=row.get("expiryDate"),
            parent_id_tag=row.get("parentIdTag"),
        )
        for row in rows
    ]

    async def operation(store: Store) -> None:
        added = await store.id_tags.upsert_many(changes)
        print(_imported(len(changes), "id tag", added, "replaced"))
        request = {"rows": len(changes), "added": added}
        await _audit(store, "importIdTags", "updated", request=request)

    return _run(settings, operation)


def idtag_list(args: argparse.Namespace, settings: Settings) -> int:
    async def operation(store: Store) -> None:
        records = await store.id_tags.list_all()
        if not records:
            print("no id tags")
            return
        rows = [[r.id_tag, r.status, _when(r.expiry_date), r.parent_id_tag or "-"] for r in records]
        print(_table(["ID TAG", "STATUS", "EXPIRY", "PARENT"], rows))

    return _run(settings, operation)


def idtag_remove(args: argparse.Namespace, settings: Settings) -> int:
    async def operation(store: Store) -> None:
        if not await store.id_tags.remove(args.id_tag):
            raise CommandError(f"no id tag {args.id_tag!r}")
        print(f"id tag {args.id_tag} removed")
        await _audit(store, "deleteIdTag", "removed", target=args.id_tag)

    return _run(settings, operation)


def _read_password(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def account_add_command(args: argparse.Namespace, settings: Settings) -> int:
    problem = account_name_problem(args.name)
    password: str | None = args.password
    if password == "-":
        password = _read_password(f"password for {args.name}: ")
    if problem is None and password is not None and len(password) < MIN_PASSWORD:
        problem = f"the password must have at least {MIN_PASSWORD} characters"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1

    async def operation(store: Store) -> None:
        accounts = Accounts(store.accounts)
        if args.role is None and await accounts.get(args.name) is None:
            raise CommandError(f"account {args.name!r} is new: give it a --role")
        added = await accounts.put(args.name, role=args.role, password=password)
        record = await accounts.get(args.name)
        assert record is not None  # just written
        print(f"{'added' if added else 'updated'} account {args.name} ({record.role})")
        request = {"role": args.role, "password": None if password is None else "(redacted)"}
        effect = "created" if added else "updated"
        await _audit(store, "putAccount", effect, target=args.name, request=request)

    return _run(settings, operation)


def account_list(args: argparse.Namespace, settings: Settings) -> int:
    async def operation(store: Store) -> None:
        records = await store.accounts.list_all()
        if not records:
            print("no accounts")
            return
        rows = [
            [r.name, r.role, "yes" if r.password_hash else "no", _when(r.created_at)]
            for r in records
        ]
        print(_table(["NAME", "ROLE", "PASSWORD", "CREATED"], rows))

    return _run(settings, operation)


def account_remove_command(args: argparse.Namespace, settings: Settings) -> int:
    async def operation(store: Store) -> None:
        if not await store.accounts.remove(args.name):
            raise CommandError(f"no account {args.name!r}")
        print(f"account {args.name} removed")
        await _audit(store, "deleteAccount", "removed", target=args.name)

    return _run(settings, operation)
