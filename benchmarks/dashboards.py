"""Dashboards benchmark: what open dashboards cost the server with a fleet of thousands.

    .venv/bin/python -m benchmarks.dashboards                  # 20,000 charge points, 200 live
    .venv/bin/python -m benchmarks.dashboards --phase-seconds 60 --rounds 3
    .venv/bin/python -m benchmarks.dashboards --mode pages   # the dashboard.js before, for a
                                                             # side-by-side run on an older tree

It starts ``voltaro serve`` (embedded PostgreSQL) with ``--charge-points`` charge points
inserted by SQL (two connectors each, as booted chargers have), runs ``--chargers`` simulated
chargers (``stress`` profile, time sped up ``--time-scale`` times: sessions, status changes,
MeterValues) in a process of their own, and then alternates phases of ``--phase-seconds``:
``without`` dashboards and ``with`` ``--dashboards`` of them, ``--rounds`` times. The
server's CPU (its process, from /proc) is read at each phase's start and end: the
dashboards' cost is a "with" phase's CPU less the "without" phases' around it, reported as
a range over the rounds (the machine is shared and noisy: ratios and ranges, not one number).

A dashboard here is an HTTP client doing what ``dashboard.js`` does on a list page: sign in,
load the page, open the event stream with the event kinds its list uses, and on an event for
a row it shows, fetch that row alone (``/charge-points/<id>/row``, ``/transactions/rows?ids=``)
after the same delay (300 ms), and the transactions list's active rows in one request every
10 s. The ten are a realistic mix: six on the
charge points list's first page (50 of 20,200, none of them live), two searching the live
chargers (``?q=SIM-``: 50 live rows shown) and two on the transactions, newest first.
A counter (one more event stream, all kinds) runs through every phase, so it is in both and
cancels out; it counts the events the chargers caused.

Results: ``benchmarks/results/dashboards-<time>.json`` and ``.md``. Target (issue 18): the
dashboards under 5% of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import trio

from benchmarks.cluster import free_port, healthy, write_results
from benchmarks.run import READY, ROOT, Server, _seed_voltaro
from voltaro.process_limits import raise_open_file_limit
from voltaro.sim.charger import default_id_tag
from voltaro.sim.fleet import FleetOptions, charger_id, run_fleet
from voltaro.sim.profiles import PROFILES
from voltaro.store.embedded import embedded_url

ROW_DELAY = 0.3  # seconds, as dashboard.js
POLL_SECONDS = 10.0  # the active transactions' energies, as dashboard.js
CP_KINDS = ("connected", "disconnected", "offline", "boot", "status")
TX_KINDS = ("transactionStopped", "transactionStarted")


@dataclass(frozen=True)
class View:
    """A list page a dashboard keeps open: its URL, the attribute naming its rows, the
    event field that names a row, and the kinds of event that change a row."""

    path: str
    attribute: str
    key: str
    kinds: tuple[str, ...]
    row_url: str
    polls: bool = False
    """Re-fetch the active rows shown every POLL_SECONDS, in one request."""

    def row(self, key: str) -> str:
        return self.row_url.format(key)


CHARGE_POINTS = View(
    "/charge-points", "data-cp", "chargePointId", CP_KINDS, "/charge-points/{}/row"
)
LIVE_CHARGE_POINTS = View(
    "/charge-points?q=SIM-", "data-cp", "chargePointId", CP_KINDS, "/charge-points/{}/row"
)
TRANSACTIONS = View(
    "/transactions",
    "data-transaction",
    "transactionId",
    TX_KINDS,
    "/transactions/rows?ids={}",
    polls=True,
)
MIX = (CHARGE_POINTS,) * 6 + (LIVE_CHARGE_POINTS,) * 2 + (TRANSACTIONS,) * 2


@dataclass
class Counts:
    pages: int = 0
    rows: int = 0
    events: int = 0
    bytes: int = 0
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)


# -- the server -------------------------------------------------------------------------------


async def _insert_fleet(url: str, count: int) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            """
            INSERT INTO charge_points (id, registration_status, vendor, model,
                                       firmware_version, last_seen)
            SELECT 'FLEET-' || lpad(n::text, 6, '0'), 'Accepted', 'Voltaro', 'Fleet',
                   '1.0.' || (n % 7), now() - make_interval(secs => n)
            FROM generate_series(1, $1) AS n
            """,
            count,
        )
        await connection.execute(
            """
            INSERT INTO connectors (charge_point_id, connector_id, status, error_code, updated_at)
            SELECT id, c, 'Available', 'NoError', now()
            FROM charge_points, generate_series(0, 2) AS c WHERE id LIKE 'FLEET-%'
            """
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def start(workdir: Path, charge_points: int, tags: list[str]) -> tuple[Server, str, str]:
    """``voltaro serve`` on a seeded embedded database; (server, admin URL, admin token)."""
    data_dir = Path(tempfile.mkdtemp(prefix="voltaro-data-", dir=workdir))
    embedded, postmaster = _seed_voltaro(data_dir, tags)
    asyncio.run(_insert_fleet(embedded_url(embedded), charge_points))
    admin_port = free_port()
    env = dict(os.environ)
    env.pop("VOLTARO_DATABASE_URL", None)
    env.update(
        VOLTARO_DATA_DIR=str(data_dir),
        VOLTARO_OCPP_HOST="127.0.0.1",
        VOLTARO_OCPP_PORT="0",
        VOLTARO_ADMIN_HOST="127.0.0.1",
        VOLTARO_ADMIN_PORT=str(admin_port),
        VOLTARO_UNKNOWN_CHARGERS="accept",
    )
    log = workdir / "voltaro.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "voltaro", "serve", "--log-level", "INFO"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        match = READY["voltaro"].search(log.read_text(errors="replace"))
        if match:
            server = Server("voltaro", process, int(match.group(1)), log, postmaster, embedded)
            token = (data_dir / "admin-token").read_text().strip()
            return server, f"http://127.0.0.1:{admin_port}", token
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"voltaro did not start; see {log}:\n{log.read_text()[-2000:]}")


# -- the chargers (a process of their own) ----------------------------------------------------


def _fleet_process(options: FleetOptions) -> None:
    raise_open_file_limit()
    run_fleet(options)


# -- dashboards -------------------------------------------------------------------------------


async def _signed_in(admin: str, token: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=admin, timeout=30)
    answer = await client.post("/login", data={"token": token})
    if answer.status_code != 302:
        raise RuntimeError(f"sign-in answered {answer.status_code}")
    return client


async def dashboard(admin: str, token: str, view: View, counts: Counts) -> None:
    """One open list page, until cancelled: load it, then follow its events; when the
    stream ends (dropped for lagging, say), reload and follow again, as the browser does."""
    client = await _signed_in(admin, token)
    try:
        while True:
            await _load_and_follow(client, view, counts)
            counts.reconnects += 1
    finally:
        await client.aclose()


async def _load_and_follow(client: httpx.AsyncClient, view: View, counts: Counts) -> None:
    page = await client.get(view.path)
    counts.pages += 1
    counts.bytes += len(page.content)
    shown = set(re.findall(rf'{view.attribute}="([^"]+)"', page.text))
    active = re.findall(rf'{view.attribute}="([^"]+)" data-active="1"', page.text)
    waiting: set[str] = set()

    async def poll() -> None:
        while active:
            await trio.sleep(POLL_SECONDS)
            answer = await client.get(view.row(",".join(active)))
            counts.rows += 1
            counts.bytes += len(answer.content)
            if answer.status_code != 200:
                counts.errors.append(f"{view.row('...')}: {answer.status_code}")

    async def fetch_row(key: str, delay: float) -> None:
        await trio.sleep(delay)
        waiting.discard(key)
        answer = await client.get(view.row(key))
        counts.rows += 1
        counts.bytes += len(answer.content)
        if answer.status_code != 200:
            counts.errors.append(f"{view.row(key)}: {answer.status_code}")

    async with (
        trio.open_nursery() as nursery,
        client.stream("GET", "/events", params={"types": ",".join(view.kinds)}) as stream,
    ):
        if view.polls:
            nursery.start_soon(poll)
        async for line in stream.aiter_lines():
            if not line.startswith("data: "):
                continue
            counts.events += 1
            counts.bytes += len(line)
            event = orjson.loads(line[6:])
            key = str(event.get(view.key))
            if key in shown and key not in waiting and event["type"] != "transactionStarted":
                waiting.add(key)
                nursery.start_soon(fetch_row, key, ROW_DELAY)


async def whole_page_dashboard(admin: str, token: str, view: View, counts: Counts) -> None:
    """The dashboard before row updates (``--mode pages``, for a side-by-side run against
    an older Voltaro): every event of any kind re-fetches the whole page, one fetch at a
    time and another 250 ms after one that events arrived during, as its ``refresh()`` did."""
    client = await _signed_in(admin, token)
    wanted = trio.Event()

    async def refresher() -> None:
        nonlocal wanted
        while True:
            await wanted.wait()
            wanted = trio.Event()
            page = await client.get(view.path)
            counts.pages += 1
            counts.bytes += len(page.content)
            if wanted.is_set():
                await trio.sleep(0.25)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(refresher)
            wanted.set()  # the first load
            while True:
                async with client.stream("GET", "/events") as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("data: "):
                            counts.events += 1
                            counts.bytes += len(line)
                            wanted.set()
                counts.reconnects += 1
    finally:
        await client.aclose()


async def event_counter(admin: str, token: str, counts: Counts) -> None:
    """Every event, all phases long (in the baseline and in the dashboards' phases alike);
    reconnects when dropped."""
    client = await _signed_in(admin, token)
    try:
        while True:
            async with client.stream("GET", "/events") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        counts.events += 1
            counts.reconnects += 1
    finally:
        await client.aclose()


# -- the timeline -----------------------------------------------------------------------------


async def _phases(args: argparse.Namespace, server: Server, admin: str, token: str) -> Any:
    await healthy(admin)
    counter = Counts()
    phases: list[dict[str, Any]] = []
    async with trio.open_nursery() as outer:
        outer.start_soon(event_counter, admin, token, counter)
        await trio.sleep(args.warmup)
        for round_number in range(args.rounds):
            for name in ("without", "with"):
                counts = Counts()
                events_before = counter.events
                cpu_before, started = server.cpu(), time.monotonic()
                async with trio.open_nursery() as nursery:
                    if name == "with":
                        kind = dashboard if args.mode == "rows" else whole_page_dashboard
                        for view in MIX[: args.dashboards]:
                            nursery.start_soon(kind, admin, token, view, counts)
                    await trio.sleep(args.phase_seconds)
                    nursery.cancel_scope.cancel()
                seconds = time.monotonic() - started
                cpu = server.cpu() - cpu_before
                phases.append(
                    {
                        "round": round_number + 1,
                        "phase": name,
                        "seconds": round(seconds, 1),
                        "server_cpu_percent": round(100 * cpu / seconds, 2),
                        "events_per_s": round((counter.events - events_before) / seconds, 1),
                        "page_loads": counts.pages,
                        "row_fetches": counts.rows,
                        "dashboard_events": counts.events,
                        "dashboard_kib": round(counts.bytes / 1024, 1),
                        "stream_reconnects": counts.reconnects,
                        "errors": len(counts.errors),
                        "first_errors": counts.errors[:3],
                    }
                )
                print(phases[-1], file=sys.stderr)
        outer.cancel_scope.cancel()
    return phases


def dashboard_costs(phases: list[dict[str, Any]]) -> list[float]:
    """Per "with" phase: its CPU % less the mean of the "without" phases next to it."""
    costs = []
    for index, phase in enumerate(phases):
        if phase["phase"] != "with":
            continue
        around = [
            phases[i]["server_cpu_percent"]
            for i in (index - 1, index + 1)
            if 0 <= i < len(phases) and phases[i]["phase"] == "without"
        ]
        costs.append(round(phase["server_cpu_percent"] - statistics.mean(around), 2))
    return costs


def markdown(result: dict[str, Any]) -> str:
    meta = result["setup"]
    costs = result["dashboard_cpu_percent"]
    lines = [
        f"Dashboards: {meta['charge_points']:,} charge points in the database,"
        f" {meta['chargers']} simulated chargers (stress profile, time x{meta['time_scale']:g}),"
        f" {meta['dashboards']} dashboards ({meta['mode']}); phases of"
        f" {meta['phase_seconds']:g} s.",
        "",
        "| round | phase | server CPU % | events/s | page loads | row fetches"
        " | events to dashboards | KiB to dashboards | errors |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in result["phases"]:
        lines.append(
            f"| {p['round']} | {p['phase']} | {p['server_cpu_percent']} | {p['events_per_s']}"
            f" | {p['page_loads']} | {p['row_fetches']} | {p['dashboard_events']}"
            f" | {p['dashboard_kib']} | {p['errors']} |"
        )
    if costs:
        lines += [
            "",
            f"The dashboards' cost: {min(costs)} to {max(costs)} % of a core"
            f" (median {round(statistics.median(costs), 2)}; target: under 5).",
        ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboards", description=__doc__)
    parser.add_argument("--charge-points", type=int, default=20_000, help="inserted by SQL")
    parser.add_argument("--chargers", type=int, default=200, help="simulated, live")
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--dashboards", type=int, default=10, choices=range(1, len(MIX) + 1))
    parser.add_argument(
        "--warmup", type=float, default=80.0, help="seconds before the phases (all connected)"
    )
    parser.add_argument("--phase-seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--mode",
        choices=("rows", "pages"),
        default="rows",
        help="rows: today's dashboard.js; pages: the one before (whole page per event)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise_open_file_limit()
    prefix = "SIM-"
    tags = [
        default_id_tag(charger_id(prefix, n), c)
        for n in range(1, args.chargers + 1)
        for c in (1, 2)
    ]
    total = args.warmup + 2 * args.rounds * args.phase_seconds + 30
    with tempfile.TemporaryDirectory(prefix="voltaro-dashboards-") as workdir:
        server, admin, token = start(Path(workdir), args.charge_points, tags)
        try:
            options = FleetOptions(
                url=server.url,
                chargers=args.chargers,
                profile=PROFILES["stress"].with_changes(time_scale=args.time_scale),
                duration=total,
                id_prefix=prefix,
                workers=1,
            )
            context = multiprocessing.get_context("spawn")
            fleet = context.Process(target=_fleet_process, args=(options,))
            fleet.start()
            try:
                phases = trio.run(_phases, args, server, admin, token)
            finally:
                fleet.terminate()
                fleet.join()
        finally:
            server.stop()
    result = {
        "setup": {
            "charge_points": args.charge_points,
            "chargers": args.chargers,
            "time_scale": args.time_scale,
            "dashboards": args.dashboards,
            "phase_seconds": args.phase_seconds,
            "mode": args.mode,
            "mix": [view.path for view in MIX[: args.dashboards]],
        },
        "phases": phases,
        "dashboard_cpu_percent": dashboard_costs(phases),
    }
    table = markdown(result)
    path = write_results(args.out, "dashboards", result, table)
    print(table)
    print(f"results: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
