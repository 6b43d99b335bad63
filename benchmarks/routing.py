"""Command routing benchmark: what an operator command costs when the charger is connected to
another instance than the one asked, against the same command asked of the instance that
holds it (the baseline, measured in the same run, alternating).

    .venv/bin/python -m benchmarks.routing                 # 200 commands each way
    .venv/bin/python -m benchmarks.routing --commands 500

It starts an embedded PostgreSQL and two ``voltaro serve`` instances on it (loopback ports),
connects one charger to the first (it answers every CALL at once), and sends TriggerMessage
through the admin API of the first (local) and of the second (routed: a row, a NOTIFY to the
first, the CALL, the answer row, a NOTIFY back), one after the other, alternating. Results
(latency percentiles of both, and the difference) go to
``benchmarks/results/routing-<timestamp>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from benchmarks.cluster import TOKEN, healthy, start_node, write_results
from benchmarks.run import ROOT
from voltaro.ocppj.endpoint import ChannelClosed
from voltaro.sim.charger import connect_websocket
from voltaro.store.embedded import embedded_url, start_embedded, stop_embedded

BOOT = {"chargePointVendor": "Voltaro", "chargePointModel": "Routing"}
COMMAND = {"requestedMessage": "Heartbeat"}


async def charger(ocpp: int, *, task_status: trio.TaskStatus[None]) -> None:
    """One charger on the first node, answering every CALL at once."""
    websocket, stream = await connect_websocket(f"ws://127.0.0.1:{ocpp}/ocpp/ROUTE-1")
    await websocket.send(orjson.dumps([2, "boot", "BootNotification", BOOT]).decode())
    await websocket.receive()
    task_status.started()
    try:
        while True:
            frame = orjson.loads(await websocket.receive())
            if frame[0] == 2:
                await websocket.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())
    except ChannelClosed:
        return
    finally:
        await stream.aclose()


async def measure(first: int, second: int, commands: int) -> dict[str, list[float]]:
    path = "/api/v1/charge-points/ROUTE-1/commands/TriggerMessage"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times: dict[str, list[float]] = {"local": [], "routed": []}
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{first}", headers=headers) as local,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{second}", headers=headers) as routed,
    ):
        for client in (local, routed):  # warm-up
            (await client.post(path, json=COMMAND)).raise_for_status()
        for _ in range(commands):
            for name, client in (("local", local), ("routed", routed)):
                started = time.perf_counter()
                answer = await client.post(path, json=COMMAND)
                times[name].append((time.perf_counter() - started) * 1000)
                answer.raise_for_status()
    return times


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "p99": round(ordered[int(len(ordered) * 0.99) - 1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


async def run(commands: int, workdir: Path) -> dict[str, Any]:
    embedded = start_embedded(workdir / "db")
    nodes = []
    try:
        url = embedded_url(embedded)
        quiet = {"VOLTARO_LOG_LEVEL": "WARNING"}
        nodes = [start_node(name, url, workdir, quiet) for name in ("first", "second")]
        for node in nodes:
            await healthy(node.admin_url)
        async with trio.open_nursery() as nursery:
            await nursery.start(charger, nodes[0].ocpp)
            times = await measure(nodes[0].admin, nodes[1].admin, commands)
            nursery.cancel_scope.cancel()
    finally:
        for node in nodes:
            node.process.terminate()
            node.process.wait(30)
        stop_embedded(embedded)
    local, routed = percentiles(times["local"]), percentiles(times["routed"])
    added = {key: round(routed[key] - local[key], 2) for key in local}
    return {"commands": commands, "local_ms": local, "routed_ms": routed, "added_ms": added}


def table(result: dict[str, Any]) -> str:
    rows = [
        "| command asked of | p50 ms | p95 ms | p99 ms | mean ms |",
        "|---|--:|--:|--:|--:|",
    ]
    for label, key in (
        ("the instance holding the charger", "local_ms"),
        ("another instance (routed)", "routed_ms"),
        ("added by routing", "added_ms"),
    ):
        r = result[key]
        rows.append(f"| {label} | {r['p50']} | {r['p95']} | {r['p99']} | {r['mean']} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="voltaro-routing-") as tmp:
        result = trio.run(run, args.commands, Path(tmp))
    written = write_results(args.out, "routing", result, table(result))
    print(table(result))
    print(f"results: {written}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
