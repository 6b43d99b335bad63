"""The README's first charging session, run as written: the block after its
``<!-- first-session -->`` marker, in a shell in an empty directory, with this install's
console scripts (``voltaro`` of the virtual environment running the tests) first on PATH.

One change is made to the block, and only this one: its ports (9000 for chargers, 8080 for
the admin API) become free ones, given to the server as ``VOLTARO_OCPP_PORT`` and
``VOLTARO_ADMIN_PORT``, because other servers on a shared machine may hold the defaults.
The block must end well (``set -eu``: every step succeeds), and what an operator would then
see must be there: charging sessions with energy in the API and on the dashboard.

And every charge point a CLI or curl example of the README names is one that the first
session creates, or that the example block itself adds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- first-session -->"
FENCED = re.compile(r"```sh\n(.*?)\n```", re.S)
BLOCK_SECONDS = 150  # the block runs ~40 s alone (30 s of it the simulation)


def first_session_block(readme: str) -> str:
    """The fenced ``sh`` block right after the marker."""
    assert readme.count(MARKER) == 1, f"README.md needs exactly one {MARKER}"
    after = readme.split(MARKER, 1)[1]
    match = FENCED.match(after.lstrip("\n"))
    assert match is not None, f"no ```sh block right after {MARKER}"
    return match.group(1)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """An empty directory outside pytest's own temporary tree: run as root, the embedded
    PostgreSQL runs as another user, which must traverse the path to its data, and every
    pytest session that starts (other test runs on the machine) makes that tree private
    again."""
    path = Path(tempfile.mkdtemp(prefix="voltaro-readme-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def shell_blocks(script: str, cwd: Path, env: dict[str, str], seconds: float) -> Iterator[str]:
    """Run ``script`` (README blocks) with ``bash -eu`` in a process group of its own, and
    yield what it printed once it exited 0 within ``seconds``; what it left running (a
    server, nodes, a proxy) is stopped when the block ends."""
    shell = subprocess.Popen(
        ["bash", "-c", "set -eu\n" + script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        try:
            out, err = shell.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            shell.kill()
            out, err = shell.communicate()
            pytest.fail(f"the blocks did not finish in {seconds} s:\n{out}\n{err}")
        assert shell.returncode == 0, f"the blocks failed:\n{out}\n{err}"
        yield out
    finally:
        stop_group(shell.pid)


def stop_group(group: int) -> None:
    """Stop what the block left running (the server, in the shell's process group: the
    embedded PostgreSQL is in a session of its own and stops with the server)."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(group, signal.SIGKILL)


def test_the_first_charging_session_runs_as_written(workdir: Path) -> None:
    scripts = Path(sys.executable).parent
    assert (scripts / "voltaro").is_file(), "the install's console script"
    ocpp, admin = free_port(), free_port()
    block = first_session_block(README.read_text())
    for default in ("127.0.0.1:9000", "127.0.0.1:8080"):
        assert default in block  # the block as the README has it
    script = block.replace("127.0.0.1:9000", f"127.0.0.1:{ocpp}")
    script = script.replace("127.0.0.1:8080", f"127.0.0.1:{admin}")
    env = {name: value for name, value in os.environ.items() if not name.startswith("VOLTARO_")}
    env |= {
        "PATH": f"{scripts}{os.pathsep}{env.get('PATH', '')}",
        "VOLTARO_OCPP_PORT": str(ocpp),
        "VOLTARO_ADMIN_PORT": str(admin),
    }
    with shell_blocks(script, workdir, env, BLOCK_SECONDS) as out:
        demo = workdir / "voltaro-demo"
        log = (demo / "voltaro.log").read_text()
        assert f"chargers connect to ws://127.0.0.1:{ocpp}/ocpp/{{chargePointId}}" in out
        assert f"admin API token: in {demo / 'voltaro-data' / 'admin-token'}" in log

        # what the commands printed: two Accepted charge points, sessions, no errors
        started = re.search(r"^sessions +(\d+) started", out, re.M)
        assert started is not None and int(started.group(1)) > 0, out
        assert re.search(r"^errors +0$", out, re.M), out
        for charger in ("SIM-000001", "SIM-000002"):
            assert re.search(rf"^{charger} +Accepted ", out, re.M), out
        shown = json.loads(out[out.rindex('{"items"') :])["items"]  # the curl at the end
        assert {item["chargePointId"] for item in shown} == {"SIM-000001"}

        # the API: transactions with energy
        token = (demo / "voltaro-data" / "admin-token").read_text().strip()
        base = f"http://127.0.0.1:{admin}"
        listed = httpx.get(
            f"{base}/api/v1/transactions?limit=1000",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        assert 0 < len(items) <= int(started.group(1))
        assert sum(item["energyWh"] or 0 for item in items) > 0, items

        # the dashboard, signed in with that token: energy today above zero
        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            overview = browser.post("/login", data={"token": token, "next": "/"})
            assert overview.status_code == 200, overview.text
        today = re.search(
            r'class="n">([\d,.]+) kWh</span><span class="l">energy today', overview.text
        )
        assert today is not None, overview.text
        assert float(today.group(1).replace(",", "")) > 0


# A charge point id in an example: the argument after `voltaro command ACTION` or
# `voltaro chargepoint accept|reject|remove|add` (not an option), or the path segment after
# /charge-points/.
NAMED = re.compile(
    r"voltaro command \w+ (?P<command>[^\s\\]+)"
    r"|voltaro chargepoint (?:accept|reject|remove|add) (?P<cli>[^\s\\-][^\s\\]*)"
    r"|/charge-points/(?P<url>[^/\s'\"?\\]+)"
)


def test_examples_name_charge_points_that_exist() -> None:
    readme = README.read_text()
    created = set(re.findall(r"for cp in ([^;]+);", first_session_block(readme))[0].split())
    assert created == {"SIM-000001", "SIM-000002"}
    for block in FENCED.findall(readme):
        added = set(re.findall(r"voltaro chargepoint add ([^\s\\]+)", block))
        for match in NAMED.finditer(block):
            name = next(value for value in match.groups() if value is not None)
            if name in ("$cp", "ID"):
                continue
            assert name in created | added, f"{name!r} in an example: no step creates it"
