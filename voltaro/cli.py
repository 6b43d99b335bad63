"""The ``voltaro`` command: ``serve``, the administration of :mod:`voltaro.cli_admin`, the
OCPP commands of :mod:`voltaro.cli_command` and ``simulate``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import trio

from voltaro import __version__
from voltaro.config import CannotStart, Settings, SettingsError, add_settings_flags
from voltaro.logformat import configure_logging
from voltaro.worker_link import WORKER_FLAG, parse_link_argument

log = logging.getLogger("voltaro")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voltaro", description="Voltaro, an OCPP 1.6-J Central System."
    )
    parser.add_argument("--version", action="version", version=f"voltaro {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the Central System",
        description="Run the OCPP WebSocket server (charge points connect to "
        "ws://HOST:PORT/ocpp/{chargePointId}). Every flag has a VOLTARO_* variable.",
    )
    add_settings_flags(serve)
    # internal: how the parent of `serve --workers N` starts worker INDEX (voltaro.supervisor)
    serve.add_argument(WORKER_FLAG, dest="internal_worker", help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)
    _add_admin_commands(commands)
    _add_operator_commands(commands)
    _add_simulate_command(commands)
    return parser


def _add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from voltaro.cli_admin import add_commands

    add_commands(commands)


def _add_operator_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    from voltaro.cli_command import add_command_command

    add_command_command(commands)


def _add_simulate_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    from voltaro.sim.cli import add_simulate_command

    add_simulate_command(commands)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from voltaro.app import run_server, run_worker
    from voltaro.store.errors import SchemaMismatch, StoreUnavailable
    from voltaro.supervisor import run_supervisor
    from voltaro.transport.server import leaf_exceptions

    try:
        settings.tls_context()  # a certificate that cannot be used stops us here, clearly
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures: list[BaseException] = []
    try:
        if args.internal_worker is not None:
            index, link_fd = parse_link_argument(args.internal_worker)
            trio.run(run_worker, settings, index, link_fd)
        elif settings.workers > 1:
            trio.run(run_supervisor, settings)
        else:
            trio.run(run_server, settings)
    # a port in use, no database, a schema of another version: said, without a traceback
    except* (CannotStart, StoreUnavailable, SchemaMismatch) as group:
        failures = leaf_exceptions(group)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 2 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name, None) for name in Settings.__dataclass_fields__}
    try:
        settings = Settings.from_env(overrides=overrides)
    except SettingsError as error:
        parser.error(str(error))
    worker = getattr(args, "internal_worker", None)
    configure_logging(
        settings.log_level,
        None if worker is None else f"w{parse_link_argument(worker)[0]}",
        settings.log_format,
    )
    try:
        exit_code: int = args.func(args, settings)
    except KeyboardInterrupt:
        return 130
    return exit_code
