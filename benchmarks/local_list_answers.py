"""What recording a charger's accepted SendLocalList costs: the path Voltaro had from
migration 0018 to 0019, each charger's list in its own row and rewritten at every answer (the
baseline, measured in the same run, on a table of its own), against
:meth:`~voltaro.store.local_lists.LocalListRepository.record_update`, each distinct list
stored once (migration 0019).

    .venv/bin/python -m benchmarks.local_list_answers   # ~20 s alone

Two workloads, on an embedded PostgreSQL of its own: a Full list of 1,000 tags sent in 10
messages of 100 (a Full and 9 Differentials, as the sync task splits it), each recorded as
its answer comes; and a Differential of 10 tags to a charger holding 1,000 (a few tags
changed). Every charger gets the same list, as a fleet does. The two paths take turns,
charger by charger, so the machine's noise falls on both. Per answer: wall time (the round
trips and PostgreSQL's work included) and this process's CPU time (Voltaro's side: encoding,
decoding, hashing), median and 90th percentile, and per Full list the totals; PostgreSQL's
CPU time (all its processes, from ``/proc``, in clock ticks: a mean per answer over the run,
not per answer); and what each path stored in the end. Results:
``benchmarks/results/local-list-answers-<time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
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
from voltaro.central.local_list_entries import apply_update, full_update
from voltaro.central.profiles.local_list import record_accepted
from voltaro.store.database import Database
from voltaro.store.embedded import embedded_url, start_embedded, stop_embedded
from voltaro.store.list_digests import digest
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


# The baseline's table: ``local_lists`` as migrations 0013 and 0018 made it, every charger's
# list in its own row (migration 0019 moved the lists out).
BASELINE_TABLE = """
    CREATE TABLE IF NOT EXISTS local_lists_0018 (LIKE local_lists INCLUDING ALL);
    ALTER TABLE local_lists_0018 ADD COLUMN IF NOT EXISTS entries jsonb NOT NULL DEFAULT '{}';
"""
ANSWER_COLUMNS = ("state", "version", "check_version", "failures", "retry_at", "last_status")


def per_charger_statement(full: bool) -> str:
    """The statement that recorded an accepted update from migration 0018 to 0019 (as
    ``record_accepted`` sets the columns): the charger's own list changed in SQL (``-`` and
    ``||``, the whole jsonb value rewritten), the digest moved by the touched entries'
    hashes, all computed in SQL. $1 the charger, $2 the set entries, $3 the touched tags,
    $4 the removed ones, $5 how many are set, $6 whether it is a Full, then the columns."""
    columns = [*ANSWER_COLUMNS, *(["needs_full"] if full else [])]
    names = "".join(f", {name}" for name in columns)
    values = "".join(f", ${i + 7}" for i in range(len(columns)))
    updates = "".join(f", {name} = EXCLUDED.{name}" for name in columns)
    return f"""
        INSERT INTO local_lists_0018 AS l (charge_point_id, entries, digest, size{names},
                                           updated_at)
        VALUES ($1, $2::jsonb, local_list_digest($2::jsonb), $5{values}, now())
        ON CONFLICT (charge_point_id) DO UPDATE SET
            entries = CASE WHEN $6 THEN EXCLUDED.entries
                           ELSE (l.entries - $4::text[]) || EXCLUDED.entries END,
            (size, digest) = (
                SELECT CASE WHEN $6 THEN EXCLUDED.size
                            ELSE l.size - held.present + EXCLUDED.size END,
                       CASE WHEN $6 THEN EXCLUDED.digest
                            ELSE local_list_digest_moved(
                                l.digest, substr(EXCLUDED.digest, 5)::numeric, held.hashes)
                       END
                FROM local_list_hashes(
                    CASE WHEN $6 OR NOT l.entries ?| $3::text[] THEN '{{}}'::jsonb
                         ELSE l.entries END,
                    $3::text[]) AS held
            ){updates}, updated_at = now()
    """


async def per_charger(database: Database, charge_point_id: str, request: dict[str, Any]) -> None:
    """The baseline: the path from migration 0018 to 0019, each charger's list its own."""
    full = request["updateType"] == "Full"
    touched: dict[str, Any] = {}
    for entry in request["localAuthorizationList"]:
        touched[entry["idTag"]] = entry.get("idTagInfo")
    sets = {tag: info for tag, info in touched.items() if info is not None}
    removed = [tag for tag, info in touched.items() if info is None]
    values = ("synced", request["listVersion"], False, 0, None, "Accepted")
    arguments = (sets, list(touched), removed, len(sets), full, *values)
    if full:
        arguments += (False,)
    sql = per_charger_statement(full)
    await database.run(lambda c: c.execute(sql, charge_point_id, *arguments))


async def by_update(database: Database, charge_point_id: str, request: dict[str, Any]) -> None:
    """Today's path, as ``list_sent`` takes it."""
    await record_accepted(LocalListRepository(database), charge_point_id, request)


PATHS: dict[str, Record] = {"per-charger (before)": per_charger, "shared (now)": by_update}


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
        await database.run(lambda c: c.execute(BASELINE_TABLE))
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
        # both paths ended with the list the charger holds, under its digest
        expected = apply_update(wanted, differential)
        before = await database.run(lambda c: c.fetch("SELECT * FROM local_lists_0018"))
        now = await database.run(
            lambda c: c.fetch(
                "SELECT l.digest, c.entries FROM local_lists l"
                " JOIN local_list_contents c ON c.digest = l.digest"
            )
        )
        assert len(before) == len(now) == args.chargers
        assert all(row["entries"] == expected for row in [*before, *now])
        assert all(row["digest"] == digest(expected) for row in [*before, *now])
        stored = await database.run(
            lambda c: c.fetchrow(
                "SELECT pg_total_relation_size('local_lists_0018') AS before,"
                " pg_total_relation_size('local_lists')"
                " + pg_total_relation_size('local_list_contents') AS now"
            )
        )
    return {
        "full_list_per_answer": {name: summary(s) for name, s in fulls.items()},
        "full_list_total": {name: summary(s) for name, s in totals.items()},
        "differential": {name: summary(s) for name, s in diffs.items()},
        "postgres_cpu_ms_per_answer": {
            name: round(used * 1000 / (args.chargers * (len(messages) + 1)), 3)
            for name, used in server.items()
        },
        "list_json_bytes": len(orjson.dumps(wanted)),
        "stored_bytes": dict(zip(PATHS, (stored["before"], stored["now"]), strict=True)),
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
    lines.append("\nStored in the end (the tables' total sizes, bytes):")
    for path, size in result["stored_bytes"].items():
        lines.append(f"- {path}: {size:,}")
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
