"""The benchmark command with tiny numbers: it runs, and writes its JSON and its table.
(No timing is asserted: benchmarks are not tests.)"""

from __future__ import annotations

import argparse
import json
import os
import resource
from pathlib import Path

from benchmarks.run import id_tags, main, open_file_limit, scale_prefix, step_outcome
from voltaro.sim.charger import default_id_tag
from voltaro.sim.fleet import charger_id


def test_benchmark_command_runs_every_server_and_workload(tmp_path: Path) -> None:
    tiny = ["--throughput-chargers", "3", "--throughput-seconds", "0.5", "--workers", "1"]
    tiny += ["--throughput-warmup", "0"]
    tiny += ["--scale-steps", "2,4", "--scale-seconds", "0.5", "--scale-settle", "0.2"]
    tiny += ["--storm-chargers", "4"]
    tiny += ["--storm-seconds", "0.5", "--quiet", "--out", str(tmp_path)]
    assert main(["--servers", "voltaro", "--workloads", "a,x", *tiny]) == 0
    assert main(["--servers", "baseline,echo", "--workloads", "a,x,b,c", *tiny]) == 0

    runs = sorted(tmp_path.glob("*.json"))
    assert len(runs) >= 1
    results = [r for run in runs for r in json.loads(run.read_text())["results"]]
    seen = {(r["server"], r["workload"]) for r in results}
    assert {("voltaro", "a-throughput"), ("voltaro", "a-cross-check")} <= seen
    for server in ("baseline", "echo"):
        workloads = ("a-throughput", "a-cross-check", "b-scale", "c-storm")
        assert {(server, w) for w in workloads} <= seen
    for result in results:
        assert result["errors"] == 0, result
        assert result["connected"] == result["chargers"]
    by_simulator = [r for r in results if r["workload"] != "a-cross-check"]
    assert all(r["driver_lag_p99_ms"] is not None for r in by_simulator)
    table = sorted(tmp_path.glob("*.md"))[-1].read_text()
    assert "| a-throughput | echo |" in table
    assert "driver lag p99 ms" in table


def test_each_scale_step_charges_with_tags_of_its_own() -> None:
    """A step's fleet stops mid-session and leaves its transactions open: the next step
    must not reuse its tags (Authorize would answer ConcurrentTx, and fewer sessions run)."""

    def step_tags(step: int) -> set[str]:
        chargers = (charger_id(scale_prefix(step), i) for i in range(1, step + 1))
        return {default_id_tag(cp, connector) for cp in chargers for connector in (1, 2)}

    tags = id_tags(argparse.Namespace(scale_steps=[2, 4, 18500]))
    assert len(tags) == len(set(tags)) == 2 * (2 + 4 + 18500)
    assert set(tags) == step_tags(2) | step_tags(4) | step_tags(18500)
    assert not step_tags(2) & step_tags(4)
    assert max(len(tag) for tag in tags) <= 20  # the idTag limit


def test_a_scale_step_cut_short_by_the_servers_file_limit_says_so() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    expected = None if soft == resource.RLIM_INFINITY else soft
    assert open_file_limit(os.getpid()) == expected

    step = {"workload": "b-scale", "chargers": 20_000, "server_file_limit": 20_000}
    assert step_outcome({**step, "held": True, "failed_connects": 0}) == " (held)"
    short_of_files = {**step, "held": False, "failed_connects": 27}
    assert step_outcome(short_of_files) == " (not held: file limit 20,000)"
    too_slow = {**step, "held": False, "failed_connects": 0}
    assert step_outcome(too_slow) == " (not held)"
    far_below_the_limit = {**short_of_files, "server_file_limit": 1_048_576}
    assert step_outcome(far_below_the_limit) == " (not held)"
    assert step_outcome({"workload": "a-throughput", "chargers": 200}) == ""
