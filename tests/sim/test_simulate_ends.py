"""How ``voltaro simulate`` starts and ends, as an operator meets it: a URL that is not a
WebSocket one, a Central System out of reach, Ctrl-C (a real subprocess and a real SIGINT),
and the normal end, where every charger closes with 1000 (seen by a real Voltaro)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import asyncpg
import pytest

from tests.e2e import start_voltaro_with_loop
from tests.sim.helpers import base_url
from tests.threaded import trio_in_thread
from voltaro.app import Voltaro
from voltaro.cli import build_parser, main
from voltaro.config import Settings

QUICK = ["--profile", "stress", "--time-scale", "50", "--connect-window", "0.1", "--quiet"]


@pytest.fixture
def voltaro(voltaro_settings: Settings) -> Iterator[Voltaro]:
    """A Voltaro on a thread that registers any charger."""
    settings = dataclasses.replace(
        voltaro_settings,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        admin_port=0,
        unknown_chargers="accept",
    )
    with trio_in_thread(lambda nursery: nursery.start(start_voltaro_with_loop, settings)) as v:
        yield v


def closes(settings: Settings, prefix: str, count: int) -> list[str]:
    """How the connections of the chargers ``prefix*`` ended, as the server recorded it
    (waiting, a few seconds at most, until ``count`` are recorded)."""

    async def fetch() -> list[str]:
        connection = await asyncpg.connect(settings.database_url)
        try:
            for _ in range(200):
                rows = await connection.fetch(
                    "SELECT reason FROM presence_events WHERE NOT online"
                    " AND charge_point_id LIKE $1 ORDER BY id",
                    prefix + "%",
                )
                if len(rows) >= count:
                    break
                await asyncio.sleep(0.05)
            return [row["reason"] for row in rows]
        finally:
            await connection.close()

    return asyncio.run(fetch())


def free_port() -> int:
    """A port nobody listens on (bound and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_url_that_is_not_a_websocket_one_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "--url", "http://127.0.0.1:9000/ocpp", "--duration", "1"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and out == ""
    assert "use ws:// or wss://" in err and "not http://" in err


def test_a_central_system_out_of_reach_is_one_line_and_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ocpp"
    assert main(["simulate", "--url", url, "--duration", "1", *QUICK]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"voltaro simulate: cannot reach the Central System at 127.0.0.1:{port}"
        " (Connection refused): is it running?\n"
    )


def test_every_option_has_help() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    simulate = commands.choices["simulate"]
    options = [a for a in simulate._actions if a.option_strings and a.dest != "help"]
    assert {"chargers", "connectors", "duration", "profile"} <= {a.dest for a in options}
    assert [a.dest for a in options if not a.help or a.help == argparse.SUPPRESS] == []


def test_at_the_normal_end_every_charger_closes_with_1000(
    voltaro: Voltaro, voltaro_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    for charger in range(1, 4):  # the tags the chargers charge with, known: sessions start
        for connector in (1, 2):
            tag = f"END-{charger:06d}-{connector}"
            assert main(["idtag", "add", tag, "--database-url", voltaro_settings.database_url]) == 0
    argv = ["simulate", "--url", base_url(voltaro), "--duration", "2", "--chargers", "3"]
    argv += ["--connectors", "2"]
    assert main([*argv, "--id-prefix", "END-", *QUICK]) == 0
    assert "chargers          3" in capsys.readouterr().out
    assert closes(voltaro_settings, "END-", 3) == ["disconnected: code 1000"] * 3


def read_stderr(process: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    def read() -> None:
        assert process.stderr is not None
        lines.extend(iter(process.stderr.readline, ""))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_prints_the_summary_and_exits_130(
    voltaro: Voltaro, voltaro_settings: Settings, workers: int
) -> None:
    """A real SIGINT to a real ``voltaro simulate``: what ran is summed up, the chargers
    close normally, exit code 130, no traceback (with worker processes too)."""
    prefix = f"INT{workers}-"
    argv = ["simulate", "--url", base_url(voltaro), "--duration", "120", "--chargers", "4"]
    argv += ["--id-prefix", prefix, "--workers", str(workers)]
    argv += ["--profile", "stress", "--time-scale", "50", "--connect-window", "0.1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "voltaro", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = read_stderr(process, lines)
    try:
        deadline = time.monotonic() + 60
        while not any("connected 4/4" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(10)
    err = "".join(lines)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Exception" not in err, err
    assert out.startswith("interrupted (Ctrl-C): the summary of what ran\n")
    assert "chargers          4" in out
    assert "accepted (booted) 4" in out
    assert closes(voltaro_settings, prefix, 4) == ["disconnected: code 1000"] * 4


def test_no_charger_connected_is_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    """Something listens, but no WebSocket handshake ever completes there."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def hang_up() -> None:
            with contextlib.suppress(OSError):
                while True:
                    server.accept()[0].close()

        threading.Thread(target=hang_up, daemon=True).start()
        url = f"ws://127.0.0.1:{port}/ocpp"
        assert main(["simulate", "--url", url, "--duration", "1.5", "--chargers", "2", *QUICK]) == 1
    out, err = capsys.readouterr()
    assert "chargers          2" in out
    assert err.startswith(f"voltaro simulate: no charger could connect to {url} (")
