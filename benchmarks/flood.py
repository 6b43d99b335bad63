"""A DataTransfer flood against ``voltaro serve``: how much the database grows per flooded MB.

    .venv/bin/python -m benchmarks.flood                      # 100 chargers, 64 KiB, 20 s
    .venv/bin/python -m benchmarks.flood --chargers 200 --seconds 30 --size 65000

Each charger connects, boots, then sends DataTransfers of random data as fast as one
outstanding call allows (what a hostile or broken charger can do; the issue's flood grew
the database 2.27 GB in 20 s). Reported: the frames' bytes sent and answered, the growth of
the database and of the message log, and their ratio to the bytes sent: the number that
matters whatever rate the transport lets through. The server takes its settings from the
environment (``VOLTARO_MESSAGE_LOG_MAX_PAYLOAD=64KiB`` shows what keeping payloads whole
costs). Loopback only; bounded by ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import trio

from benchmarks.run import Server, running
from voltaro.transport.websocket import open_client

MiB = 1024 * 1024
SETTLE_SECONDS = 3.0  # after the flood: the background writes of the message log go in


@dataclass
class Sent:
    frames: int = 0
    bytes: int = 0
    answered: int = 0


def _payloads(size: int, count: int = 32) -> list[str]:
    """Frames of ``size`` bytes: a DataTransfer whose data is random base64 (no two alike,
    and as incompressible as text gets)."""
    frames = []
    for _ in range(count):
        envelope = orjson.dumps([2, "x" * 36, "DataTransfer", {"vendorId": "Flood", "data": ""}])
        data = base64.b64encode(os.urandom(size)).decode()[: max(0, size - len(envelope))]
        frames.append(orjson.dumps({"vendorId": "Flood", "data": data}).decode())
    return frames


async def _charger(port: int, index: int, payloads: list[str], until: float, sent: Sent) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    ws = await open_client(
        stream, f"127.0.0.1:{port}", f"/ocpp/FLOOD-{index:04d}", subprotocols=["ocpp1.6"]
    )
    boot = '[2,"boot","BootNotification",{"chargePointVendor":"Flood","chargePointModel":"F"}]'
    await ws.send(boot)
    await ws.receive()
    n = 0
    while trio.current_time() < until:
        n += 1
        payload = payloads[(index + n) % len(payloads)]
        frame = f'[2,"{index:04d}-{n:030d}","DataTransfer",{payload}]'
        await ws.send(frame)
        sent.frames += 1
        sent.bytes += len(frame)
        await ws.receive()
        sent.answered += 1
    await ws.aclose()


async def _flood(port: int, chargers: int, seconds: float, size: int) -> Sent:
    sent = Sent()
    payloads = _payloads(size)
    until = trio.current_time() + seconds
    with trio.move_on_after(seconds + 30):  # bounded, whatever the server does
        async with trio.open_nursery() as nursery:
            for index in range(chargers):
                nursery.start_soon(_charger, port, index, payloads, until, sent)
    return sent


async def _sizes(url: str) -> dict[str, int]:
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


def measure(server: Server, chargers: int, seconds: float, size: int) -> dict[str, Any]:
    from voltaro.store.embedded import embedded_url

    url = embedded_url(server.embedded)
    before = asyncio.run(_sizes(url))
    started = time.monotonic()
    sent = trio.run(_flood, server.port, chargers, seconds, size)
    elapsed = time.monotonic() - started
    time.sleep(SETTLE_SECONDS)
    after = asyncio.run(_sizes(url))
    grown = {k: after[k] - before[k] for k in before}
    return {
        "chargers": chargers,
        "frame_bytes": size,
        "seconds": round(elapsed, 1),
        "frames_sent": sent.frames,
        "frames_answered": sent.answered,
        "sent_mib": round(sent.bytes / MiB, 1),
        "database_growth_mib": round(grown["database"] / MiB, 1),
        "message_log_growth_mib": round(grown["message_log"] / MiB, 1),
        "message_log_entries_kept": after["entries"],
        "database_growth_per_sent_mib": round(grown["database"] / max(sent.bytes, 1), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flood", description=__doc__)
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=65000, help="bytes per frame")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="voltaro-flood-") as workdir,
        running("voltaro", Path(workdir), []) as server,
    ):
        result = measure(server, args.chargers, args.seconds, args.size)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
