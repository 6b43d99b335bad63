"""The charts' aggregate queries at fleet scale: 20,000 charge points and a year of history.

    .venv/bin/python -m benchmarks.aggregates                      # 20,000 chargers, 365 days
    .venv/bin/python -m benchmarks.aggregates --charge-points 2000 --days 60   # a quick look
    .venv/bin/python -m benchmarks.aggregates --keep /tmp/agg      # keep (and reuse) the data

It starts an embedded PostgreSQL, applies Voltaro's migrations and fills the tables in SQL
(``generate_series``, no Python loop over rows), in time order as a live system writes them:

- charge points with two connectors each, 95% online, some connectors Charging;
- ``--sessions`` transactions per connector per day (default 1: 40,000 a day, 14.6 million
  a year at 20,000 chargers), 30 to 150 minutes long, 5 to 45 kWh, the ones not over yet
  left open;
- the status changes of the last ``--history-days`` days (four per session: Preparing,
  Charging, Finishing, Available) and the MeterValues messages of the last ``--meter-days``
  days (one set of four values every 5 minutes of every session). A year of either would
  not fit this machine's disk (about 60 million status rows and 250 million meter value
  sets); no chart reads meter values, and a charger's utilisation reads only the status
  rows of its window (and the one before);
- the five-minute fleet samples of the whole period, and the daily energy rollup (the fill
  marks every day pending, as the trigger would have, and the first fold is timed).

Then it times each query the dashboard and the stats API run (the median of ``--runs``
runs, after one warm-up, so with a warm cache: the dashboard asks again and again) and
keeps the EXPLAIN of each, with the indexes it used. For comparison it also times what the
rollup and the indexes replace (the fleet's energy per day summed from the month's
transactions, and the overview's former month query). Results go to
``benchmarks/results/aggregates-<UTC time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.cluster import write_results
from benchmarks.run import ROOT
from voltaro.store.dashboard_queries import (
    CHARGE_POINT_ENERGY_PER_DAY,
    ENERGY_PER_DAY,
    SESSIONS_PER_HOUR,
    UTILISATION,
)
from voltaro.store.embedded import embedded_url, start_embedded, stop_embedded
from voltaro.store.migrate import apply_migrations

CONNECTORS = 2

FILL_CHARGE_POINTS = """
INSERT INTO charge_points (id, registration_status, online, last_seen, vendor, model)
SELECT format('CP-%s', lpad(n::text, 5, '0')), 'Accepted', random() < 0.95, now(),
       'Voltaro', 'Bench'
FROM generate_series(1, $1) AS n
"""

FILL_CONNECTORS = """
INSERT INTO connectors (charge_point_id, connector_id, status, error_code, updated_at)
SELECT p.id, c,
       CASE WHEN c = 0 THEN 'Available' WHEN random() < 0.15 THEN 'Charging'
            ELSE 'Available' END,
       'NoError', now()
FROM charge_points AS p, generate_series(0, $1) AS c
"""

# One row per (day, charge point, connector, session): starts spread over the day, in time
# order (as a live system appends them); those not over at $4 (now) are left open.
FILL_TRANSACTIONS = """
INSERT INTO transactions (charge_point_id, connector_id, id_tag, id_tag_status, started_at,
                          meter_start, received_at, stopped_at, meter_stop, stop_reason,
                          stop_received_at, energy_wh)
SELECT s.cp, s.connector, s.tag, 'Accepted', s.started_at, s.meter_start, s.started_at,
       CASE WHEN s.stopped_at <= $4 THEN s.stopped_at END,
       CASE WHEN s.stopped_at <= $4 THEN s.meter_start + s.wh END,
       CASE WHEN s.stopped_at <= $4 THEN 'Local' END,
       CASE WHEN s.stopped_at <= $4 THEN s.stopped_at END,
       CASE WHEN s.stopped_at <= $4 THEN s.wh ELSE s.wh / 2 END
FROM (
    SELECT r.*, r.started_at + (30 + random() * 120) * interval '1 minute' AS stopped_at
    FROM (
        -- each row its own random start (OFFSET 0: computed once, not again above)
        SELECT format('CP-%s', lpad(cp::text, 5, '0')) AS cp, connector,
               format('TAG%s', (cp * 7 + day) % 5000) AS tag,
               $7::timestamptz + day * interval '1 day'
                   + ((session + random()) / $3::int) * interval '22 hours' AS started_at,
               (day * 100000 + session * 50000)::bigint AS meter_start,
               (5000 + random() * 40000)::bigint AS wh
        FROM generate_series($1::int, $2::int - 1) AS day,
             generate_series(0, $3::int - 1) AS session,
             generate_series(1, $5::int) AS cp,
             generate_series(1, $6::int) AS connector
        OFFSET 0
    ) AS r
    ORDER BY r.started_at
    OFFSET 0
) AS s
WHERE s.started_at <= $4
"""

# Four status changes per session of the transactions started since $1.
FILL_STATUS_HISTORY = """
INSERT INTO connector_status_history (charge_point_id, connector_id, status, previous_status,
                                      error_code, received_at, unexpected)
SELECT t.charge_point_id, t.connector_id, s.status, s.previous, 'NoError', s.at, false
FROM transactions AS t,
     LATERAL (VALUES
        ('Preparing', 'Available', t.started_at - interval '1 minute', 1),
        ('Charging', 'Preparing', t.started_at, 2),
        ('Finishing', 'Charging', t.stopped_at, 3),
        ('Available', 'Finishing', t.stopped_at + interval '2 minutes', 4)
     ) AS s(status, previous, at, ord)
WHERE t.started_at >= $1 AND s.at IS NOT NULL
ORDER BY s.at
"""

# A MeterValues message every 5 minutes of each session started since $1.
FILL_METER_VALUES = """
INSERT INTO meter_value_sets (charge_point_id, connector_id, transaction_id, received_at,
                              source, meter_value)
SELECT t.charge_point_id, t.connector_id, t.transaction_id, m.at, 'MeterValues',
       jsonb_build_array(jsonb_build_object(
           'timestamp', m.at,
           'sampledValue', jsonb_build_array(
               jsonb_build_object('value', (t.meter_start + m.n * 800)::text,
                                  'measurand', 'Energy.Active.Import.Register', 'unit', 'Wh'),
               jsonb_build_object('value', '9.6', 'measurand', 'Power.Active.Import',
                                  'unit', 'kW'),
               jsonb_build_object('value', '16', 'measurand', 'Current.Import', 'unit', 'A'),
               jsonb_build_object('value', '230', 'measurand', 'Voltage', 'unit', 'V'))))
FROM transactions AS t,
     LATERAL (SELECT n, t.started_at + n * interval '5 minutes' AS at
              FROM generate_series(1, (extract(epoch FROM coalesce(t.stopped_at, $2)
                                                          - t.started_at) / 300)::int) AS n
     ) AS m
WHERE t.started_at >= $1
ORDER BY m.at
"""

FILL_SAMPLES = """
INSERT INTO fleet_samples (at, charge_points, online, charging)
SELECT at, $3::int, ($3::int * (0.93 + random() * 0.04))::int, ($3::int * 0.3 * random())::int
FROM generate_series(date_bin('5 minutes', $1::timestamptz, timestamptz '2000-01-01'), $2,
                     interval '5 minutes') AS at
"""

# What the rollup replaces: the fleet's energy per day summed from the transactions.
NAIVE_ENERGY_PER_DAY = """
SELECT (stopped_at AT TIME ZONE 'UTC')::date AS day, sum(energy_wh) FILTER (WHERE energy_wh >= 0)
FROM transactions WHERE stopped_at >= $1 GROUP BY 1 ORDER BY 1
"""

# The overview's month query before migration 0016 (energy of transactions started since).
FORMER_OVERVIEW_ENERGY = """
SELECT coalesce(sum(energy_wh) FILTER (WHERE started_at >= $1 AND energy_wh >= 0), 0),
       coalesce(sum(energy_wh) FILTER (WHERE started_at >= $2 AND energy_wh >= 0), 0),
       count(*) FILTER (WHERE stopped_at IS NULL)
FROM transactions WHERE started_at >= $2 OR stopped_at IS NULL
"""

OVERVIEW_RUNNING = (
    "SELECT coalesce(sum(energy_wh) FILTER (WHERE energy_wh >= 0), 0), count(*)"
    " FROM transactions WHERE stopped_at IS NULL"
)
OVERVIEW_COUNTS = (
    "SELECT count(*), count(*) FILTER (WHERE online),"
    " count(*) FILTER (WHERE registration_status = 'Pending') FROM charge_points"
)
OVERVIEW_CONNECTORS = (
    "SELECT count(DISTINCT charge_point_id) FILTER (WHERE status = 'Faulted'),"
    " count(*) FILTER (WHERE status = 'Charging') FROM connectors"
)
# What the overview read before: every connector's row, counted in Python.
FORMER_OVERVIEW_CONNECTORS = (
    "SELECT c.charge_point_id, c.connector_id, c.status, p.online"
    " FROM connectors c JOIN charge_points p ON p.id = c.charge_point_id"
    " ORDER BY c.charge_point_id, c.connector_id"
)
SAMPLES_24H = (
    "SELECT at, charge_points, online, charging FROM fleet_samples"
    " WHERE at >= $1 AND at < $2 ORDER BY at"
)
STATUS_HISTORY_PAGE = (
    "SELECT * FROM connector_status_history WHERE charge_point_id = $1"
    " ORDER BY id DESC LIMIT 10 OFFSET 0"
)
STATUS_HISTORY_COUNT = "SELECT count(*) FROM connector_status_history WHERE charge_point_id = $1"


async def timed(step: str, fn: Callable[[], Awaitable[Any]], log: dict[str, float]) -> None:
    started = time.perf_counter()
    await fn()
    log[step] = round(time.perf_counter() - started, 1)
    print(f"  {step}: {log[step]} s", file=sys.stderr, flush=True)


async def fill(connection: Any, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """The data, in SQL; returns the seconds each step took."""
    steps: dict[str, float] = {}
    first_day = (now - timedelta(days=args.days)).replace(hour=0, minute=0, second=0)
    first_day = first_day.replace(microsecond=0)
    # Bulk loading: the announcement triggers would queue millions of NOTIFYs, and the
    # rollup's marks are made once below, per day.
    await connection.execute("ALTER TABLE transactions DISABLE TRIGGER USER")
    await timed(
        "charge points and connectors",
        lambda: _fill_charge_points(connection, args.charge_points),
        steps,
    )
    chunk = 10  # days per statement: bounded memory for the sort, progress to watch
    for start in range(0, args.days + 1, chunk):
        end = min(start + chunk, args.days + 1)
        await timed(
            f"transactions, days {start}-{end - 1}",
            lambda s=start, e=end: connection.execute(
                FILL_TRANSACTIONS,
                s,
                e,
                args.sessions,
                now,
                args.charge_points,
                CONNECTORS,
                first_day,
            ),
            steps,
        )
    await connection.execute("ALTER TABLE transactions ENABLE TRIGGER USER")
    since = now - timedelta(days=args.history_days)
    await timed("status history", lambda: connection.execute(FILL_STATUS_HISTORY, since), steps)
    meter_since = now - timedelta(days=args.meter_days)
    await timed(
        "meter values", lambda: connection.execute(FILL_METER_VALUES, meter_since, now), steps
    )
    await timed(
        "fleet samples",
        lambda: connection.execute(FILL_SAMPLES, first_day, now, args.charge_points),
        steps,
    )
    await connection.execute(
        "INSERT INTO energy_per_day_pending SELECT DISTINCT (stopped_at AT TIME ZONE 'UTC')::date"
        " FROM transactions WHERE stopped_at IS NOT NULL"
    )
    await timed(
        "first fold (every day)",
        lambda: connection.fetchval("SELECT energy_per_day_fold()"),
        steps,
    )
    # autovacuum would have done this on a live system; index-only scans need it
    await timed("vacuum analyze", lambda: connection.execute("VACUUM ANALYZE"), steps)
    return {"fill_seconds": steps}


async def describe(connection: Any) -> dict[str, Any]:
    counts = {}
    for table in (
        "charge_points",
        "transactions",
        "connector_status_history",
        "meter_value_sets",
        "fleet_samples",
        "energy_per_day",
    ):
        counts[table] = await connection.fetchval(f"SELECT count(*) FROM {table}")
    size = await connection.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
    return {"rows": counts, "database_size": size}


async def _fill_charge_points(connection: Any, charge_points: int) -> None:
    await connection.execute(FILL_CHARGE_POINTS, charge_points)
    await connection.execute(FILL_CONNECTORS, CONNECTORS)


def queries(now: datetime, charge_point: str) -> dict[str, tuple[str, tuple[Any, ...]]]:
    today = now.date()
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    month = today - timedelta(days=29)
    return {
        "fleet energy per day, 30 days (rollup + today live)": (
            ENERGY_PER_DAY,
            (month, today, today),
        ),
        "fleet energy per day, 365 days": (
            ENERGY_PER_DAY,
            (today - timedelta(days=364), today, today),
        ),
        "sessions per hour, 24 h": (SESSIONS_PER_HOUR, (hour - timedelta(hours=23), 24)),
        "sessions per hour, 7 days": (SESSIONS_PER_HOUR, (hour - timedelta(hours=167), 168)),
        "fleet samples, 24 h": (SAMPLES_24H, (now - timedelta(hours=24), now)),
        "overview: charge point counts": (OVERVIEW_COUNTS, ()),
        "overview: running energy, active transactions": (OVERVIEW_RUNNING, ()),
        "overview: faulted chargers, connectors charging": (OVERVIEW_CONNECTORS, ()),
        "charge point energy per day, 30 days": (
            CHARGE_POINT_ENERGY_PER_DAY,
            (month, today, charge_point),
        ),
        "charge point utilisation, 7 days": (
            UTILISATION,
            (charge_point, now - timedelta(days=7), now),
        ),
        "charge point utilisation, 30 days": (
            UTILISATION,
            (charge_point, now - timedelta(days=30), now),
        ),
        "charge point status history, newest 10": (STATUS_HISTORY_PAGE, (charge_point,)),
        "charge point status history, count": (STATUS_HISTORY_COUNT, (charge_point,)),
        "(without the rollup) fleet energy per day, 30 days from transactions": (
            NAIVE_ENERGY_PER_DAY,
            (datetime.combine(month, datetime.min.time(), UTC),),
        ),
        # over 30 days, as at the end of a month (on the 1st the month is one day)
        "(former form) overview energy today/month by started_at, with 0016's index": (
            FORMER_OVERVIEW_ENERGY,
            (day, day - timedelta(days=29)),
        ),
        "(former) overview: every connector's row": (FORMER_OVERVIEW_CONNECTORS, ()),
    }


def plan_summary(plan: list[str]) -> tuple[list[str], list[str]]:
    """The indexes a plan uses and the tables it reads whole."""
    text = "\n".join(plan)
    indexes = sorted(set(re.findall(r"(?:Index|Index Only) Scan(?: Backward)? using (\w+)", text)))
    indexes += sorted(set(re.findall(r"Bitmap Index Scan on (\w+)", text)) - set(indexes))
    seq = sorted(set(re.findall(r"Seq Scan on (\w+)", text)))
    return indexes, seq


async def measure(connection: Any, runs: int, now: datetime, charge_point: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (sql, params) in queries(now, charge_point).items():
        await connection.fetch(sql, *params)  # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            rows = await connection.fetch(sql, *params)
            times.append((time.perf_counter() - started) * 1000)
        plan = [
            r[0]
            for r in await connection.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *params)
        ]
        indexes, seq = plan_summary(plan)
        results[name] = {
            "median_ms": round(statistics.median(times), 2),
            "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2),
            "rows": len(rows),
            "indexes": indexes,
            "seq_scans": seq,
            "plan": plan,
        }
        print(f"  {name}: {results[name]['median_ms']} ms {indexes} {seq}", file=sys.stderr)
    return results


async def measure_upkeep(connection: Any, runs: int, now: datetime) -> dict[str, Any]:
    """The housekeeping's work: a fold of today (a minute's stops pending) and a sample."""
    fold, late, sample = [], [], []
    for _ in range(runs):
        await connection.execute("INSERT INTO energy_per_day_pending VALUES ($1)", now.date())
        started = time.perf_counter()
        await connection.fetchval("SELECT energy_per_day_fold()")
        fold.append((time.perf_counter() - started) * 1000)
        await connection.execute(
            "INSERT INTO energy_per_day_pending VALUES ($1)", now.date() - timedelta(days=10)
        )
        started = time.perf_counter()
        await connection.fetch(
            ENERGY_PER_DAY, now.date() - timedelta(days=29), now.date(), now.date()
        )
        late.append((time.perf_counter() - started) * 1000)
        await connection.fetchval("SELECT energy_per_day_fold()")
        await connection.execute(
            "DELETE FROM fleet_samples WHERE at > $1", now - timedelta(minutes=10)
        )
        started = time.perf_counter()
        await connection.fetchval("SELECT fleet_samples_take(interval '5 minutes')")
        sample.append((time.perf_counter() - started) * 1000)
    return {
        "fold of one day (housekeeping, every minute)": round(statistics.median(fold), 2),
        "fleet energy per day, 30 days, with a late stop pending on an old day": round(
            statistics.median(late), 2
        ),
        "fleet sample (housekeeping, every five minutes)": round(statistics.median(sample), 2),
    }


BEFORE_0016 = (
    "ALTER TABLE transactions DISABLE TRIGGER energy_per_day_updated",
    "DROP INDEX transactions_stopped, transactions_cp_stopped",
)


async def measure_writes(connection: Any, runs: int) -> dict[str, Any]:
    """What migration 0016 adds to the chargers' own writes, per transaction row: the running
    energy update of every MeterValues (its trigger's WHEN clause) and the stop (the
    trigger's mark, two more index entries). Each with 0016 and as before it (trigger off,
    its indexes dropped), alternating, inside transactions rolled back."""
    rows = await connection.fetchval("SELECT count(*) FROM transactions WHERE stopped_at IS NULL")
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        for variant in ("with 0016", "before 0016"):
            transaction = connection.transaction()
            await transaction.start()
            try:
                if variant == "before 0016":
                    for statement in BEFORE_0016:
                        await connection.execute(statement)
                for step, sql in (
                    ("running energy update", "UPDATE transactions SET energy_wh = energy_wh + 1"),
                    (
                        "stop",
                        "UPDATE transactions SET stopped_at = now(), stop_received_at = now(),"
                        " meter_stop = meter_start + 1000, energy_wh = 1000",
                    ),
                ):
                    started = time.perf_counter()
                    await connection.execute(sql + " WHERE stopped_at IS NULL")
                    elapsed = (time.perf_counter() - started) * 1e6 / max(rows, 1)
                    times.setdefault(f"{step}, {variant}", []).append(elapsed)
            finally:
                await transaction.rollback()
    return {
        "open_transactions": rows,
        "us_per_row": {name: round(statistics.median(t), 2) for name, t in times.items()},
        "us_per_row_range": {
            name: [round(min(t), 2), round(max(t), 2)] for name, t in times.items()
        },
    }


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    embedded = start_embedded(workdir / "db")
    try:
        url = embedded_url(embedded)
        connection = await asyncpg.connect(url)
        try:
            await apply_migrations(connection)
            now = datetime.now(UTC).replace(microsecond=0)
            filled: dict[str, Any] = {}
            if await connection.fetchval("SELECT count(*) FROM charge_points") == 0:
                filled = await fill(connection, args, now)
            else:
                print("  reusing the data already there", file=sys.stderr)
            filled |= await describe(connection)
            charge_point = await connection.fetchval(
                "SELECT charge_point_id FROM transactions ORDER BY transaction_id DESC LIMIT 1"
            )
            results = await measure(connection, args.runs, now, charge_point)
            upkeep = await measure_upkeep(connection, args.runs, now)
            writes = await measure_writes(connection, args.runs)
        finally:
            await connection.close()
    finally:
        stop_embedded(embedded)
    return {
        "charge_points": args.charge_points,
        "days": args.days,
        "sessions_per_connector_per_day": args.sessions,
        "history_days": args.history_days,
        "meter_days": args.meter_days,
        "runs": args.runs,
        **filled,
        "queries": results,
        "upkeep_ms": upkeep,
        "writes": writes,
    }


def table(result: dict[str, Any]) -> str:
    rows = [
        f"{result['charge_points']} charge points, {result['days']} days of transactions"
        f" ({result.get('rows', {}).get('transactions', '?')} rows), status history of"
        f" {result['history_days']} days, meter values of {result['meter_days']} days;"
        f" database {result.get('database_size', '?')}. Median of {result['runs']} runs.",
        "",
        "| query | median ms | min-max ms | rows | indexes used | whole-table scans |",
        "|---|--:|--:|--:|---|---|",
    ]
    for name, r in result["queries"].items():
        rows.append(
            f"| {name} | {r['median_ms']} | {r['min_ms']}-{r['max_ms']} | {r['rows']} |"
            f" {', '.join(r['indexes']) or '—'} | {', '.join(r['seq_scans']) or '—'} |"
        )
    rows += ["", "| upkeep | median ms |", "|---|--:|"]
    rows += [f"| {name} | {ms} |" for name, ms in result["upkeep_ms"].items()]
    writes = result["writes"]
    rows += [
        "",
        f"| chargers' writes ({writes['open_transactions']} open transactions) | µs per row |"
        " min-max |",
        "|---|--:|--:|",
    ]
    rows += [
        f"| {name} | {us} | {writes['us_per_row_range'][name][0]}-"
        f"{writes['us_per_row_range'][name][1]} |"
        for name, us in writes["us_per_row"].items()
    ]
    if result.get("fill_seconds"):
        rows += ["", "| fill step | seconds |", "|---|--:|"]
        rows += [f"| {name} | {s} |" for name, s in result["fill_seconds"].items()]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--charge-points", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--sessions", type=int, default=1, help="per connector per day")
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--meter-days", type=int, default=2)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="a directory for the database, kept")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.keep is not None:
        result = asyncio.run(run(args, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="voltaro-aggregates-") as tmp:
            result = asyncio.run(run(args, Path(tmp)))
    written = write_results(args.out, "aggregates", result, table(result))
    print(table(result))
    print(f"results: {written}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
