"""A second, independent fleet driver for workload (a), to cross-check `voltaro simulate`.

It shares nothing with Voltaro's simulator: asyncio and `websockets` instead of trio and our
WebSocket, frames written by hand, no schema validation. Each charger boots once, then sends
MeterValues (ten sampled values) and, every tenth call, a Heartbeat, one call outstanding at
a time, and counts the answers it gets after the warm-up.

    python -m benchmarks.cross_check --url ws://127.0.0.1:9000/ocpp --chargers 200

It prints one JSON line: answers per second and their latency, CALLERRORs and other wrong
answers, and the driver's own CPU seconds. `python -m benchmarks.run` runs it as workload
"x", against the same servers as (a).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import resource
import sys
import time
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

BOOT = {"chargePointVendor": "CrossCheck", "chargePointModel": "Driver"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _meter_values(energy_wh: float) -> dict[str, object]:
    values = [{"value": f"{energy_wh:.0f}", "measurand": "Energy.Active.Import.Register"}]
    values += [{"value": "7200", "measurand": "Power.Active.Import", "unit": "W"}]
    values += [{"value": "50.0", "measurand": "Frequency"}]
    values += [
        {"value": "10.4", "measurand": "Current.Import", "phase": p} for p in ("L1", "L2", "L3")
    ]
    values += [
        {"value": "230.1", "measurand": "Voltage", "phase": p, "unit": "V"}
        for p in ("L1-N", "L2-N", "L3-N")
    ]
    values += [{"value": "64", "measurand": "SoC", "unit": "Percent", "location": "EV"}]
    return {"connectorId": 1, "meterValue": [{"timestamp": _now(), "sampledValue": values}]}


class Counts:
    def __init__(self) -> None:
        self.latencies: list[float] = []  # seconds, of the answers counted
        self.errors = 0
        self.booted = 0
        self.failed = 0  # chargers whose connection failed
        self.counting = False


async def _charger(url: str, name: str, counts: Counts, stop: float) -> None:
    try:
        await _run_charger(url, name, counts, stop)
    except (OSError, WebSocketException) as error:
        print(f"{name}: {error!r}", file=sys.stderr)
        counts.failed += 1


async def _run_charger(url: str, name: str, counts: Counts, stop: float) -> None:
    async with connect(f"{url}/{name}", subprotocols=["ocpp1.6"]) as ws:
        ids = itertools.count()
        energy = 0.0

        async def call(action: str, payload: object) -> None:
            message_id = str(next(ids))
            started = time.perf_counter()
            await ws.send(json.dumps([2, message_id, action, payload]))
            answer = json.loads(await ws.recv())
            if answer[0] != 3 or answer[1] != message_id:
                counts.errors += 1
            elif counts.counting:
                counts.latencies.append(time.perf_counter() - started)

        await call("BootNotification", BOOT)
        counts.booted += 1
        for n in itertools.count():
            if time.monotonic() >= stop:
                return
            if n % 10 == 9:
                await call("Heartbeat", {})
            else:
                energy += 15.0
                await call("MeterValues", _meter_values(energy))


async def _fleet(url: str, names: list[str], warmup: float, seconds: float) -> dict[str, Any]:
    counts = Counts()
    stop = time.monotonic() + warmup + seconds
    tasks = [asyncio.create_task(_charger(url, name, counts, stop)) for name in names]
    await asyncio.sleep(warmup)
    counts.counting = True
    started = time.monotonic()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "latencies": counts.latencies,
        "seconds": elapsed,
        "errors": counts.errors,
        "booted": counts.booted,
        "failed": counts.failed,
        "cpu_s": cpu.ru_utime + cpu.ru_stime,
    }


def _worker(args: tuple[str, list[str], float, float]) -> dict[str, Any]:
    return asyncio.run(_fleet(*args))


def _percentile_ms(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return round(1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)


def run(url: str, chargers: int, processes: int, seconds: float, warmup: float) -> dict[str, Any]:
    """Drive the fleet; the summary :func:`main` prints."""
    names = [f"XCHK-{i:05d}" for i in range(chargers)]
    shares = [(url, names[i::processes], warmup, seconds) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_worker, shares)
    elapsed = max(r["seconds"] for r in results)
    latencies = sorted(latency for r in results for latency in r["latencies"])
    driver_cpu = sum(r["cpu_s"] for r in results)
    return {
        "chargers": chargers,
        "booted": sum(r["booted"] for r in results),
        "failed_connects": sum(r["failed"] for r in results),
        "answers": len(latencies),
        "messages_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": _percentile_ms(latencies, 0.50),
        "p95_ms": _percentile_ms(latencies, 0.95),
        "p99_ms": _percentile_ms(latencies, 0.99),
        "errors": sum(r["errors"] for r in results),
        "driver_cpu_s": round(driver_cpu, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="ws://host:port/ocpp (no charger id)")
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured, after warm-up")
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    summary = run(args.url, args.chargers, args.processes, args.seconds, args.warmup)
    json.dump(summary, sys.stdout)
    print()


if __name__ == "__main__":
    main()
