"""The deploy files (deploy/) checked for real where this machine can: the systemd unit's
ExecStart line is run with its environment file's variables (the data directory, ports and
database changed for the test) until it is ready, answers its health check and a charger,
and stops on the unit's signal within the unit's stop timeout; `systemd-analyze verify`
checks the unit; docker-compose's `config` validates the compose file, whose nodes' settings,
ports and HAProxy configuration are checked against Voltaro's; the Dockerfile's command,
ports, variables and health check are checked against the settings (its health check is
run against the live server); both HAProxy configurations run in front of two real nodes
(the compose variant with its service names replaced by loopback ports), and send the
handshakes a node killed under them left unanswered to the other node. No image is built
and no container runs here: there is no Docker daemon."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import trio
import yaml
from trio_websocket import ConnectionClosed

from benchmarks.cluster import TOKEN as CLUSTER_TOKEN
from benchmarks.cluster import Node, free_port, healthy, start_node, with_connection_log
from tests.harness import RawCharger
from tests.threaded import run_asyncio
from tests.tools import installed_tool
from voltaro.config import Settings
from voltaro.store.testing import TestPostgres
from voltaro.supervisor import SHUTDOWN_GRACE
from voltaro.transport.server import ServerOptions
from voltaro.transport.websocket import HandshakeFailed, open_client

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
READY = re.compile(r"Voltaro is ready: ")
BOOT = {"chargePointVendor": "Deploy", "chargePointModel": "Unit"}


# ---- reading the files ------------------------------------------------------------------


def unit_entries(path: Path) -> dict[str, list[str]]:
    """A systemd unit as ``{"Section.Key": [values]}`` (a key may repeat)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return entries


def environment_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile's variables (``KEY=VALUE`` lines; ``#`` comments)."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip('"')
    return env


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions, ``(INSTRUCTION, arguments)``, continuations joined."""
    instructions = []
    pending = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") and not pending:
            continue
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def one(instructions: list[tuple[str, str]], word: str) -> str:
    found = [rest for name, rest in instructions if name == word]
    assert len(found) == 1, f"{word}: {found}"
    return found[0]


def docker_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for name, rest in instructions:
        if name == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def healthcheck_command(instructions: list[tuple[str, str]]) -> list[str]:
    rest = one(instructions, "HEALTHCHECK")
    command: list[str] = json.loads(rest[rest.index("CMD") + 3 :])
    return command


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", text)
    assert match is not None, text
    return float(match[1]) * (60 if match[2] == "min" else 1)


# ---- the Dockerfile ------------------------------------------------------------------------


def test_the_dockerfile_agrees_with_the_settings() -> None:
    instructions = dockerfile(DEPLOY / "Dockerfile")
    defaults = Settings()
    assert json.loads(one(instructions, "CMD")) == ["voltaro", "serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "voltaro" in scripts
    exposed = {int(port) for port in one(instructions, "EXPOSE").split()}
    assert exposed == {defaults.ocpp_port, defaults.admin_port}

    env = docker_env(instructions)
    settings = Settings.from_env(env)  # every VOLTARO_* variable is one Voltaro reads
    assert {"VOLTARO_DATA_DIR", "VOLTARO_OCPP_HOST", "VOLTARO_ADMIN_HOST"} <= set(env)
    assert settings.ocpp_host == settings.admin_host == "0.0.0.0"  # reachable from outside
    volume = json.loads(one(instructions, "VOLUME"))
    assert volume == [str(settings.data_dir)] == [one(instructions, "WORKDIR")]
    assert one(instructions, "USER") not in ("root", "0")
    assert one(instructions, "STOPSIGNAL") == "SIGTERM"
    for name, rest in instructions:
        if name == "COPY":
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
    command = healthcheck_command(instructions)
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2]


# ---- the compose file ----------------------------------------------------------------------


def compose_config(env: dict[str, str]) -> dict[str, Any]:
    compose = installed_tool("docker-compose", "VOLTARO_REQUIRE_COMPOSE")
    done = subprocess.run(
        [compose, "-f", str(DEPLOY / "compose.yaml"), "config"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_the_compose_file_is_valid_and_agrees_with_the_settings() -> None:
    secrets = {"POSTGRES_PASSWORD": "0123abcd", "VOLTARO_ADMIN_TOKEN": "t" * 32}
    config = compose_config(secrets)
    services = config["services"]
    assert set(services) == {"db", "node1", "node2", "haproxy"}
    image_env = docker_env(dockerfile(DEPLOY / "Dockerfile"))
    nodes = {}
    for name in ("node1", "node2"):
        node = services[name]
        assert node["build"]["dockerfile"] == "deploy/Dockerfile"
        assert node["depends_on"]["db"]["condition"] == "service_healthy"
        assert seconds(node["stop_grace_period"]) >= SHUTDOWN_GRACE + ServerOptions().close_timeout
        nodes[name] = Settings.from_env({**image_env, **node["environment"]})
    one_node, other = nodes["node1"], nodes["node2"]
    assert (
        one_node.database_url
        == other.database_url
        == "postgresql://voltaro:0123abcd@db:5432/voltaro"
    )
    assert one_node.admin_token == other.admin_token == secrets["VOLTARO_ADMIN_TOKEN"]
    assert one_node.instance_id != other.instance_id
    assert one_node.max_handshakes_per_address == 0  # every charger comes from HAProxy
    haproxy_address = services["haproxy"]["networks"]["default"]["ipv4_address"]
    assert one_node.trusted_proxies == other.trusted_proxies == f"{haproxy_address}/32"
    assert "option forwardfor" in (DEPLOY / "haproxy-compose.cfg").read_text()
    assert services["db"]["environment"]["POSTGRES_USER"] == "voltaro"

    # HAProxy: the variant of deploy/haproxy.cfg, listening where the compose file publishes,
    # sending to the nodes' service names at their settings' ports.
    haproxy = services["haproxy"]
    mounted = [v for v in haproxy["volumes"] if v.endswith("/haproxy.cfg:ro")]
    assert len(mounted) == 1
    cfg_path = Path(mounted[0].split(":")[0])
    assert cfg_path == DEPLOY / "haproxy-compose.cfg"
    cfg = cfg_path.read_text()
    published = {(p["published"], p["target"]) for p in haproxy["ports"]}
    assert published == {(one_node.ocpp_port,) * 2, (one_node.admin_port,) * 2}
    assert set(re.findall(r"^\s*bind :(\d+)$", cfg, re.M)) == {
        str(one_node.ocpp_port),
        str(one_node.admin_port),
    }
    servers = re.findall(r"^\s*server (\S+) (\S+):(\d+)(?: port (\d+))?$", cfg, re.M)
    assert sorted(servers) == sorted(
        [(n, n, str(one_node.ocpp_port), str(one_node.admin_port)) for n in nodes]
        + [(n, n, str(one_node.admin_port), "") for n in nodes]
    )
    if shutil.which("haproxy") is not None:
        checked = subprocess.run(
            ["haproxy", "-c", "-f", str(cfg_path)], capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0, checked.stderr


def test_the_compose_file_refuses_to_start_without_its_secrets() -> None:
    compose_config({"POSTGRES_PASSWORD": "x", "VOLTARO_ADMIN_TOKEN": "t" * 32})  # or skip
    done = subprocess.run(
        ["docker-compose", "-f", str(DEPLOY / "compose.yaml"), "config"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "set POSTGRES_PASSWORD" in done.stderr


# ---- the systemd unit ----------------------------------------------------------------------


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    entries = unit_entries(DEPLOY / "voltaro.service")
    installed = shlex.split(entries["Service.ExecStart"][0])[0]
    here = str(Path(sys.executable).parent / "voltaro")
    unit = tmp_path / "voltaro.service"  # the binary where this test's environment has it
    unit.write_text((DEPLOY / "voltaro.service").read_text().replace(installed, here))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (
        done.stdout + done.stderr
    )


@contextmanager
def running_unit(
    tmp_path: Path, database_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], Settings, Path]]:
    """The unit's ExecStart, with its EnvironmentFile's variables (the data directory, the
    ports and the database the test's), in its WorkingDirectory (the test's state directory);
    yields the process, its settings and its log once it is ready."""
    entries = unit_entries(DEPLOY / "voltaro.service")
    env_file = Path(entries["Service.EnvironmentFile"][0])
    env = environment_file(DEPLOY / env_file.name)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env |= {
        "VOLTARO_DATA_DIR": str(state),
        "VOLTARO_DATABASE_URL": database_url,
        "VOLTARO_OCPP_PORT": str(free_port()),
        "VOLTARO_ADMIN_PORT": str(free_port()),
    }
    settings = Settings.from_env(env)
    argv = shlex.split(entries["Service.ExecStart"][0])
    argv[0] = str(Path(sys.executable).parent / Path(argv[0]).name)
    log_path = tmp_path / "journal.log"
    with log_path.open("wb") as journal:
        process = subprocess.Popen(
            argv,
            env={"PATH": os.environ["PATH"], **env},  # systemd's is as bare
            cwd=state,
            stdout=journal,
            stderr=journal,
        )
    try:
        for _ in range(2400):
            if READY.search(log_path.read_text(errors="replace")):
                break
            assert process.poll() is None, log_path.read_text(errors="replace")
            trio.run(trio.sleep, 0.05)
        else:
            raise TimeoutError(log_path.read_text(errors="replace"))
        yield process, settings, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def boot_then_stop(
    url: str, process: subprocess.Popen[bytes], stop: signal.Signals
) -> tuple[list[Any], int]:
    """Boot a charger, then stop the server with ``stop``: the boot's answer and the close
    code the charger got."""
    async with trio.open_nursery() as nursery:
        charger = await RawCharger.connect(nursery, url)
        answer = await charger.call(
            "BootNotification", {"chargePointVendor": "Deploy", "chargePointModel": "Unit"}
        )
        process.send_signal(stop)
        try:
            await charger.receive(timeout=60)
        except ConnectionClosed as closed:
            assert closed.reason is not None
            return answer, closed.reason.code
    raise AssertionError("the server sent a frame instead of closing")


def test_the_systemd_unit_runs_and_stops(tmp_path: Path, database_url: str) -> None:
    entries = unit_entries(DEPLOY / "voltaro.service")
    first = {key: values[0] for key, values in entries.items()}
    assert first["Service.User"] not in ("root", "0")
    assert first["Service.Restart"] in ("on-failure", "always")
    assert first["Service.KillSignal"] == "SIGTERM" and first["Service.KillMode"] == "mixed"
    stop_timeout = seconds(first["Service.TimeoutStopSec"])
    assert stop_timeout >= SHUTDOWN_GRACE + ServerOptions().close_timeout
    assert int(first["Service.LimitNOFILE"]) > Settings().reserved_files + 20_000
    env = environment_file(DEPLOY / Path(first["Service.EnvironmentFile"]).name)
    # The sandbox lets it write its data directory, and nothing else.
    assert first["Service.ProtectSystem"] == "strict"
    state_dir = f"/var/lib/{first['Service.StateDirectory']}"
    assert env["VOLTARO_DATA_DIR"] == state_dir == first["Service.WorkingDirectory"]

    health = healthcheck_command(dockerfile(DEPLOY / "Dockerfile"))
    with running_unit(tmp_path, database_url) as (process, settings, log_path):
        admin = f"http://127.0.0.1:{settings.admin_port}"
        assert httpx.get(f"{admin}/healthz", timeout=30).json() == {
            "status": "ok",
            "database": "ok",
        }
        probe_env = {"PATH": os.environ["PATH"], "VOLTARO_ADMIN_PORT": str(settings.admin_port)}
        health_argv = [sys.executable, *health[1:]]
        assert subprocess.run(health_argv, env=probe_env, timeout=60).returncode == 0
        assert (settings.data_dir / "admin-token").exists()
        url = f"ws://127.0.0.1:{settings.ocpp_port}/ocpp/DEPLOY-UNIT-1"
        stop = signal.Signals[first["Service.KillSignal"]]
        answer, close_code = trio.run(boot_then_stop, url, process, stop)
        assert answer[0] == 3 and answer[2]["status"] == "Pending"  # the env file's policy
        assert close_code == 1001
        assert process.wait(timeout=stop_timeout) == 0, log_path.read_text(errors="replace")
    assert (
        subprocess.run(health_argv, env=probe_env, capture_output=True, timeout=60).returncode != 0
    )


# ---- HAProxy in front of two nodes -----------------------------------------------------------


def compose_variant(workdir: Path, nodes: list[Node], lb_ocpp: int, lb_admin: int) -> Path:
    """deploy/haproxy-compose.cfg with the compose names and ports replaced by these nodes'
    loopback addresses and ports (what Docker's DNS and the nodes' containers give it)."""
    text = (DEPLOY / "haproxy-compose.cfg").read_text()
    defaults = Settings()
    ocpp, admin = defaults.ocpp_port, defaults.admin_port
    replacements = {f"bind :{ocpp}\n": f"bind 127.0.0.1:{lb_ocpp}\n"}
    replacements[f"bind :{admin}\n"] = f"bind 127.0.0.1:{lb_admin}\n"
    for node in nodes:
        replacements[f"{node.name}:{ocpp} port {admin}\n"] = (
            f"127.0.0.1:{node.ocpp} port {node.admin}\n"
        )
        replacements[f"{node.name}:{admin}\n"] = f"127.0.0.1:{node.admin}\n"
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = workdir / "haproxy.cfg"
    path.write_text(text)
    return path


def shipped_env(nodes: list[Node], lb_ocpp: int, lb_admin: int) -> dict[str, str]:
    """deploy/haproxy.cfg's variables for these nodes (its third node stays down)."""
    env = {"VOLTARO_LB_OCPP": str(lb_ocpp), "VOLTARO_LB_ADMIN": str(lb_admin)}
    for n in (1, 2, 3):
        env[f"VOLTARO_NODE{n}"] = "127.0.0.1"
        env[f"VOLTARO_NODE{n}_OCPP"] = str(nodes[n - 1].ocpp if n <= 2 else free_port())
        env[f"VOLTARO_NODE{n}_ADMIN"] = str(nodes[n - 1].admin if n <= 2 else free_port())
    return env


def start_proxy(
    haproxy: str,
    config: str,
    nodes: list[Node],
    lb_ocpp: int,
    lb_admin: int,
    workdir: Path,
    *,
    log_connections: bool = False,
    edit: Callable[[str], str] | None = None,
) -> subprocess.Popen[bytes]:
    """HAProxy with the shipped ``config`` (deploy/haproxy.cfg or the compose variant) in
    front of ``nodes``, logging to ``workdir/haproxy.log`` (a line per connection as well
    with ``log_connections``); ``edit``: a change the test makes to the configuration."""
    if config == "haproxy.cfg":
        path, env = DEPLOY / config, shipped_env(nodes, lb_ocpp, lb_admin)
    else:
        path, env = compose_variant(workdir, nodes, lb_ocpp, lb_admin), {}
    if log_connections or edit is not None:
        text = path.read_text()
        text = with_connection_log(text) if log_connections else text
        path = workdir / "haproxy-edited.cfg"
        path.write_text(edit(text) if edit is not None else text)
    with (workdir / "haproxy.log").open("wb") as log:
        return subprocess.Popen(
            [haproxy, "-db", "-f", str(path)], env={**os.environ, **env}, stdout=log, stderr=log
        )


async def handshake_from(
    local: str, port: int, charge_point_id: str, password: str | None
) -> int | None:
    """The HTTP status refusing a handshake (Basic auth with ``password`` unless None) to
    ``port`` from address ``local``; None when admitted."""
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=local)
    headers = []
    if password is not None:
        credentials = base64.b64encode(f"{charge_point_id}:{password}".encode())
        headers.append((b"Authorization", b"Basic " + credentials))
    try:
        websocket = await open_client(
            stream,
            f"127.0.0.1:{port}",
            f"/ocpp/{charge_point_id}",
            subprotocols=["ocpp1.6"],
            extra_headers=headers,
        )
    except HandshakeFailed as failed:
        return failed.status_code
    finally:
        with trio.move_on_after(5):
            await stream.aclose()
    del websocket
    return None


async def failed_login_addresses(url: str) -> list[str]:
    """The addresses of the failed logins recorded (written in the background: waited for)."""
    connection = await asyncpg.connect(url)
    try:
        for _ in range(100):
            rows = await connection.fetch("SELECT remote_address FROM security_events")
            if rows:
                return [row["remote_address"] for row in rows]
            await asyncio.sleep(0.1)
        return []
    finally:
        await connection.close()


async def through_the_proxy(
    nodes: list[Node], lb_ocpp: int, lb_admin: int
) -> tuple[set[str], dict[str, Any]]:
    """Chargers connect through the proxy until both nodes hold one (at most 10); the
    instances holding them, and the audit record of a failed sign-in from 127.0.0.41. On the
    way, a charger fails its login from 127.0.0.42."""
    for node in nodes:  # both up, so HAProxy's checks see them within seconds
        await healthy(node.admin_url, within=120)
    await healthy(f"http://127.0.0.1:{lb_admin}")
    with trio.fail_after(60):  # the OCPP backend has a node up (HAProxy answers 503 until)
        async with httpx.AsyncClient() as http:
            while (await http.get(f"http://127.0.0.1:{lb_ocpp}/ocpp/probe")).status_code == 503:
                await trio.sleep(0.2)
    headers = {"Authorization": f"Bearer {CLUSTER_TOKEN}"}
    holders: set[str] = set()
    async with (
        trio.open_nursery() as nursery,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{lb_admin}", headers=headers) as api,
    ):
        for n in range(10):
            charger = await RawCharger.connect(nursery, f"ws://127.0.0.1:{lb_ocpp}/ocpp/LB-{n}")
            answer = await charger.call("BootNotification", BOOT)
            assert answer[2]["status"] == "Accepted"
            detail = (await api.get(f"/api/v1/charge-points/LB-{n}")).json()
            holders.add(detail["instanceId"])
            if len(holders) == 2:
                break
            await trio.sleep(1)  # a node the proxy has not seen healthy yet: soon
        # a charger's failed login, from 127.0.0.42: recorded (and throttled) by its address
        body = {"registrationStatus": "Accepted", "password": "s3cret-s3cret"}
        assert (await api.put("/api/v1/charge-points/LOCKED", json=body)).is_success
        assert await handshake_from("127.0.0.42", lb_ocpp, "LOCKED", "wrong") == 401
        # one let in from 127.0.0.43: its node's log names it, and the proxy it came through
        assert await handshake_from("127.0.0.43", lb_ocpp, "LB-VIA", None) is None
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.41")
        async with httpx.AsyncClient(base_url=api.base_url, transport=transport) as browser:
            wrong = await browser.post("/login", data={"name": "nobody", "password": "x" * 9})
            assert wrong.status_code == 401
        entries = (await api.get("/api/v1/audit", params={"actor": "nobody"})).json()["items"]
        nursery.cancel_scope.cancel()
    return holders, entries[0]


@pytest.mark.parametrize("config", ["haproxy-compose.cfg", "haproxy.cfg"])
def test_haproxy_spreads_chargers_and_forwards_the_operator_address(
    config: str, pg_server: TestPostgres, tmp_path: Path
) -> None:
    """Two nodes behind each shipped HAProxy configuration (the compose variant with its
    service names replaced by loopback ports): chargers land on both nodes, and a node that
    trusts the proxy sees the operator's and the charger's own addresses (X-Forwarded-For)."""
    haproxy = installed_tool("haproxy", "VOLTARO_REQUIRE_HAPROXY")
    url = pg_server.new_database()
    trusted = {"VOLTARO_TRUSTED_PROXIES": "127.0.0.1"}  # where HAProxy connects from here
    nodes = [start_node(name, url, tmp_path, trusted) for name in ("node1", "node2")]
    lb_ocpp, lb_admin = free_port(), free_port()
    proxy = start_proxy(haproxy, config, nodes, lb_ocpp, lb_admin, tmp_path)
    try:
        holders, entry = trio.run(through_the_proxy, nodes, lb_ocpp, lb_admin)
        assert holders == {"node1", "node2"}
        assert entry["action"] == "signIn" and entry["request"] == {"remoteAddress": "127.0.0.41"}
        # the charger's own address, not the proxy's: what the failed-login throttle keys on
        assert run_asyncio(failed_login_addresses(url)) == ["127.0.0.42"]
        logs = "".join((tmp_path / f"{node.name}.log").read_text() for node in nodes)
        assert re.search(r"LB-VIA connected from 127\.0\.0\.43 via 127\.0\.0\.1:\d+", logs)
    finally:
        proxy.terminate()
        for node in nodes:
            node.process.send_signal(signal.SIGTERM)
        for process in [proxy, *(node.process for node in nodes)]:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        pg_server.drop_database(url)


# ---- a node dying under a charger's handshake ----------------------------------------------


async def held_handshake(
    port: int, charge_point_id: str, outcomes: dict[str, int | None], release: trio.Event
) -> None:
    """A charger's handshake through the proxy at ``port``: its outcome into ``outcomes``
    (the HTTP status refusing it; None when admitted). An admitted charger holds its
    connection until ``release``, so that the proxy's least-connections count keeps it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        try:
            await open_client(
                stream, f"127.0.0.1:{port}", f"/ocpp/{charge_point_id}", subprotocols=["ocpp1.6"]
            )
        except HandshakeFailed as failed:
            outcomes[charge_point_id] = failed.status_code
            return
        outcomes[charge_point_id] = None
        await release.wait()
    finally:
        await trio.aclose_forcefully(stream)


async def wait_for_line(path: Path, pattern: str, count: int = 1) -> list[str]:
    """The lines of ``path`` matching ``pattern`` once there are ``count`` of them."""
    with trio.fail_after(60):
        while True:
            lines = [line for line in path.read_text().splitlines() if re.search(pattern, line)]
            if len(lines) >= count:
                return lines
            await trio.sleep(0.1)


HELD = 6  # handshakes in flight: least connections sends about half to the frozen node


async def handshakes_across_a_kill(
    victim: Node, lb_ocpp: int, workdir: Path
) -> tuple[dict[str, int | None], int, list[str]]:
    """Freeze ``victim`` (SIGSTOP: its kernel still accepts connections, nobody answers),
    start ``HELD`` handshakes through the proxy, and once the proxy has marked the victim
    down (every handshake long sent) kill it with -9: the handshakes it held are reset
    unanswered. Each handshake's outcome, how many the proxy had sent to the victim (its
    sessions when marked down), and the proxy's log line of each connection."""
    log = workdir / "haproxy.log"
    outcomes: dict[str, int | None] = {}
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        os.kill(victim.process.pid, signal.SIGSTOP)
        for n in range(HELD):
            nursery.start_soon(held_handshake, lb_ocpp, f"HELD-{n}", outcomes, release)
        down = await wait_for_line(log, rf"voltaro_ocpp/{victim.name} is DOWN")
        victim.kill()
        with trio.fail_after(60):
            while len(outcomes) < HELD:
                await trio.sleep(0.1)
        release.set()
    held = re.search(r"(\d+) sessions active", down[0])
    assert held is not None, down[0]
    return outcomes, int(held[1]), await wait_for_line(log, r'"GET /ocpp/HELD-', HELD)


def stop_all(proxy: subprocess.Popen[bytes] | None, nodes: list[Node]) -> None:
    """Stop the proxy and the nodes still running (a frozen one is woken first)."""
    if proxy is not None:
        proxy.terminate()
    for node in nodes:
        if node.process.poll() is None:
            os.kill(node.process.pid, signal.SIGCONT)
            node.process.send_signal(signal.SIGTERM)
    for process in [*([proxy] if proxy else []), *(node.process for node in nodes)]:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.parametrize("config", ["haproxy-compose.cfg", "haproxy.cfg"])
def test_a_handshake_on_a_node_that_dies_is_sent_to_another(
    config: str, pg_server: TestPostgres, tmp_path: Path
) -> None:
    """A node killed with -9 while chargers' handshakes wait on it (sent, not answered): each
    shipped HAProxy configuration sends those handshakes again, to the node alive, and the
    chargers are let in. Without ``retry-on ... empty-response`` the proxy answered them 502
    Bad Gateway: the failover benchmark's one failed connect (issue 17 (f))."""
    haproxy = installed_tool("haproxy", "VOLTARO_REQUIRE_HAPROXY")
    url = pg_server.new_database()
    nodes = [start_node(name, url, tmp_path) for name in ("node1", "node2")]
    proxy = None
    try:
        for node in nodes:  # up before the proxy starts: its first checks find both up
            trio.run(healthy, node.admin_url, 120)
        lb_ocpp, lb_admin = free_port(), free_port()
        proxy = start_proxy(
            haproxy, config, nodes, lb_ocpp, lb_admin, tmp_path, log_connections=True
        )
        trio.run(healthy, f"http://127.0.0.1:{lb_admin}")
        outcomes, on_victim, lines = trio.run(handshakes_across_a_kill, nodes[0], lb_ocpp, tmp_path)
        assert on_victim > 0  # handshakes were waiting on node1 when it died
        assert outcomes == {f"HELD-{n}": None for n in range(HELD)}, "\n".join(lines)
        assert all(" voltaro_ocpp/node2 " in line for line in lines), "\n".join(lines)
    finally:
        stop_all(proxy, nodes)
        pg_server.drop_database(url)


# ---- an operator's request on a node that dies --------------------------------------------


def admin_to_the_first_node(config: str) -> str:
    """The admin backend sending every request to node1 while it is up (``balance first``),
    so that the test knows which requests the node that dies holds."""
    old = "backend voltaro_admin\n    balance roundrobin\n"
    assert config.count(old) == 1
    return config.replace(old, "backend voltaro_admin\n    balance first\n")


async def requests_across_a_kill(victim: Node, lb_admin: int, workdir: Path) -> dict[str, int]:
    """Freeze ``victim``, send three GETs and two POSTs through the proxy's admin port (all
    to the victim: ``balance first``), kill it with -9 once the proxy has marked it down;
    each request's status."""
    outcomes: dict[str, int] = {}

    async def send(name: str, method: str) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{lb_admin}") as http:
            answer = await http.request(method, "/healthz", timeout=60)
            outcomes[name] = answer.status_code

    async with trio.open_nursery() as nursery:
        os.kill(victim.process.pid, signal.SIGSTOP)
        for n in range(3):
            nursery.start_soon(send, f"GET-{n}", "GET")
        for n in range(2):
            nursery.start_soon(send, f"POST-{n}", "POST")
        await wait_for_line(workdir / "haproxy.log", rf"voltaro_admin/{victim.name} is DOWN")
        victim.kill()
    return outcomes


@pytest.mark.parametrize("config", ["haproxy-compose.cfg", "haproxy.cfg"])
def test_an_operators_read_on_a_node_that_dies_is_sent_to_another_a_command_is_not(
    config: str, pg_server: TestPostgres, tmp_path: Path
) -> None:
    """A node killed with -9 while operators' requests wait on it: each shipped HAProxy
    configuration sends the reads (GET) again to the node alive, and answers the others
    502 rather than carry out a command twice."""
    haproxy = installed_tool("haproxy", "VOLTARO_REQUIRE_HAPROXY")
    url = pg_server.new_database()
    nodes = [start_node(name, url, tmp_path) for name in ("node1", "node2")]
    proxy = None
    try:
        for node in nodes:
            trio.run(healthy, node.admin_url, 120)
        lb_ocpp, lb_admin = free_port(), free_port()
        proxy = start_proxy(
            haproxy, config, nodes, lb_ocpp, lb_admin, tmp_path, edit=admin_to_the_first_node
        )
        trio.run(healthy, f"http://127.0.0.1:{lb_admin}")
        outcomes = trio.run(requests_across_a_kill, nodes[0], lb_admin, tmp_path)
        # the node alive answered each GET; a POST replayed to it would have been answered 405
        assert outcomes == {"GET-0": 200, "GET-1": 200, "GET-2": 200, "POST-0": 502, "POST-1": 502}
    finally:
        stop_all(proxy, nodes)
        pg_server.drop_database(url)
