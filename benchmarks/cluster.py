"""Several ``voltaro serve`` nodes on one database behind the repository's HAProxy
configuration (``deploy/haproxy.cfg``), on loopback: for the failover benchmark and the
multi-node test. Processes, not threads: a node is killed with -9 like a real one."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
TOKEN = "cluster-admin-token-0123"


def free_port() -> int:
    """A port free on every address now, below the kernel's ephemeral range (32768 and up on
    Linux), so that no client connection made meanwhile takes it before it is bound."""
    while True:
        port = random.randrange(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("", port))
            except OSError:
                continue
            return port


@dataclass
class Node:
    name: str
    ocpp: int
    admin: int
    process: subprocess.Popen[bytes]

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin}"

    def kill(self) -> None:
        """kill -9: no goodbye, no lease given up."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Cluster:
    nodes: list[Node]
    ocpp_url: str  # ws://127.0.0.1:<proxy port>/ocpp
    admin_url: str  # http://127.0.0.1:<proxy port>
    database_url: str

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)


def start_node(
    name: str, database_url: str, workdir: Path, settings: Mapping[str, str] | None = None
) -> Node:
    ocpp, admin = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        VOLTARO_DATABASE_URL=database_url,
        VOLTARO_DATA_DIR=str(workdir / name),
        VOLTARO_OCPP_HOST="127.0.0.1",
        VOLTARO_OCPP_PORT=str(ocpp),
        VOLTARO_ADMIN_PORT=str(admin),
        VOLTARO_ADMIN_TOKEN=TOKEN,
        VOLTARO_UNKNOWN_CHARGERS="accept",
        VOLTARO_INSTANCE_ID=name,
        VOLTARO_MAX_HANDSHAKES_PER_ADDRESS="0",
        **(settings or {}),
    )
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the node
    process = subprocess.Popen(
        [sys.executable, "-m", "voltaro", "serve"], env=env, stdout=log, stderr=log
    )
    return Node(name, ocpp, admin, process)


@contextmanager
def cluster(
    database_url: str,
    workdir: Path,
    *,
    nodes: int = 3,
    haproxy: str = "haproxy",
    settings: Mapping[str, str] | None = None,
    log_connections: bool = False,
) -> Iterator[Cluster]:
    """``nodes`` nodes and HAProxy in front, stopped (SIGTERM, then -9) at the end. Each
    node logs to ``workdir/<name>.log``, HAProxy to ``workdir/haproxy.log`` (its servers
    going up and down; with ``log_connections``, a line per connection as well)."""
    started = [start_node(f"node{n}", database_url, workdir, settings) for n in range(1, 4)]
    started = started[:nodes]
    lb_ocpp, lb_admin = free_port(), free_port()
    env = dict(os.environ, VOLTARO_LB_OCPP=str(lb_ocpp), VOLTARO_LB_ADMIN=str(lb_admin))
    for n in range(1, 4):  # the configuration names three; absent ones stay down
        node = started[n - 1] if n <= len(started) else None
        env[f"VOLTARO_NODE{n}"] = "127.0.0.1"
        env[f"VOLTARO_NODE{n}_OCPP"] = str(node.ocpp if node else free_port())
        env[f"VOLTARO_NODE{n}_ADMIN"] = str(node.admin if node else free_port())
    config = HAPROXY_CONFIG
    if log_connections:
        config = workdir / "haproxy.cfg"
        config.write_text(with_connection_log(HAPROXY_CONFIG.read_text()))
    proxy = subprocess.Popen(
        [haproxy, "-db", "-f", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "haproxy.log", "wb"),  # noqa: SIM115
    )
    try:
        yield Cluster(
            started,
            f"ws://127.0.0.1:{lb_ocpp}/ocpp",
            f"http://127.0.0.1:{lb_admin}",
            database_url,
        )
    finally:
        proxy.terminate()
        for node in started:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for process in [proxy, *(node.process for node in started)]:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def with_connection_log(config: str) -> str:
    """``config`` logging every connection to stderr (HAProxy's HTTP log format: times,
    server chosen, status, termination state, retries), timestamped."""
    config = config.replace("\nglobal\n", "\nglobal\n    log stderr format iso local0 info\n", 1)
    return config.replace("\ndefaults\n", "\ndefaults\n    log global\n    option httplog\n", 1)


async def healthy(admin_url: str, within: float = 60.0) -> None:
    """Return once the admin API at ``admin_url`` answers ``/healthz`` with 200 (the node
    runs and reaches its database); trio.TooSlowError after ``within`` seconds."""
    with trio.fail_after(within):
        async with httpx.AsyncClient(base_url=admin_url) as http:
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)


def write_results(out: Path, name: str, result: dict[str, Any], table: str) -> Path:
    """``out/<name>-<UTC time>.json`` and ``.md``, as the other benchmarks write them."""
    stamp = f"{name}-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    meta = {"at": datetime.now(UTC).isoformat(), "cores": os.cpu_count()}
    (out / f"{stamp}.json").write_text(json.dumps({"meta": meta, **result}, indent=2))
    (out / f"{stamp}.md").write_text(table)
    return out / f"{stamp}.json"
