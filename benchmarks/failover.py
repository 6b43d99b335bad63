"""Failover benchmark (f): three nodes behind HAProxy on loopback, a simulated fleet at the
stress profile through the proxy, one node killed with -9 in the middle.

    .venv/bin/python -m benchmarks.failover                      # 300 chargers, 60 s, kill at 20 s
    .venv/bin/python -m benchmarks.failover --chargers 1000 --seconds 90 --kill-at 30

Reported:

- the chargers the dead node held, and the time from the kill until each of them is
  recorded online at a live node again (polled in the database every 0.1 s); and, apart,
  until every charger of the fleet is (with a kill inside the connect window, the first half
  of the run, that is when the last charger's first connect comes: the ramp, not the kill);
- acknowledged messages lost: every MeterValues and StopTransaction the simulator had
  answered must be in the database at the end (MeterValues retries of the same content are
  stored once, and a charger only resends what it was not answered, so the counts must be
  equal: answered minus stored, when positive, is what was lost);
- the simulator's errors and latencies over the whole run (a charger whose node dies sees
  its connection close and reconnects; calls in flight at the kill are sent again).

Results go to ``benchmarks/results/failover-<timestamp>.json`` and ``.md``. With ``--logs
DIR`` the run's logs are kept there: each node's (``node1.log`` ..., at ``--log-level``),
HAProxy's (``haproxy.log``: servers going down and up, and a line per connection: the server
chosen, the status, retries), the simulator's (``simulate.log``) and its summary
(``simulate.json``). It needs Debian's ``haproxy``. Loopback only; bounded by ``--seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import trio
import trio_asyncio

from benchmarks.cluster import cluster, healthy, write_results
from benchmarks.run import ROOT
from voltaro.sim.charger import default_id_tag
from voltaro.sim.fleet import charger_id
from voltaro.store.embedded import embedded_url, start_embedded, stop_embedded
from voltaro.store.migrate import migrate

POLL = 0.1  # seconds between looks at the database during recovery
SETTINGS = {"VOLTARO_INSTANCE_LEASE": "10"}
LOGS = ("node1.log", "node2.log", "node3.log", "haproxy.log", "simulate.log", "simulate.json")


async def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return await trio_asyncio.aio_as_trio(fetch)()


async def run(args: argparse.Namespace, workdir: Path, haproxy: str) -> dict[str, Any]:
    embedded = start_embedded(workdir / "db")
    try:
        url = embedded_url(embedded)
        await migrate(url)
        tags = [
            default_id_tag(charger_id("SIM-", index), connector)
            for index in range(1, args.chargers + 1)
            for connector in (1, 2)
        ]
        await query(url, "INSERT INTO id_tags (id_tag) SELECT unnest($1::text[])", tags)
        settings = {**SETTINGS, "VOLTARO_LOG_LEVEL": args.log_level}
        with cluster(
            url, workdir, haproxy=haproxy, settings=settings, log_connections=args.logs is not None
        ) as nodes:
            for node in nodes.nodes:
                await healthy(node.admin_url)
            await trio.sleep(2.5)  # the proxy's health checks see every node up
            return await failover(args, nodes, url, workdir)
    finally:
        stop_embedded(embedded)


async def failover(args: argparse.Namespace, nodes: Any, url: str, workdir: Path) -> dict[str, Any]:
    simulate = [
        sys.executable,
        *("-m", "voltaro", "simulate", "--url", nodes.ocpp_url, "--profile", "stress"),
        *("--chargers", str(args.chargers), "--duration", str(args.seconds), "--json"),
        *("--time-scale", str(args.time_scale)),
        "--quiet",
    ]
    output = workdir / "simulate.json"
    env = dict(os.environ, VOLTARO_LOG_LEVEL=args.log_level)
    with open(output, "wb") as out, open(workdir / "simulate.log", "wb") as err:
        fleet = subprocess.Popen(simulate, stdout=out, stderr=err, env=env)
        try:
            await trio.sleep(args.kill_at)
            victim = nodes.nodes[0]
            held = await query(
                url, "SELECT id FROM charge_points WHERE online AND instance_id = $1", victim.name
            )
            killed_at = time.monotonic()
            victim.kill()
            held_ids = [row["id"] for row in held]
            recovered = await recovery(url, victim.name, held_ids, killed_at, args.seconds)
            fleet_ids = [charger_id("SIM-", index) for index in range(1, args.chargers + 1)]
            all_online = await recovery(url, victim.name, fleet_ids, killed_at, args.seconds)
        finally:
            await trio.to_thread.run_sync(fleet.wait, args.seconds + 60)
    summary = json.loads(output.read_text())
    return {
        "chargers": args.chargers,
        "seconds": args.seconds,
        "kill_at": args.kill_at,
        "time_scale": args.time_scale,
        "victim_chargers": len(held),
        "recovery_s": recovered,
        "fleet_online_s": all_online,
        **await acknowledged_and_stored(url, summary),
        "simulator": {k: summary[k] for k in ("messages", "errors", "p50_ms", "p99_ms")},
        "simulator_errors": {**summary["call_errors"], **summary["protocol_errors"]},
        "simulator_connects": summary["connects"],
        "simulator_connect_failures": summary["connect_failures"],
    }


async def recovery(
    url: str, victim: str, chargers: list[str], killed_at: float, limit: float
) -> float | None:
    """Seconds from the kill until every one of ``chargers`` is online at a live node (None:
    not within ``limit`` seconds)."""
    with trio.move_on_after(limit):
        while True:
            rows = await query(
                url,
                "SELECT count(*) FROM charge_points"
                " WHERE id = ANY($1::text[]) AND online AND instance_id <> $2",
                chargers,
                victim,
            )
            if rows[0][0] >= len(chargers):
                return round(time.monotonic() - killed_at, 2)
            await trio.sleep(POLL)
    return None


async def acknowledged_and_stored(url: str, summary: dict[str, Any]) -> dict[str, int]:
    actions = summary["actions"]
    meter_answered = actions.get("MeterValues", {}).get("count", 0)
    stops_answered = actions.get("StopTransaction", {}).get("count", 0)
    meter_stored = (await query(url, "SELECT count(*) FROM meter_value_sets"))[0][0]
    stops_stored = (
        await query(url, "SELECT count(*) FROM transactions WHERE stopped_at IS NOT NULL")
    )[0][0]
    return {
        "meter_values_answered": meter_answered,
        "meter_values_stored": meter_stored,
        "stops_answered": stops_answered,
        "stops_stored": stops_stored,
        "acknowledged_lost": max(0, meter_answered - meter_stored)
        + max(0, stops_answered - stops_stored),
    }


def table(result: dict[str, Any]) -> str:
    sim = result["simulator"]
    return (
        "| chargers | on the killed node | all served again after | whole fleet online after |"
        " acknowledged lost | MeterValues answered / stored | StopTransaction answered / stored |"
        " messages | errors | p99 ms |\n"
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
        f"| {result['chargers']} | {result['victim_chargers']} | {result['recovery_s']} s |"
        f" {result['fleet_online_s']} s | {result['acknowledged_lost']} |"
        f" {result['meter_values_answered']} / {result['meter_values_stored']} |"
        f" {result['stops_answered']} / {result['stops_stored']} |"
        f" {sim['messages']} | {sim['errors']} | {sim['p99_ms']} |\n"
    )


def keep_logs(workdir: Path, logs: Path) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    for name in LOGS:
        if (workdir / name).exists():
            shutil.copy(workdir / name, logs / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kill-at", type=float, default=20.0)
    parser.add_argument(
        "--time-scale", type=float, default=10.0, help="simulated time speed: sessions end"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--logs",
        type=Path,
        default=None,
        help="keep the nodes', HAProxy's and the simulator's logs here",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="of the nodes and the simulator (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        print("error: haproxy is not installed (apt-get install haproxy)", file=sys.stderr)
        return 2

    async def main_task() -> dict[str, Any]:
        async with trio_asyncio.open_loop():
            with tempfile.TemporaryDirectory(prefix="voltaro-failover-") as tmp:
                try:
                    return await run(args, Path(tmp), haproxy)
                finally:
                    if args.logs is not None:
                        keep_logs(Path(tmp), args.logs)

    result = trio.run(main_task)
    written = write_results(args.out, "failover", result, table(result))
    print(table(result))
    print(f"results: {written}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
