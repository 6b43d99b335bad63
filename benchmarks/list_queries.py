"""How long the operators' list queries take at fleet scale: one page (50 rows) of each list,
with the filters, searches and orders the dashboard offers, over an embedded PostgreSQL
seeded by SQL.

    .venv/bin/python -m benchmarks.list_queries   # 20,000 charge points, 50,000 id tags
                                                  # (--id-tags), 1M transactions, 2M
                                                  # logged frames, 200k status changes

Each query runs through the store's own :class:`~voltaro.store.admin_queries.AdminQueries`
(the SQL the API runs, its count included), three times; the best time is reported, as
milliseconds of wall time (a measure of the query plans, not of this noisy machine's CPU).
Results: ``benchmarks/results/list-queries-<time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import trio
import trio_asyncio

from benchmarks.cluster import write_results
from benchmarks.run import ROOT
from voltaro.store.admin_queries import Order, Page, Period, TransactionFilter
from voltaro.store.embedded import embedded_url, start_embedded, stop_embedded
from voltaro.store.migrate import apply_migrations
from voltaro.store.store import Store, open_store

PAGE = 50


async def seed(url: str, args: argparse.Namespace) -> None:
    connection = await asyncpg.connect(url)
    try:
        await apply_migrations(connection)
        await connection.execute(
            """
            INSERT INTO charge_points (id, registration_status, vendor, model, last_seen, online)
            SELECT 'CP-' || lpad(n::text, 6, '0'), 'Accepted', 'Vendor' || (n % 13),
                   'Model' || (n % 5), now() - make_interval(secs => n), n % 3 = 0
            FROM generate_series(1, $1) AS n
            """,
            args.charge_points,
        )
        # id tags added over the last year, two in three expiring within the next two years
        await connection.execute(
            """
            INSERT INTO id_tags (id_tag, expiry_date, created_at, updated_at)
            SELECT 'TAG-' || n,
                   CASE WHEN n % 3 = 0 THEN NULL
                        ELSE now() + make_interval(mins => ((n::bigint * 7919) % 1051200)::int) END,
                   now() - make_interval(mins => ((n::bigint * 104729) % 525600)::int),
                   now() - make_interval(mins => ((n::bigint * 104729) % 525600)::int)
            FROM generate_series(0, $1 - 1) AS n
            """,
            args.id_tags,
        )
        await connection.execute(
            "UPDATE charge_points"
            " SET created_at = now() - make_interval(hours => ((n * 7) % 8760)::int)"
            " FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM charge_points) AS r"
            " WHERE charge_points.id = r.id"
        )
        await connection.execute(
            """
            INSERT INTO transactions (charge_point_id, connector_id, id_tag, id_tag_status,
                started_at, meter_start, received_at, stopped_at, meter_stop, energy_wh)
            SELECT 'CP-' || lpad((n % $2 + 1)::text, 6, '0'), 1 + n % 2,
                   'TAG-' || (n % 50000), 'Accepted',
                   now() - make_interval(secs => ($1 - n) * 30), 0, now(),
                   now() - make_interval(secs => ($1 - n) * 30 - 1800), 7000, 7000
            FROM generate_series(1, $1) AS n
            """,
            args.transactions,
            args.charge_points,
        )
        await connection.execute(
            """
            INSERT INTO message_log (logged_at, charge_point_id, direction, message_id, action,
                                     payload, bytes)
            SELECT now() - make_interval(secs => ($1 - n) / 100.0),
                   'CP-' || lpad((n % $2 + 1)::text, 6, '0'),
                   CASE WHEN n % 2 = 0 THEN 'in' ELSE 'out' END, 'm' || n,
                   CASE WHEN n % 10 = 0 THEN 'StatusNotification' ELSE 'MeterValues' END,
                   '{}'::jsonb, 2
            FROM generate_series(1, $1) AS n
            """,
            args.messages,
            args.charge_points,
        )
        await connection.execute(
            """
            INSERT INTO connector_status_history (charge_point_id, connector_id, status,
                error_code, received_at, unexpected)
            SELECT 'CP-' || lpad((n % $2 + 1)::text, 6, '0'), 1, 'Available', 'NoError',
                   now() - make_interval(secs => $1 - n), false
            FROM generate_series(1, $1) AS n
            """,
            args.status_changes,
            args.charge_points,
        )
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


def cases(store: Store) -> list[tuple[str, Callable[..., Awaitable[Page]], dict[str, Any]]]:
    """(what, the query, its arguments) for each list as the dashboard asks for it."""
    q = store.admin
    cp = "CP-001234"
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = {"limit": PAGE, "offset": 0}
    fleet: dict[str, Any] = {"online": None, "registration_status": None, **first}
    log: dict[str, Any] = {"action": None, "direction": None, "start": None, "end": None}
    log |= {"charge_point_id": None, **first}
    tx = TransactionFilter
    now = datetime.now(UTC)
    hour_ago, week_ago = now - timedelta(hours=1), now - timedelta(days=7)
    month_ago = now - timedelta(days=30)
    tags: dict[str, Any] = {"status": None, **first}
    return [
        ("charge points, by id", q.charge_points, fleet),
        ("charge points, page 200", q.charge_points, fleet | {"offset": 200 * PAGE}),
        (
            "charge points, by last seen desc",
            q.charge_points,
            fleet | {"order": Order("last_seen", descending=True)},
        ),
        (
            "charge points, q=0042, online",
            q.charge_points,
            fleet | {"online": True, "search": "0042"},
        ),
        ("transactions, newest first", q.transactions, first | {"filter": tx()}),
        (
            "transactions of a charge point",
            q.transactions,
            first | {"filter": tx(charge_point_id=cp)},
        ),
        ("transactions of an id tag", q.transactions, first | {"filter": tx(id_tag="tag-4242")}),
        (
            "transactions, started today, by start",
            q.transactions,
            first | {"filter": tx(start_from=day), "order": Order("started_at", descending=True)},
        ),
        (
            "transactions, q=TAG-4242 (common)",
            q.transactions,
            first | {"filter": tx(search="TAG-4242")},
        ),
        (
            "transactions, q=nothing (rare: a scan)",
            q.transactions,
            first | {"filter": tx(search="nothing")},
        ),
        (
            "transactions, by energy (a sort)",
            q.transactions,
            first | {"filter": tx(), "order": Order("energy_wh", descending=True)},
        ),
        ("message log, all, newest first", q.messages, log),
        ("message log of a charge point", q.messages, log | {"charge_point_id": cp}),
        (
            "message log, action=StatusNotification",
            q.messages,
            log | {"action": "StatusNotification"},
        ),
        ("message log, q=CP-00123", q.messages, log | {"search": "CP-00123"}),
        (
            "message log of a charge point, its newest (a live page's new rows)",
            q.messages,
            log | {"charge_point_id": cp, "start": datetime.now(UTC) - timedelta(seconds=30)},
        ),
        (
            "charge points, last seen within the hour",
            q.charge_points,
            fleet | {"period": Period("last_seen", hour_ago)},
        ),
        (
            "charge points, registered in a month",
            q.charge_points,
            fleet | {"period": Period("created_at", month_ago, week_ago)},
        ),
        ("id tags, by id", q.id_tags, tags),
        (
            "id tags, expiring within a month",
            q.id_tags,
            tags | {"period": Period("expiry_date", now, now + timedelta(days=30))},
        ),
        (
            "id tags, expiring within a month, soonest first",
            q.id_tags,
            tags
            | {
                "period": Period("expiry_date", now, now + timedelta(days=30)),
                "order": Order("expiry_date"),
            },
        ),
        (
            "id tags, added in a month",
            q.id_tags,
            tags | {"period": Period("created_at", month_ago, week_ago)},
        ),
        (
            "id tags, added in a week, newest first",
            q.id_tags,
            tags
            | {
                "period": Period("created_at", week_ago),
                "order": Order("created_at", descending=True),
            },
        ),
        ("status history of a charge point", q.status_history, first | {"charge_point_id": cp}),
        ("refused id tags", q.refused_id_tags, first | {"reason": None}),
    ]


async def measure(url: str, data_dir: Path, repeats: int) -> list[dict[str, Any]]:
    rows = []
    async with (
        trio_asyncio.open_loop(),
        open_store(url, data_dir, migrate_first=False, background=False) as store,
    ):
        for name, query, arguments in cases(store):
            times = []
            page = None
            for _ in range(repeats):
                started = time.perf_counter()
                page = await query(**arguments)
                times.append(time.perf_counter() - started)
            assert page is not None
            rows.append(
                {
                    "query": name,
                    "best_ms": round(min(times) * 1000, 1),
                    "rows": len(page.items),
                    "total": page.total,
                    "capped": page.total_capped,
                }
            )
            print(rows[-1], file=sys.stderr)
    return rows


def markdown(result: dict[str, Any]) -> str:
    s = result["setup"]
    lines = [
        f"List queries, one page of {PAGE} with its count: {s['charge_points']:,} charge points,"
        f" {s.get('id_tags', 50_000):,} id tags,"
        f" {s['transactions']:,} transactions, {s['messages']:,} logged frames,"
        f" {s['status_changes']:,} status changes; best of {s['repeats']}.",
        "",
        "| query | ms | rows | total |",
        "|---|--:|--:|--:|",
    ]
    for r in result["queries"]:
        total = f"{r['total']:,}" + ("+" if r["capped"] else "")
        lines.append(f"| {r['query']} | {r['best_ms']} | {r['rows']} | {total} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.list_queries", description=__doc__)
    parser.add_argument("--charge-points", type=int, default=20_000)
    parser.add_argument("--id-tags", type=int, default=50_000)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--status-changes", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="voltaro-lists-") as workdir:
        data_dir = Path(workdir)
        embedded = start_embedded(data_dir)
        try:
            url = embedded_url(embedded)
            asyncio.run(seed(url, args))
            queries = trio.run(measure, url, data_dir, args.repeats)
        finally:
            stop_embedded(embedded)
    result = {
        "setup": {k: v for k, v in vars(args).items() if k != "out"},
        "queries": queries,
    }
    table = markdown(result)
    path = write_results(args.out, "list-queries", result, table)
    print(table)
    print(f"results: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
