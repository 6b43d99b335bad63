"""``voltaro command ACTION CHARGE_POINT_ID [--input VALUE ...]``: an operator command sent
through a running server's admin API.

The subcommands and their options are generated from the commands the feature profiles
declare (:mod:`voltaro.central.profiles`): one subcommand per action, one option per
:class:`~voltaro.central.profile.Field`. The command goes to the admin API (the connection
to the charger lives in the server), so it needs the API's URL (``--url``, default
``http://VOLTARO_ADMIN_HOST:VOLTARO_ADMIN_PORT``) and token (``--token``, else
``VOLTARO_ADMIN_TOKEN``, else the ``admin-token`` file of the data directory).

Exit codes: 0 the charger answered (its CALLRESULT is printed as JSON), 1 refused (the API's
problem: not connected, CALLERROR, no answer in time, a bad input), 2 no API to talk to.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from voltaro.central.commands import CommandCatalog
from voltaro.central.profile import Command, Field, Profile
from voltaro.central.profiles import PROFILES
from voltaro.config import Settings

SubParsers = Any  # argparse._SubParsersAction, private in typeshed's eyes
HTTP_TIMEOUT_MARGIN = 10.0  # seconds the HTTP request may take beyond the command's timeout


def add_command_command(subparsers: SubParsers, profiles: Sequence[Profile] = PROFILES) -> None:
    """Add ``command`` with one subcommand per operator command the profiles declare."""
    parser = subparsers.add_parser(
        "command",
        help="send an OCPP command to a connected charge point (through the admin API)",
        description="Send an OCPP command to a charge point connected to a running server.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for command in CommandCatalog(profiles):
        action = actions.add_parser(
            command.action, help=command.summary, description=command.summary
        )
        action.add_argument("charge_point_id", metavar="CHARGE_POINT_ID")
        for field in command.fields:
            _add_field(action, field)
        _add_connection_options(action)
        action.set_defaults(func=_send, command=command)


def _add_field(parser: argparse.ArgumentParser, field: Field) -> None:
    help_text = field.label
    if field.kind == "list":
        help_text += " (comma-separated)"
    if field.default:
        help_text += f" (default {field.default})"
    parser.add_argument(
        "--" + _kebab(field.name),
        dest=f"field_{field.name}",
        default=field.default or None,
        required=field.required and not field.default,
        choices=field.options or None,
        metavar=None if field.options else field.name.upper(),
        help=help_text,
    )


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=None, help="the admin API (default http://ADMIN_HOST:ADMIN_PORT)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help="the admin API token (default VOLTARO_ADMIN_TOKEN, else DATA_DIR/admin-token)",
    )
    parser.add_argument("--data-dir", dest="data_dir", default=None, metavar="DIR")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait for the charger's answer"
    )


def _kebab(name: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in name)


def _send(args: argparse.Namespace, settings: Settings) -> int:
    command: Command = args.command
    inputs = {f.name: getattr(args, f"field_{f.name}") or "" for f in command.fields}
    try:
        payload = command.payload(inputs)
    except ValueError as error:
        return _fail(f"--{_kebab(error.args[1])}: {error.args[0]}", 1)
    token = args.token or settings.admin_token or _token_file(settings)
    if token is None:
        return _fail(
            f"no admin API token: give --token, set VOLTARO_ADMIN_TOKEN, or run in the "
            f"directory whose {settings.data_dir}/admin-token the server wrote",
            2,
        )
    base = (args.url or _default_url(settings)).rstrip("/")
    path = f"/api/v1/charge-points/{urllib.parse.quote(args.charge_point_id, safe='')}"
    path += f"/commands/{command.action}"
    if args.timeout is not None:
        path += f"?timeout={args.timeout:g}"
    wait = (args.timeout or settings.call_timeout) + HTTP_TIMEOUT_MARGIN
    return _post(base + path, payload, token, wait)


def _post(url: str, payload: dict[str, Any], token: str, wait: float) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=wait) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read()).get("detail") or error.reason
        except ValueError:
            detail = error.reason
        return _fail(f"{detail} (HTTP {error.code})", 1)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return _fail(f"no admin API at {url.split('/api/')[0]} ({reason}); is it running?", 2)
    # What Voltaro put in the request (ReserveNow's reservationId) is printed with the answer.
    shown = answer["result"] | answer.get("allocated", {})
    print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def _default_url(settings: Settings) -> str:
    host = settings.admin_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.admin_port}"


def _token_file(settings: Settings) -> str | None:
    try:
        return (settings.data_dir / "admin-token").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
