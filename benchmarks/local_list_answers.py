"""What recording a charger's accepted SendLocalList costs: the whole-list path Voltaro had
before migration 0018 (the baseline, measured in the same run) against
:meth:`~voltaro.store.local_lists.LocalListRepository.record_update`.

    .venv/bin/python -m benchmarks.local_list_answers   # ~20 s alone

Two workloads, on an embedded PostgreSQL of its own: a Full list of 1,000 tags sent in 10
messages of 100 (a Full and 9 Differentials, as the sync task splits it), each recorded as
its answer comes; and a Differential of 10 tags to a charger holding 1,000 (a few tags
changed). The two paths take turns, charger by charger, so the machine's noise falls on
both. Per answer: wall time (the round trips and PostgreSQL's work included) and this
process's CPU time (Voltaro's side: encoding, decoding, hashing), median and 90th
percentile, and per Full list the totals; and PostgreSQL's CPU time (all its processes,
from ``/proc``, in clock ticks: a mean per answer over the run, not per answer), since the
work moved there. Results:
``benchmarks/results/local-list-answers-<time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import trio
import trio_asyncio

from benchmarks.cluster import write_results
from benchmarks.run import ROOT
from voltaro.central.local_list_entries import apply_update, digest, full_update
from voltaro.central.profiles.local_list import record_accepted
from voltaro.store.database import Connection, Database
from voltaro.store.embedded import embedded_url, start_embedded, stop_embedded
from voltaro.store.local_lists import LocalListRepository
from voltaro.store.store import open_store

Record = Callable[[Database, str, dict[str, Any]], Awaitable[None]]
TICK = 1 / os.sysconf("SC_CLK_TCK")


def server_cpu(pgdata: Path) -> float:
    """Seconds of CPU the PostgreSQL server in ``pgdata`` used so far (the postmaster and
    its children now alive; the benchmark's connections live throughout)."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if postmaster in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) * TICK  # utime, stime
    return total


def whole_list_digest(entries: dict[str, Any]) -> str:
    """The digest before migration 0018: a hash of the whole list."""
    data = orjson.dumps(dict(sorted(entries.items())), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:32]


async def whole_list(database: Database, charge_point_id: str, request: dict[str, Any]) -> None:
    """The baseline: the path before migration 0018 (``LocalListRepository.change`` with
    ``list_sent``'s changes): the row read whole with the lock, the update applied and the
    list hashed in Python, the whole list written back, in one transaction."""
    full = request["updateType"] == "Full"

    async def write(connection: Connection) -> None:
        await connection.execute(
            "INSERT INTO local_lists (charge_point_id) VALUES ($1) ON CONFLICT DO NOTHING",
            charge_point_id,
        )
        row = await connection.fetchrow(
            "SELECT * FROM local_lists WHERE charge_point_id = $1 FOR UPDATE", charge_point_id
        )
        entries = apply_update({} if full else row["entries"] or {}, request)
        await connection.execute(
            "INSERT INTO local_lists (charge_point_id, state, version, entries, digest, size,"
            " needs_full, check_version, failures, retry_at, last_status, updated_at)"
            " VALUES ($1, 'synced', $2, $3, $4, $5, $6, false, 0, NULL, 'Accepted', now())"
            " ON CONFLICT (charge_point_id) DO UPDATE SET state = EXCLUDED.state,"
            " version = EXCLUDED.version, entries = EXCLUDED.entries,"
            " digest = EXCLUDED.digest, size = EXCLUDED.size, needs_full = EXCLUDED.needs_full,"
            " check_version = false, failures = 0, retry_at = NULL,"
            " last_status = EXCLUDED.last_status, updated_at = now()",
            charge_point_id,
            request["listVersion"],
            entries,
            whole_list_digest(entries),
            len(entries),
            False if full else row["needs_full"],
        )

    await database.run_in_transaction(write)


async def by_update(database: Database, charge_point_id: str, request: dict[str, Any]) -> None:
    """Today's path, as ``list_sent`` takes it."""
    await record_accepted(LocalListRepository(database), charge_point_id, request)


PATHS: dict[str, Record] = {"whole-list (before)": whole_list, "by-update (now)": by_update}


async def timed(record: Record, database: Database, cp: str, request: dict[str, Any]) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    await record(database, cp, request)
    return time.perf_counter() - wall, time.process_time() - cpu


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Median and 90th percentile, in milliseconds, of the wall and CPU times."""
    result: dict[str, float] = {"answers": len(samples)}
    for i, kind in enumerate(("wall", "cpu")):
        values = [sample[i] for sample in samples]
        result[f"{kind}_median_ms"] = round(statistics.median(values) * 1000, 3)
        result[f"{kind}_p90_ms"] = round(statistics.quantiles(values, n=10)[8] * 1000, 3)
    return result


async def measure(
    url: str, data_dir: Path, pgdata: Path, args: argparse.Namespace
) -> dict[str, Any]:
    wanted = {f"TAG-{n:05d}": {"status": "Accepted"} for n in range(args.tags)}
    for n in range(0, args.tags, 7):  # some entries as the wanted list has them: dated, parents
        wanted[f"TAG-{n:05d}"] = {
            "expiryDate": "2027-06-30T00:00:00.000Z",
            "parentIdTag": "FLEET-A",
            "status": "Accepted",
        }
    messages = full_update(wanted, 0, args.chunk).messages
    changed = list(wanted)[:: max(args.tags // args.changed, 1)][: args.changed]
    differential = {
        "listVersion": len(messages) + 1,
        "localAuthorizationList": [
            {"idTag": tag, "idTagInfo": {"status": "Blocked"}} for tag in changed
        ],
        "updateType": "Differential",
    }
    fulls: dict[str, list[tuple[float, float]]] = {name: [] for name in PATHS}
    totals: dict[str, list[tuple[float, float]]] = {name: [] for name in PATHS}
    diffs: dict[str, list[tuple[float, float]]] = {name: [] for name in PATHS}
    server: dict[str, float] = dict.fromkeys(PATHS, 0.0)
    async with (
        trio_asyncio.open_loop(),
        open_store(url, data_dir, background=False) as store,
    ):
        database = store.database
        for charger in range(args.chargers):
            order = list(PATHS.items())
            if charger % 2:
                order.reverse()
            for name, record in order:
                cp = f"CP-{name.split()[0]}-{charger}"
                before = server_cpu(pgdata)
                samples = [await timed(record, database, cp, m) for m in messages]
                fulls[name] += samples
                totals[name].append((sum(s[0] for s in samples), sum(s[1] for s in samples)))
                diffs[name].append(await timed(record, database, cp, differential))
                server[name] += server_cpu(pgdata) - before
            print(f"charger {charger + 1}/{args.chargers}", file=sys.stderr)
        # both paths ended with the list the charger holds (and today's with its digest)
        expected = apply_update(wanted, differential)
        rows = await database.run(lambda c: c.fetch("SELECT * FROM local_lists"))
        assert len(rows) == 2 * args.chargers
        assert all(row["entries"] == expected for row in rows)
        assert all(row["digest"] == digest(expected) for row in rows if "by-" in row[0])
    return {
        "full_list_per_answer": {name: summary(s) for name, s in fulls.items()},
        "full_list_total": {name: summary(s) for name, s in totals.items()},
        "differential": {name: summary(s) for name, s in diffs.items()},
        "postgres_cpu_ms_per_answer": {
            name: round(used * 1000 / (args.chargers * (len(messages) + 1)), 3)
            for name, used in server.items()
        },
        "list_json_bytes": len(orjson.dumps(wanted)),
    }


def markdown(result: dict[str, Any]) -> str:
    s = result["setup"]
    lines = [
        f"Recording accepted SendLocalList answers: a Full list of {s['tags']:,} tags in"
        f" messages of {s['chunk']} and a Differential of {s['changed']} tags to it;"
        f" {s['chargers']} chargers per path, the paths taking turns.",
        "",
        "| workload | path | answers | wall median ms | wall p90 ms | CPU median ms | CPU p90 ms |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for workload in ("full_list_per_answer", "full_list_total", "differential"):
        for path, r in result[workload].items():
            lines.append(
                f"| {workload.replace('_', ' ')} | {path} | {r['answers']} |"
                f" {r['wall_median_ms']} | {r['wall_p90_ms']} | {r['cpu_median_ms']} |"
                f" {r['cpu_p90_ms']} |"
            )
    lines += ["", "PostgreSQL's CPU per answer, mean over all (ms):"]
    for path, used in result["postgres_cpu_ms_per_answer"].items():
        lines.append(f"- {path}: {used}")
    lines.append(f"\nThe whole list as JSON: {result['list_json_bytes']:,} bytes.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.local_list_answers", description=__doc__
    )
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="voltaro-local-lists-") as workdir:
        data_dir = Path(workdir)
        embedded = start_embedded(data_dir)
        try:
            url, pgdata = embedded_url(embedded), Path(embedded.pgdata)
            measured = trio.run(measure, url, data_dir, pgdata, args)
        finally:
            stop_embedded(embedded)
    result = {"setup": {k: v for k, v in vars(args).items() if k != "out"}, **measured}
    table = markdown(result)
    path = write_results(args.out, "local-list-answers", result, table)
    print(table)
    print(f"results: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
