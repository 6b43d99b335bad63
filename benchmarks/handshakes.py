"""Handshakes per second, and server memory per idle charger: a driver of its own.

It shares nothing with Voltaro: asyncio on non-blocking sockets, the upgrade request and
the frames written by hand (a client's frames are masked, with a zero mask), so that the
driver's own cost per handshake stays far below a server's (a ``websockets`` client costs
about as much as the server it measures).

- ``rate``: ``--chargers`` connections, ``--concurrency`` of them in their handshake at once
  per driver process, each kept open once the server answered 101; reports handshakes per
  second from the first connect to the last 101, and the 101s' latency.
- ``idle``: ``--chargers`` connections, each sends one BootNotification and waits for its
  answer, then is silent; the caller measures the server's memory meanwhile (see
  :func:`benchmarks.run.handshake_rate` and :func:`benchmarks.run.idle_connections`).

Each connection comes from its own address in 127.0.0.0/8 (Linux routes all of it to
loopback), as the fleet's chargers do: one address would run out of ports, and would meet
the server's per-address handshake cap.

    python -m benchmarks.handshakes --url ws://127.0.0.1:9000/ocpp --chargers 3000 rate

It prints one JSON line. The connections stay open until the process is told to end
(``--hold`` seconds, or a line on stdin with ``--hold -1``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

BOOT_FRAME = b'[2,"1","BootNotification",{"chargePointVendor":"Bench","chargePointModel":"Idle"}]'


def source_address(index: int) -> str:
    """127.x.y.z for charger ``index`` (127.0.0.1 and .0/.255 endings skipped)."""
    n = index + 2
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255 or 1}.{(n & 255) or 1}"


def request_bytes(host: str, port: int, path: str, charge_point_id: str) -> bytes:
    return (
        f"GET {path}/{charge_point_id} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    ).encode()


def masked_text_frame(payload: bytes) -> bytes:
    """A client's text frame with a zero mask (RFC 6455 requires a mask, not a secret)."""
    length = len(payload)
    if length < 126:
        head = bytes([0x81, 0x80 | length])
    else:
        head = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


class Result:
    def __init__(self) -> None:
        self.opened = 0
        self.failed = 0
        self.booted = 0
        self.latencies: list[float] = []
        self.first: float | None = None
        self.last: float | None = None


async def _read_until(loop: asyncio.AbstractEventLoop, sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while end not in data:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


async def _one(
    loop: asyncio.AbstractEventLoop,
    index: int,
    url: Any,
    prefix: str,
    mode: str,
    result: Result,
    held: list[socket.socket],
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    started = time.perf_counter()
    if result.first is None:
        result.first = started
    try:
        sock.bind((source_address(index), 0))
        await loop.sock_connect(sock, (url.hostname, url.port))
        await loop.sock_sendall(
            sock, request_bytes(url.hostname, url.port, url.path, f"{prefix}{index}")
        )
        head = await _read_until(loop, sock, b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        now = time.perf_counter()
        result.latencies.append(now - started)
        result.last = now
        result.opened += 1
        if mode == "idle":
            await loop.sock_sendall(sock, masked_text_frame(BOOT_FRAME))
            answer = await _read_until(loop, sock, b"currentTime")
            if b'"Accepted"' in answer or b'"Pending"' in answer:
                result.booted += 1
        held.append(sock)
    except (OSError, ConnectionError):
        result.failed += 1
        sock.close()


async def _drive(
    url_text: str, prefix: str, first: int, count: int, concurrency: int, mode: str, hold: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    url = urlsplit(url_text)
    result = Result()
    held: list[socket.socket] = []
    indexes = iter(range(first, first + count))

    async def lane() -> None:
        for index in indexes:
            await _one(loop, index, url, prefix, mode, result, held)

    cpu = time.process_time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    cpu = time.process_time() - cpu
    summary = {
        "opened": result.opened,
        "failed": result.failed,
        "booted": result.booted,
        "seconds": (result.last or 0) - (result.first or 0),
        "latencies": sorted(result.latencies),
        "driver_cpu_s": cpu,
    }
    print(json.dumps({"ready": result.opened}), flush=True)
    if hold < 0:
        await loop.run_in_executor(None, sys.stdin.readline)
    else:
        await asyncio.sleep(hold)
    for sock in held:
        sock.close()
    return summary


def _worker(args: tuple[str, str, int, int, int, str, float]) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return asyncio.run(_drive(*args))


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(fraction * len(values)))]


def run(
    url: str,
    chargers: int,
    *,
    mode: str = "rate",
    processes: int = 1,
    concurrency: int = 50,
    prefix: str = "HS-",
    hold: float = 0.0,
) -> dict[str, Any]:
    """Drive ``chargers`` connections over ``processes`` driver processes; the summary."""
    share = -(-chargers // processes)
    jobs = [
        (url, prefix, i * share, min(share, chargers - i * share), concurrency, mode, hold)
        for i in range(processes)
        if chargers - i * share > 0
    ]
    if len(jobs) == 1:  # in this process: nothing is left behind when it is ended
        parts = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            parts = pool.map(_worker, jobs)
    latencies = sorted(x for part in parts for x in part["latencies"])
    seconds = max(part["seconds"] for part in parts)
    opened = sum(part["opened"] for part in parts)
    return {
        "opened": opened,
        "failed": sum(part["failed"] for part in parts),
        "booted": sum(part["booted"] for part in parts),
        "handshakes_per_s": round(opened / seconds, 1) if seconds > 0 else None,
        "p50_ms": _ms(percentile(latencies, 0.5)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        "driver_cpu_s": round(sum(part["driver_cpu_s"] for part in parts), 2),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("rate", "idle"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--chargers", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--prefix", default="HS-")
    parser.add_argument("--hold", type=float, default=0.0)
    args = parser.parse_args()
    summary = run(
        args.url,
        args.chargers,
        mode=args.mode,
        processes=args.processes,
        concurrency=args.concurrency,
        prefix=args.prefix,
        hold=args.hold,
    )
    print(json.dumps(summary), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
