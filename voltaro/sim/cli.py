"""``voltaro simulate``: a fleet of simulated charge points against a Central System."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import urllib.parse
from typing import TYPE_CHECKING, Any

from voltaro.sim.profiles import PROFILES, Profile, profile

if TYPE_CHECKING:
    from voltaro.config import Settings


def add_simulate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "simulate",
        help="run simulated charge points against a Central System",
        description="Run N simulated OCPP 1.6-J charge points against a Central System for "
        "--duration seconds: a live progress line on stderr, a summary at the end. At the end "
        "each charger closes its connection normally (1000). Exit code 0: no errors; 1: a "
        "CALLERROR or protocol error was seen, or no charger could connect; 2: it could not "
        "start (a bad option, the Central System out of reach); 130: interrupted by Ctrl-C "
        "(the summary of what ran is printed; a second Ctrl-C stops at once).",
    )
    parser.add_argument(
        "--chargers",
        type=int,
        default=10,
        metavar="N",
        help="simulated charge points, ids PREFIX000001 and up (default: %(default)s)",
    )
    parser.add_argument(
        "--connectors",
        type=int,
        default=2,
        metavar="K",
        help="connectors per charge point (default: %(default)s)",
    )
    parser.add_argument(
        "--url",
        default="ws://127.0.0.1:9000/ocpp",
        help="Central System base URL; the charge point id is appended (default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="realistic",
        help="how the chargers behave: realistic (the server's heartbeat, meter values every "
        "minute, ~4 sessions per connector a day), stress (heartbeat every minute, meter "
        "values every 10 s, ~12 sessions a day), storm (as realistic, all connecting at "
        "once), throughput (MeterValues back to back, for benchmarks) (default: %(default)s)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to run before the summary (default: %(default)s)",
    )
    parser.add_argument("--id-prefix", default="SIM-", help="ids are PREFIX000001 and up")
    parser.add_argument("--password", default=None, help="Basic auth password of every charger")
    parser.add_argument(
        "--ca-file",
        default=None,
        metavar="PEM",
        help="for a wss:// URL: the certificate authority to trust (default: the system's)",
    )
    parser.add_argument(
        "--id-tag",
        action="append",
        default=[],
        dest="id_tags",
        help="idTag to charge with (repeat; default: each connector its own, the charger's id "
        "and the connector number: SIM-000001-1)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="run simulated time X times faster (sessions, meter values, heartbeats)",
    )
    parser.add_argument(
        "--connect-window",
        type=float,
        default=None,
        metavar="S",
        help="chargers connect at random within S seconds (default: per profile, at most "
        "half of --duration)",
    )
    parser.add_argument(
        "--reconnect-at",
        type=float,
        default=None,
        metavar="S",
        help="a reconnect storm: S seconds in, every charger drops its connection and "
        "connects and boots again at once",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: N/10000)")
    parser.add_argument(
        "--source-addresses",
        choices=["auto", "on", "off"],
        default="auto",
        help="one 127.x.y.z source address per charger (auto: when the URL is loopback)",
    )
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds a charger waits for the answer to its call, and for its connection "
        "(default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.set_defaults(func=simulate)


def simulate(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from voltaro.sim.fleet import FleetOptions, run_fleet, summary_table

    if args.chargers < 1 or args.connectors < 1:
        print("voltaro simulate: --chargers and --connectors must be at least 1", file=sys.stderr)
        return 2
    if args.reconnect_at is not None and not 0 <= args.reconnect_at < args.duration:
        print("voltaro simulate: --reconnect-at must be within --duration", file=sys.stderr)
        return 2
    problem = url_problem(args.url) or unreachable(args.url, min(args.call_timeout, 10.0))
    if problem is not None:
        print(f"voltaro simulate: {problem}", file=sys.stderr)
        return 2
    options = FleetOptions(
        url=args.url,
        chargers=args.chargers,
        connectors=args.connectors,
        profile=_profile(args),
        duration=args.duration,
        id_prefix=args.id_prefix,
        password=args.password,
        ca_file=args.ca_file,
        id_tags=tuple(args.id_tags),
        workers=args.workers,
        source_addresses={"auto": None, "on": True, "off": False}[args.source_addresses],
        call_timeout=args.call_timeout,
        reconnect_at=args.reconnect_at,
    )
    summary: dict[str, Any] | None = None
    try:
        summary = run_fleet(
            options, progress=None if args.quiet else sys.stderr, interruptible=True
        )
    except* KeyboardInterrupt:  # the second Ctrl-C, or one before the run began
        print("voltaro simulate: interrupted", file=sys.stderr)
    if summary is None:
        return 130
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(summary_table(summary))
    if summary.get("interrupted"):
        return 130
    if summary["peak_connected"] == 0:
        print(
            f"voltaro simulate: no charger could connect to {args.url}"
            f" ({summary['connect_failures']} failed connects)",
            file=sys.stderr,
        )
        return 1
    no_sessions = why_no_session(summary, options.profile)
    if no_sessions is not None:
        print(f"voltaro simulate: no session started: {no_sessions}", file=sys.stderr)
    return 1 if summary["errors"] or no_sessions is not None else 0


def why_no_session(summary: dict[str, Any], fleet_profile: Profile) -> str | None:
    """Why a run whose profile charges started no session, when the Central System is the
    reason (so the run failed: exit code 1); None when sessions started, the profile has
    none, or none was due yet (a short run of a quiet profile)."""
    if summary["sessions_started"] or fleet_profile.flood or fleet_profile.sessions_per_day <= 0:
        return None
    if summary["accepted"] == 0:
        return (
            "no charger was accepted (BootNotification answered Pending or Rejected, or"
            " no connection): accept them (`voltaro chargepoint accept ID`, or `voltaro"
            " chargepoint add ID` before they connect) or start the server with"
            " --unknown-chargers accept"
        )
    if summary["sessions_refused"]:
        return (
            f"{summary['sessions_refused']} refused: the Central System did not accept the id"
            " tags (unknown, blocked, expired or in use; by default each connector charges"
            " with its own, SIM-000001-1 for connector 1 of SIM-000001): `voltaro idtag add`"
            " them, or give known ones with --id-tag"
        )
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Central System's base URL, or None."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        return (
            f"--url {url!r}: use ws:// or wss:// (the Central System's WebSocket URL, e.g. "
            f"ws://127.0.0.1:9000/ocpp){', not ' + parts.scheme + '://' if parts.scheme else ''}"
        )
    try:
        parts.port  # noqa: B018 (a bad port raises)
    except ValueError:
        return f"--url {url!r}: the port is not a number from 0 to 65535"
    if not parts.hostname:
        return f"--url {url!r}: no host"
    return None


def unreachable(url: str, timeout: float) -> str | None:
    """Why the Central System at ``url`` cannot be reached (one TCP connection tried), or
    None: a run against nothing would only count failed connects."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        why = error.strerror or str(error) or type(error).__name__
        return f"cannot reach the Central System at {host}:{port} ({why}): is it running?"
    return None


def _profile(args: argparse.Namespace) -> Profile:
    """The named profile; its connect window is kept within the first half of the run, so a
    short run sees every charger connect."""
    window = args.connect_window
    if window is None:
        window = min(PROFILES[args.profile].connect_window, args.duration / 2)
    return profile(args.profile, time_scale=args.time_scale, connect_window=window)
