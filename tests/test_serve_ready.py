"""What ``voltaro serve`` tells an operator at every start: where the admin token is (an
absolute path, with how to use it) and, once ready, a URL a charger can be given (not the
bind address ``0.0.0.0``) and the dashboard's. Each is checked by using it: the token from
the logged path opens the API, a charger boots at the logged URL."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from tests.harness import RawCharger
from voltaro.urls import charger_urls, reachable

READY = re.compile(r"Voltaro is ready: (.*)")
TOKEN_USAGE = re.compile(r"admin API token: in (\S+); .*Authorization: Bearer \$\(cat (\S+)\)")


@contextmanager
def serving(workdir: Path, database_url: str, *flags: str) -> Iterator[str]:
    """``voltaro serve`` run in ``workdir`` (data directory ``./voltaro-data``, relative),
    listening on every interface; yields its log once it is ready."""
    env = {
        **os.environ,
        "VOLTARO_DATABASE_URL": database_url,
        "VOLTARO_UNKNOWN_CHARGERS": "accept",
    }
    for name in ("VOLTARO_DATA_DIR", "VOLTARO_ADMIN_TOKEN", "VOLTARO_OCPP_HOST"):
        env.pop(name, None)
    log_file = workdir / "serve.log"
    argv = [sys.executable, "-m", "voltaro", "serve", "--ocpp-port", "0", "--admin-port", "0"]
    with log_file.open("ab") as log:
        process = subprocess.Popen([*argv, *flags], env=env, cwd=workdir, stdout=log, stderr=log)
    try:
        for _ in range(1200):
            text = log_file.read_text(errors="replace")
            if READY.search(text):
                yield text
                break
            assert process.poll() is None, f"voltaro serve exited early:\n{text}"
            trio.run(trio.sleep, 0.05)
        else:
            raise TimeoutError(f"voltaro serve did not become ready:\n{text}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        log_file.unlink()


async def boot(url: str) -> list[object]:
    async with trio.open_nursery() as nursery:
        charger = await RawCharger.connect(nursery, url)
        answer = await charger.call(
            "BootNotification", {"chargePointVendor": "Demo", "chargePointModel": "One"}
        )
        await charger.websocket.aclose()
    return answer


def test_each_start_says_where_the_token_is_and_where_to_connect(
    tmp_path: Path, database_url: str
) -> None:
    token_file = tmp_path / "voltaro-data" / "admin-token"
    for start in ("first", "second"):  # the second reads the token back: still said
        with serving(tmp_path, database_url) as log:
            usage = TOKEN_USAGE.search(log)
            assert usage is not None, log
            assert usage.group(1) == usage.group(2) == str(token_file), start
            token = Path(usage.group(1)).read_text().strip()
            # the token itself: shown by the start that made it, logged by none
            assert log.count(token) == (1 if start == "first" else 0)
            ready = READY.search(log)
            assert ready is not None
            line = ready.group(1)
            assert "0.0.0.0" not in line
            charger = re.search(
                r"chargers connect to (ws://127\.0\.0\.1:\d+/ocpp/)\{chargePointId\}", line
            )
            assert charger is not None, line
            hostname = socket.gethostname()
            if hostname not in ("", "localhost"):  # a name other machines might know it by
                assert f"; from other machines ws://{hostname}:" in line
            dashboard = re.search(r"; dashboard (http://127\.0\.0\.1:\d+/)$", line)
            assert dashboard is not None, line

            answer = trio.run(boot, charger.group(1) + f"READY-{start}")
            assert answer[0] == 3 and answer[2]["status"] == "Accepted", answer
            response = httpx.get(
                dashboard.group(1) + "api/v1/charge-points",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
            assert f"READY-{start}" in {item["chargePointId"] for item in response.json()["items"]}


def test_a_configured_token_is_named_not_shown(tmp_path: Path, database_url: str) -> None:
    token = "configured-token-0123456789"
    with serving(tmp_path, database_url, "--admin-token", token, "--ocpp-host", "127.0.0.1") as log:
        assert "admin API token: the configured one (VOLTARO_ADMIN_TOKEN or --admin-token)" in log
        assert token not in log
        ready = READY.search(log)
        assert ready is not None
        assert "from other machines" not in ready.group(1)  # one interface: its address
        assert re.match(r"chargers connect to ws://127\.0\.0\.1:\d+/ocpp/", ready.group(1))
    assert not (tmp_path / "voltaro-data" / "admin-token").exists()


def test_bind_addresses_become_addresses_to_connect_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "depot-7")
    assert charger_urls("0.0.0.0", 9000, tls=False) == (
        "ws://127.0.0.1:9000/ocpp/{chargePointId}",
        "ws://depot-7:9000/ocpp/{chargePointId}",
    )
    assert charger_urls("::", 9443, tls=True)[0] == "wss://[::1]:9443/ocpp/{chargePointId}"
    assert charger_urls("10.0.0.5", 9000, tls=False) == (
        "ws://10.0.0.5:9000/ocpp/{chargePointId}",
        None,
    )
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    assert charger_urls("0.0.0.0", 9000, tls=False)[1] is None
    assert reachable("http://0.0.0.0:8080") == "http://127.0.0.1:8080"
    assert reachable("http://[::]:8080") == "http://[::1]:8080"
    assert reachable("http://192.168.1.2:8080") == "http://192.168.1.2:8080"
