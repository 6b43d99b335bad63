"""Flood benchmark: hostile chargers sending large frames as fast as the server reads them,
one honest charger beside them, and what that does to the server's memory, to the honest
charger's answers and to the database's size.

    .venv/bin/python -m benchmarks.flood                        # 200 x 64 KiB frames for 30 s
    .venv/bin/python -m benchmarks.flood --server-env VOLTARO_INBOUND_RATE=0   # pacing off
    .venv/bin/python -m benchmarks.flood --url ws://127.0.0.1:9000/ocpp --pid 1234

Without ``--url`` it starts ``voltaro serve`` with its embedded PostgreSQL, as
:mod:`benchmarks.run` does (unknown chargers accepted), and stops it at the end. The timeline:

- ``before`` (``--before`` s): the honest charger alone;
- ``flood`` (``--seconds`` s): ``--connections`` flooders, each from its own loopback address,
  send DataTransfer CALLs of ``--frame-bytes`` bytes back to back without waiting for the
  answers (they read and discard them, so the server's writes never block), from a worker
  process of their own;
- ``after`` (``--after`` s): the flooders are gone; does the server's memory come back?

All along the honest charger (in this process) sends a StatusNotification every
``--interval`` s and waits for its answer; its latency is reported per phase. The server's
RSS is sampled every 0.5 s. The database's size and the message log's are read before the
flood and at the end (the server started here, or ``--database-url``): their growth per MiB
flooded is the number that matters whatever rate the transport lets through. Results go
to ``benchmarks/results/flood-<timestamp>.json`` and ``.md``. Loopback only; every phase is
bounded by its duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import trio

from benchmarks.run import ROOT, cpu_seconds, rss_bytes, running
from voltaro.ocppj.endpoint import ChannelClosed
from voltaro.process_limits import raise_open_file_limit
from voltaro.sim.charger import connect_websocket
from voltaro.sim.fleet import source_address
from voltaro.store.embedded import embedded_url

RSS_SAMPLE_SECONDS = 0.5
ANSWER_TIMEOUT = 30.0  # the honest charger's patience for one answer
BOOT = {"chargePointVendor": "Voltaro", "chargePointModel": "Flood"}


# -- the flooders (a worker process) --------------------------------------------------------


def flood_text(message_id: str, frame_bytes: int) -> str:
    """A DataTransfer CALL of exactly ``frame_bytes`` bytes (ASCII), or the smallest one."""
    head = f'[2,"{message_id}","DataTransfer",{{"vendorId":"flood","data":"'
    tail = '"}]'
    return head + "x" * max(0, frame_bytes - len(head) - len(tail)) + tail


async def _flooder(url: str, index: int, frame_bytes: int, stop_at: float, sent: list[int]) -> None:
    websocket, stream = await connect_websocket(
        f"{url}/FLOOD-{index:04d}",
        source_address=source_address(1000 + index),
        timeout=max(1.0, stop_at - trio.current_time()),  # the server may be slow to admit
    )
    try:
        await websocket.send(orjson.dumps([2, "boot", "BootNotification", BOOT]).decode())
        async with trio.open_nursery() as nursery:

            async def discard_answers() -> None:
                while True:
                    await websocket.receive()

            nursery.start_soon(discard_answers)
            n = 0
            with trio.move_on_at(stop_at):
                while True:
                    n += 1
                    await websocket.send(flood_text(f"f{n}", frame_bytes))
                    sent[index] += 1
            nursery.cancel_scope.cancel()
    except ChannelClosed:
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def _flood(url: str, connections: int, frame_bytes: int, seconds: float) -> dict[str, Any]:
    sent = [0] * connections
    failed = 0
    stop_at = trio.current_time() + seconds

    async def one(index: int) -> None:
        nonlocal failed
        try:
            await _flooder(url, index, frame_bytes, stop_at, sent)
        except (OSError, trio.TooSlowError, ChannelClosed) as error:
            failed += 1
            print(f"flooder {index}: {error!r}", file=sys.stderr)

    async with trio.open_nursery() as nursery:
        for index in range(connections):
            nursery.start_soon(one, index)
    frames = sum(sent)
    return {
        "frames_sent": frames,
        "mib_sent": round(frames * frame_bytes / 2**20, 1),
        "failed_flooders": failed,
    }


def _flood_process(
    url: str, connections: int, frame_bytes: int, seconds: float, out: Connection
) -> None:
    raise_open_file_limit()
    out.send(trio.run(_flood, url, connections, frame_bytes, seconds))


# -- the honest charger and the timeline ----------------------------------------------------


@dataclass
class Timeline:
    """When each phase began (monotonic seconds), and what was measured in it."""

    marks: dict[str, float] = field(default_factory=dict)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds)
    errors: list[tuple[float, str]] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    cpu: list[tuple[float, float]] = field(default_factory=list)  # the server's CPU seconds

    def phase(self, at: float) -> str:
        current = "before"
        for name, start in self.marks.items():
            if at >= start:
                current = name
        return current


async def _honest(url: str, interval: float, timeline: Timeline, done: trio.Event) -> None:
    websocket, stream = await connect_websocket(f"{url}/HONEST-1", source_address="127.0.0.9")
    number = 0

    async def call(action: str, payload: dict[str, Any]) -> list[Any]:
        nonlocal number
        number += 1
        message_id = f"h{number}"
        await websocket.send(orjson.dumps([2, message_id, action, payload]).decode())
        with trio.fail_after(ANSWER_TIMEOUT):
            while True:
                frame = orjson.loads(await websocket.receive())
                if frame[1] == message_id:
                    return list(frame)

    try:
        await call("BootNotification", BOOT)
        while not done.is_set():
            started = time.monotonic()
            status = {
                "connectorId": 1,
                "errorCode": "NoError",
                "status": "Available",
                "timestamp": datetime.now(UTC).isoformat(),
            }
            try:
                frame = await call("StatusNotification", status)
            except trio.TooSlowError:
                timeline.errors.append((started, "timeout"))
                continue
            if frame[0] == 3:
                timeline.latencies.append((started, time.monotonic() - started))
            else:
                timeline.errors.append((started, f"CALLERROR {frame[2]}"))
            with trio.move_on_after(max(0.0, interval - (time.monotonic() - started))):
                await done.wait()
    finally:
        await trio.aclose_forcefully(stream)


def _sample_rss(pid: int, timeline: Timeline, stop: threading.Event) -> None:
    while not stop.is_set():
        now = time.monotonic()
        timeline.rss.append((now, rss_bytes(pid)))
        timeline.cpu.append((now, cpu_seconds(pid)))
        stop.wait(RSS_SAMPLE_SECONDS)


def _database_sizes(url: str | None) -> dict[str, int] | None:
    """The database's size, the message log's (with its indexes) and its entries."""
    if url is None:
        return None

    async def read() -> dict[str, int]:
        connection = await asyncpg.connect(url)
        try:
            row = await connection.fetchrow(
                "SELECT pg_database_size(current_database()) AS database,"
                " pg_total_relation_size('message_log') AS message_log,"
                " (SELECT count(*) FROM message_log) AS entries"
            )
            return dict(row)
        finally:
            await connection.close()

    return asyncio.run(read())


def _growth(
    before: dict[str, int] | None, after: dict[str, int] | None, flood: dict[str, Any]
) -> dict[str, Any]:
    if before is None or after is None:
        return {}
    sent = flood.get("mib_sent") or 0
    grown = {key: after[key] - before[key] for key in before}
    return {
        "database_growth_mib": round(grown["database"] / 2**20, 1),
        "message_log_growth_mib": round(grown["message_log"] / 2**20, 1),
        "message_log_entries": after["entries"],
        "database_growth_per_mib_sent": round(grown["database"] / 2**20 / sent, 3)
        if sent
        else None,
    }


async def _run(
    args: argparse.Namespace, url: str, pid: int, database_url: str | None
) -> dict[str, Any]:
    sizes_before = await trio.to_thread.run_sync(_database_sizes, database_url)
    timeline = Timeline()
    stop_sampling = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(pid, timeline, stop_sampling))
    sampler.start()
    done = trio.Event()
    flood: dict[str, Any] = {}
    try:
        async with trio.open_nursery() as nursery:
            timeline.marks["before"] = time.monotonic()
            nursery.start_soon(_honest, url, args.interval, timeline, done)
            await trio.sleep(args.before)
            receiving, sending = multiprocessing.get_context("spawn").Pipe(duplex=False)
            process = multiprocessing.get_context("spawn").Process(
                target=_flood_process,
                args=(url, args.connections, args.frame_bytes, args.seconds, sending),
            )
            timeline.marks["flood"] = time.monotonic()
            process.start()
            sending.close()  # the worker's end: if it dies, recv() raises EOFError
            try:
                flood = await trio.to_thread.run_sync(receiving.recv)
            except EOFError:
                flood = {"error": f"the flood worker died (exit code {process.exitcode})"}
            await trio.to_thread.run_sync(process.join)
            timeline.marks["after"] = time.monotonic()
            await trio.sleep(args.after)
            done.set()
    finally:
        stop_sampling.set()
        sampler.join()
    sizes_after = await trio.to_thread.run_sync(_database_sizes, database_url)
    return {
        "flood": flood,
        "database": _growth(sizes_before, sizes_after, flood),
        **_report(timeline),
    }


def _ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def _report(timeline: Timeline) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    for name in ("before", "flood", "after"):
        latencies = [s for at, s in timeline.latencies if timeline.phase(at) == name]
        rss = [r for at, r in timeline.rss if timeline.phase(at) == name]
        cpu = [(at, c) for at, c in timeline.cpu if timeline.phase(at) == name]
        busy = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) if len(cpu) > 1 else None
        phases[name] = {
            "calls": len(latencies),
            "errors": sum(1 for at, _ in timeline.errors if timeline.phase(at) == name),
            "p50_ms": _ms(latencies, 0.50),
            "p99_ms": _ms(latencies, 0.99),
            "max_ms": _ms(latencies, 1.0),
            "rss_median_mib": round(statistics.median(rss) / 2**20, 1) if rss else None,
            "rss_peak_mib": round(max(rss) / 2**20, 1) if rss else None,
            "rss_last_mib": round(rss[-1] / 2**20, 1) if rss else None,
            "server_cpu_percent": None if busy is None else round(busy * 100),
        }
    start = timeline.marks["before"]
    return {
        "phases": phases,
        "rss_mib": [(round(at - start, 1), round(r / 2**20, 1)) for at, r in timeline.rss],
    }


def markdown(result: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"Flood run {meta['timestamp']} on {meta['machine']}: {meta['connections']} connections"
        f" x {meta['frame_bytes']:,} B DataTransfer frames for {meta['seconds']:g} s;"
        f" server env {meta['server_env'] or '(defaults)'}.",
        "",
        f"Flood: {result['flood'].get('frames_sent', 0):,} frames"
        f" ({result['flood'].get('mib_sent', 0):,} MiB) sent,"
        f" {result['flood'].get('failed_flooders', 0)} flooders failed.",
        "",
    ]
    database = result.get("database") or {}
    if database:
        lines += [
            f"Database: grew {database['database_growth_mib']} MiB"
            f" ({database['database_growth_per_mib_sent']} MiB per MiB flooded), the message"
            f" log {database['message_log_growth_mib']} MiB"
            f" ({database['message_log_entries']:,} entries kept).",
            "",
        ]
    lines += [
        "| phase | honest calls | errors | p50 ms | p99 ms | max ms | RSS median MiB"
        " | RSS peak MiB | RSS last MiB | server CPU % |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, p in result["phases"].items():
        values = (
            p["calls"],
            p["errors"],
            p["p50_ms"],
            p["p99_ms"],
            p["max_ms"],
            p["rss_median_mib"],
            p["rss_peak_mib"],
            p["rss_last_mib"],
            p["server_cpu_percent"],
        )
        cells = " | ".join("-" if v is None else str(v) for v in values)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flood", description=__doc__)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--frame-bytes", type=int, default=65_000, help="each CALL's size")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the flood lasts")
    parser.add_argument("--before", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=0.2, help="between honest calls")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the started server (repeatable)",
    )
    parser.add_argument("--url", default=None, help="a running server's ws://HOST:PORT/ocpp")
    parser.add_argument("--pid", type=int, default=None, help="its process id (for RSS)")
    parser.add_argument(
        "--database-url", default=None, help="its database (for the growth; with --url)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.url is None) != (args.pid is None):
        raise SystemExit("--url and --pid go together")
    raise_open_file_limit()
    started = datetime.now(UTC)
    meta = {
        "timestamp": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} cores, {sys.platform}",
        "connections": args.connections,
        "frame_bytes": args.frame_bytes,
        "seconds": args.seconds,
        "server_env": args.server_env,
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    if args.url is not None:
        result = trio.run(_run, args, args.url, args.pid, args.database_url)
    else:
        for assignment in args.server_env:
            name, _, value = assignment.partition("=")
            os.environ[name] = value
        with (
            tempfile.TemporaryDirectory(prefix="voltaro-flood-") as workdir,
            running("voltaro", Path(workdir), []) as server,
        ):
            database = None if server.embedded is None else embedded_url(server.embedded)
            result = trio.run(_run, args, server.url, server.process.pid, database)
    table = markdown(result, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = "flood-" + started.strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"{stamp}.json").write_text(json.dumps({"meta": meta, **result}, indent=2))
    (args.out / f"{stamp}.md").write_text(table)
    print(table)
    print(f"results: {args.out / f'{stamp}.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
