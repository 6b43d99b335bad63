"""``voltaro serve --workers N``: worker processes on one OCPP port, one admin API, one
embedded PostgreSQL owned by the parent. Real processes, real sockets: a worker killed with
SIGKILL is started again and its chargers are served after they reconnect; SIGTERM closes
every charger with 1001 and the whole process tree exits 0; a worker whose parent is killed
stops; a port in use stops the start before anything else."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import ConnectionClosed

from tests.harness import RawCharger, admit_everyone
from voltaro import cli
from voltaro.config import CannotStart, Settings, settings_env
from voltaro.supervisor import RestartDelays, exit_description
from voltaro.transport.server import OcppServer, ServerOptions, reserve_shared_port

READY = re.compile(
    r"Voltaro is ready: chargers connect to ws://[^:]+:(\d+)/\S+ \(2 workers; admin API (\S+)\)"
)
BOOT = {"chargePointVendor": "Test", "chargePointModel": "Workers"}
WAIT = 30.0  # seconds any one expected log line or state may take (a generous bound)


@dataclasses.dataclass
class Installation:
    """A ``voltaro serve --workers 2`` process tree, read through its log."""

    process: subprocess.Popen[bytes]
    log_file: Path
    data_dir: Path
    port: int = 0
    admin_url: str = ""

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    async def wait_for(self, pattern: str, after: int = 0) -> re.Match[str]:
        """The first match of ``pattern`` in the log from character ``after`` on."""
        with trio.fail_after(WAIT):
            while True:
                match = re.compile(pattern).search(self.log(), after)
                if match:
                    return match
                if self.process.poll() is not None:
                    raise AssertionError(f"voltaro exited early:\n{self.log()}")
                await trio.sleep(0.05)

    def worker_pid(self, index: int) -> int:
        return int(re.findall(rf"worker {index} ready \(pid (\d+)\)", self.log())[-1])

    def url(self, charge_point_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charge_point_id}"


@asynccontextmanager
async def installation(
    tmp_path: Path, database_url: str | None = None
) -> AsyncIterator[Installation]:
    """``voltaro serve --workers 2``, with the embedded PostgreSQL unless ``database_url``."""
    env = {
        **os.environ,
        "VOLTARO_OCPP_HOST": "127.0.0.1",
        "VOLTARO_OCPP_PORT": "0",
        "VOLTARO_ADMIN_PORT": "0",
        "VOLTARO_UNKNOWN_CHARGERS": "accept",
        "VOLTARO_DATA_DIR": str(tmp_path / "data"),
        "VOLTARO_WORKERS": "2",
    }
    env.pop("VOLTARO_DATABASE_URL", None)  # the parent starts the embedded one
    if database_url is not None:
        env["VOLTARO_DATABASE_URL"] = database_url
    log_file = tmp_path / "voltaro.log"
    with log_file.open("ab") as out:
        process = subprocess.Popen(  # a process group of its own, as in a terminal
            [sys.executable, "-m", "voltaro", "serve"],
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    tree = Installation(process, log_file, tmp_path / "data")
    try:
        ready = await tree.wait_for(READY.pattern)
        tree.port, tree.admin_url = int(ready[1]), ready[2]
        yield tree
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in re.findall(r"worker \d ready \(pid (\d+)\)", tree.log()):
            _kill_if_alive(int(pid))


def _kill_if_alive(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive: its parent has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def booted(nursery: trio.Nursery, tree: Installation, charge_point_id: str) -> RawCharger:
    charger = await RawCharger.connect(nursery, tree.url(charge_point_id))
    answer = await charger.call("BootNotification", BOOT)
    assert answer[0] == 3 and answer[2]["status"] == "Accepted", answer
    return charger


async def on_both_workers(
    nursery: trio.Nursery, tree: Installation, prefix: str
) -> tuple[dict[str, RawCharger], dict[str, str]]:
    """Chargers ``<prefix>-0``, ``-1``, ... booted until both workers hold some: the chargers,
    and the worker (``w0``, ``w1``) each is on."""
    chargers: dict[str, RawCharger] = {}
    on: dict[str, str] = {}
    while len(set(on.values())) < 2:
        assert len(chargers) < 40, f"the kernel gave every charger to one worker: {on}"
        charge_point_id = f"{prefix}-{len(chargers)}"
        chargers[charge_point_id] = await booted(nursery, tree, charge_point_id)
        await tree.wait_for(rf"{charge_point_id} connected")
        on[charge_point_id] = holder(tree, charge_point_id)
    return chargers, on


def holder(tree: Installation, charge_point_id: str, after: int = 0) -> str:
    """The worker (``w0``, ``w1``) that logged the charger's connection after ``after``."""
    found = re.compile(rf"\[(w\d)\] voltaro.transport: {charge_point_id} connected").findall(
        tree.log()[after:]
    )
    assert found, f"no worker logged {charge_point_id} connecting"
    return str(found[-1])


async def test_workers_share_the_port_survive_a_kill_and_stop_with_1001(tmp_path: Path) -> None:
    async with installation(tmp_path) as tree, trio.open_nursery() as nursery:
        async with httpx.AsyncClient() as http:
            health = await http.get(f"{tree.admin_url}/healthz")
        assert health.status_code == 200, health.text
        for index in (0, 1):  # each worker is an instance of its own
            assert f"instance {socket.gethostname()}:{tree.port}/w{index}," in tree.log()

        chargers, on = await on_both_workers(nursery, tree, "WK")

        victim = tree.worker_pid(1)
        mark = len(tree.log())
        os.kill(victim, signal.SIGKILL)
        await tree.wait_for(
            rf"worker 1 \(pid {victim}\) exited: killed by SIGKILL; restarting it in", mark
        )
        # its chargers lost their connection; they reconnect at once (to worker 0 while
        # worker 1 is away) and are served
        dropped = [cp for cp, worker in on.items() if worker == "w1"]
        for charge_point_id in dropped:
            with pytest.raises(ConnectionClosed), trio.fail_after(WAIT):
                await chargers[charge_point_id].websocket.get_message()
            chargers[charge_point_id] = await booted(nursery, tree, charge_point_id)
            answer = await chargers[charge_point_id].call("Heartbeat", {})
            assert answer[0] == 3 and "currentTime" in answer[2], answer
        await tree.wait_for(r"worker 1 ready \(pid \d+\)", mark)
        assert tree.worker_pid(1) != victim
        # the restarted worker serves chargers too
        restarted_serves = False
        for number in range(40):
            charge_point_id = f"WK-new-{number}"
            chargers[charge_point_id] = await booted(nursery, tree, charge_point_id)
            await tree.wait_for(rf"{charge_point_id} connected", mark)
            if holder(tree, charge_point_id, mark) == "w1":
                restarted_serves = True
                break
        assert restarted_serves, "no new charger was served by the restarted worker"

        workers = [tree.worker_pid(0), tree.worker_pid(1)]
        tree.process.send_signal(signal.SIGTERM)
        for charge_point_id, charger in chargers.items():
            with pytest.raises(ConnectionClosed) as closed, trio.fail_after(WAIT):
                while True:
                    await charger.websocket.get_message()
            assert closed.value.reason.code == 1001, (charge_point_id, closed.value.reason)
        with trio.fail_after(WAIT):
            while tree.process.poll() is None:
                await trio.sleep(0.05)
        assert tree.process.returncode == 0, tree.log()
        assert not [pid for pid in workers if _alive(pid)]
        assert "Voltaro stopped" in tree.log()
        # the parent owned the embedded PostgreSQL, and stopped it
        assert not (tree.data_dir / "pg" / "postmaster.pid").exists()
        nursery.cancel_scope.cancel()


async def test_a_worker_whose_parent_is_killed_stops(tmp_path: Path, database_url: str) -> None:
    # a database of the test server: an embedded one would outlive its killed owner
    async with installation(tmp_path, database_url) as tree:
        workers = [tree.worker_pid(0), tree.worker_pid(1)]
        tree.process.kill()
        with trio.fail_after(WAIT):
            while [pid for pid in workers if _alive(pid)]:
                await trio.sleep(0.05)
        assert tree.log().count("the parent process is gone") == 2, tree.log()


async def test_ctrl_c_stops_every_process_cleanly(tmp_path: Path, database_url: str) -> None:
    # Ctrl-C in a terminal: SIGINT to the whole process group, so each worker hears SIGINT
    # and then the parent's SIGTERM; neither kills it on its way out
    async with installation(tmp_path, database_url) as tree:
        workers = [tree.worker_pid(0), tree.worker_pid(1)]
        os.killpg(tree.process.pid, signal.SIGINT)
        with trio.fail_after(WAIT):
            while tree.process.poll() is None:
                await trio.sleep(0.05)
        assert tree.process.returncode == 0, tree.log()
        for index, pid in enumerate(workers):
            assert f"worker {index} (pid {pid}) stopped: exit code 0" in tree.log(), tree.log()


def test_workers_start_only_on_a_free_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CannotStart):
            reserve_shared_port("127.0.0.1", port)
        flags = ["--ocpp-host", "127.0.0.1", "--ocpp-port", str(port), "--workers", "2"]
        assert cli.main(["serve", *flags, "--data-dir", str(tmp_path / "data")]) == 2
        err = capsys.readouterr().err
        assert f"error: cannot listen for chargers on 127.0.0.1:{port}:" in err
        assert "Traceback" not in err
    assert not (tmp_path / "data").exists()  # failed before starting the database


async def test_servers_with_reuse_port_listen_on_one_port() -> None:
    holders, port = reserve_shared_port("127.0.0.1", 0)
    options = ServerOptions(host="127.0.0.1", port=port, reuse_port=True)
    servers = [OcppServer(options, admit_everyone, _no_session) for _ in range(2)]
    try:
        for server in servers:
            await server.listen()
            assert server.port == port
        with socket.socket() as plain, pytest.raises(OSError):  # not shared with others
            plain.bind(("127.0.0.1", port))
    finally:
        for holder_socket in holders:
            holder_socket.close()
        async with trio.open_nursery() as nursery:  # run() takes over and closes the sockets
            for server in servers:
                await nursery.start(server.run)
            nursery.cancel_scope.cancel()


async def _no_session(connection: object) -> None:
    raise AssertionError("no charger connects in this test")


def test_settings_travel_to_the_workers_whole() -> None:
    settings = Settings(
        ocpp_port=0,
        call_timeout=12.5,
        data_dir=Path("/somewhere/data"),
        database_url="postgresql://u@h/db",
        instance_id="site-a",
        message_log_max_payload=4096,
        workers=3,
    )
    assert Settings.from_env(settings_env(settings)) == settings
    assert Settings.from_env(settings_env(Settings())) == Settings()


def test_restarts_back_off_while_a_worker_keeps_failing_and_not_after_a_long_run() -> None:
    delays = RestartDelays()
    assert [delays.after_run(0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert delays.after_run(3600) == 1
    assert delays.after_run(2) == 2
    assert exit_description(-9) == "killed by SIGKILL"
    assert exit_description(2) == "exit code 2"


async def test_the_parents_admin_api_reaches_chargers_on_every_worker(
    tmp_path: Path, database_url: str
) -> None:
    async with installation(tmp_path, database_url) as tree, trio.open_nursery() as nursery:
        token = (tree.data_dir / "admin-token").read_text().strip()
        chargers, on = await on_both_workers(nursery, tree, "CMD")

        async def answer(charger: RawCharger) -> None:
            frame = await charger.receive(timeout=WAIT)
            await charger.send([3, frame[1], {"status": "Accepted"}])

        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=tree.admin_url, headers=headers) as http:
            for worker in ("w0", "w1"):
                charge_point_id = next(cp for cp, held in on.items() if held == worker)
                nursery.start_soon(answer, chargers[charge_point_id])
                sent = await http.post(
                    f"/api/v1/charge-points/{charge_point_id}/commands/Reset",
                    json={"type": "Soft"},
                )
                assert sent.status_code == 200, (worker, sent.text)
                assert sent.json() == {"result": {"status": "Accepted"}}
            # the parent's /metrics covers every worker, each sample labelled with its process
            scraped = await http.get("/metrics")
        assert scraped.status_code == 200, scraped.text
        families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
        assert [s.value for s in families["voltaro_workers_answering"].samples] == [2]
        connected = {
            s.labels["process"]: s.value for s in families["voltaro_connected_chargers"].samples
        }
        held = Counter(on.values())
        assert connected == {"admin": 0, "w0": held["w0"], "w1": held["w1"]}, connected
        resets = {
            s.labels["process"]
            for s in families["voltaro_ocpp_frames"].samples
            if s.labels.get("action") == "Reset"
        }
        assert resets == {"w0", "w1"}
        nursery.cancel_scope.cancel()
