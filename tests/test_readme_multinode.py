"""The README's "Running several nodes" walk, run as written: its three ``sh`` blocks (three
nodes and HAProxy; a fleet, a command through each node and a node killed with -9; the
accounting of what was answered against what was stored) in one shell, in a directory whose
``deploy`` is the repository's, with this install's console scripts first on PATH.

What the test changes in the blocks, and only this: the database URL becomes a fresh test
database (the embedded test PostgreSQL instead of the reader's own); every port (9000, 8080,
9101-9103, 8181-8183) becomes a free one, since other servers on a shared machine may hold
them; the simulator runs 45 s instead of 600; and between the second block and the third
the shell waits for the simulator (job %5), where the README's reader waits for it to end.
The blocks must end well (``set -eu``), and what they print must be what the README says:
chargers on each node, every charger of the killed one connected again, the commands
answered, and no answered message missing from the database.

Without HAProxy the test skips, unless ``VOLTARO_REQUIRE_HAPROXY=1`` (CI installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_readme_path import shell_blocks
from tests.tools import installed_tool
from voltaro.store.embedded import _import_pgserver
from voltaro.store.testing import TestPostgres, pg_server

__all__ = ["pg_server"]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCED = re.compile(r"```sh\n(.*?)\n```", re.S)
README_URL = "postgresql://voltaro:PASSWORD@127.0.0.1/voltaro"
BLOCK_SECONDS = 400  # ~50 s alone: 45 s of simulation, the nodes' starts, two waits


def multinode_blocks(readme: str) -> list[str]:
    """The fenced ``sh`` blocks of the section "Running several nodes"."""
    section = readme.split("### Running several nodes", 1)[1].split("\n## ", 1)[0]
    return FENCED.findall(section)


def free_ports(count: int) -> list[int]:
    """``count`` ports free now (held together while chosen, so all differ)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_triple(start: int) -> int:
    """The first number ``base`` from ``start`` with ports ``base*10 + 1`` to ``+ 3`` free,
    for a loop that writes its ports as ``910$n``."""
    for base in range(start, 6500):
        probes: list[socket.socket] = []
        try:
            for n in (1, 2, 3):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", base * 10 + n))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    pytest.fail("no three free ports in a row")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory of its own with the repository's ``deploy`` in it (the README's shell
    runs in the repository)."""
    path = Path(tempfile.mkdtemp(prefix="voltaro-readme-nodes-"))
    (path / "deploy").symlink_to(ROOT / "deploy")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def counts(out: str) -> list[Counter[str]]:
    """The ``sort | uniq -c`` counts of ``"instanceId":"..."`` printed, one Counter per curl
    (nothing is printed between the two: a count starts again where the names do)."""
    found: list[Counter[str]] = []
    last = ""
    for match in re.finditer(r'^\s+(\d+) "instanceId":"([^"]+)"$', out, re.M):
        held, name = int(match.group(1)), match.group(2)
        if not found or name <= last:
            found.append(Counter())
        found[-1][name] = held
        last = name
    return found


def answered(fleet: str, action: str) -> int:
    """The count of ``action`` in the simulator's summary table."""
    match = re.search(rf"^{action} +(\d+) ", fleet, re.M)
    assert match is not None, fleet
    return int(match.group(1))


def test_the_multinode_walk_runs_as_written(pg_server: TestPostgres, workdir: Path) -> None:
    installed_tool("haproxy", "VOLTARO_REQUIRE_HAPROXY")
    scripts = Path(sys.executable).parent
    assert (scripts / "voltaro").is_file(), "the install's console script"
    blocks = multinode_blocks(README.read_text())
    assert len(blocks) == 3, blocks
    script = "\n".join([blocks[0], blocks[1], "wait %5", blocks[2]])
    for as_written in (README_URL, "910$n", "818$n", "--duration 600", ":9000", ":8080"):
        assert as_written in script  # the blocks as the README has them

    url = pg_server.new_database()
    lb_ocpp, lb_admin = free_ports(2)
    ocpp_base = free_triple(4400)
    admin_base = free_triple(ocpp_base + 1)
    # the ports first: the URL (a temporary directory's name) may hold any digits
    script = script.replace("910", str(ocpp_base)).replace("818", str(admin_base))
    script = script.replace("9000", str(lb_ocpp)).replace("8080", str(lb_admin))
    script = script.replace(README_URL, f"'{url}'").replace("--duration 600", "--duration 45")
    psql = Path(_import_pgserver().__file__).parent / "pginstall" / "bin"
    env = {name: value for name, value in os.environ.items() if not name.startswith("VOLTARO_")}
    env["PATH"] = f"{scripts}{os.pathsep}{env.get('PATH', '')}{os.pathsep}{psql}"
    try:
        with shell_blocks(script, workdir, env, BLOCK_SECONDS) as out:
            # the command through each node: answered by the charger, wherever it is
            assert out.count('"status": "Accepted"') == 3, out
            # before the kill chargers on each node; after it, node 2's chargers came back
            # through the proxy (how many of them by the second count depends on the machine's
            # load: the simulator's reconnects say it, at the end)
            before, after = counts(out)
            assert len(before) == 3 and len(after) >= 2, out
            node2 = next(name for name in before if name.endswith(f":{ocpp_base}2"))

            # the accounting: every answered message stored, no error
            fleet = (workdir / "fleet.txt").read_text()
            assert re.search(r"^errors +0$", fleet, re.M), fleet
            reconnects = re.search(r"^reconnects +(\d+),", fleet, re.M)
            assert reconnects is not None and int(reconnects.group(1)) >= before[node2], fleet
            stored = re.findall(r"^\s*(\d+)\s*$", out, re.M)  # psql's one-value rows, in order
            meter_values = int(stored[0])
            started, stopped = (int(n) for n in re.findall(r"^\s*(\d+) \|\s+(\d+)$", out, re.M)[0])
            assert meter_values >= answered(fleet, "MeterValues") > 0
            assert started >= answered(fleet, "StartTransaction") > 0
            assert stopped >= answered(fleet, "StopTransaction")
    finally:
        pg_server.drop_database(url)
