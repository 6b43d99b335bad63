"""The charts' numbers (migration 0016): known transactions and status changes give known
energy per day, sessions per hour, samples and utilisation, before and after the fold."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

from voltaro.store import Store
from voltaro.store.dashboard_queries import DashboardQueries, DayEnergy
from voltaro.store.records import StatusChange

DAY1 = datetime(2026, 11, 20, tzinfo=UTC)


async def _transaction(
    store: Store,
    cp: str,
    started: datetime,
    meter_start: int,
    stopped: datetime | None,
    meter_stop: int | None,
    connector: int = 1,
) -> int:
    started_tx = await store.transactions.start(
        cp, connector, "TAG1", started, meter_start, None, "Accepted", started
    )
    if stopped is not None:
        assert meter_stop is not None
        await store.transactions.stop(
            cp, started_tx.transaction_id, stopped, meter_stop, None, None, stopped
        )
    return started_tx.transaction_id


async def _known_week(store: Store) -> None:
    """Nov 20: 10 + 5 kWh (one started the day before); Nov 21: 7 kWh and one negative
    (left out, but counted as a session); Nov 22: nothing; Nov 23: 2 kWh on another charger;
    and one still open since Nov 23."""
    for cp in ("CP-A", "CP-B"):
        await store.charge_points.register(cp, "Accepted")
    await _transaction(
        store, "CP-A", DAY1 - timedelta(hours=2), 1000, DAY1 + timedelta(hours=1), 11_000
    )
    await _transaction(
        store, "CP-A", DAY1 + timedelta(hours=9), 20_000, DAY1 + timedelta(hours=10), 25_000
    )
    await _transaction(
        store,
        "CP-A",
        DAY1 + timedelta(days=1, hours=8),
        30_000,
        DAY1 + timedelta(days=1, hours=9),
        37_000,
    )
    await _transaction(
        store,
        "CP-A",
        DAY1 + timedelta(days=1, hours=12),
        40_000,
        DAY1 + timedelta(days=1, hours=13),
        39_000,
    )
    await _transaction(
        store,
        "CP-B",
        DAY1 + timedelta(days=3, hours=23),
        0,
        DAY1 + timedelta(days=3, hours=23, minutes=30),
        2_000,
        connector=2,
    )
    await _transaction(
        store, "CP-B", DAY1 + timedelta(days=3, hours=23, minutes=40), 5_000, None, None
    )


EXPECTED_WEEK = [
    DayEnergy(date(2026, 11, 19), 0.0, 0),
    DayEnergy(date(2026, 11, 20), 15_000.0, 2),
    DayEnergy(date(2026, 11, 21), 7_000.0, 2),
    DayEnergy(date(2026, 11, 22), 0.0, 0),
    DayEnergy(date(2026, 11, 23), 2_000.0, 1),
    DayEnergy(date(2026, 11, 24), 0.0, 0),
]


async def test_energy_per_day_is_known_before_and_after_the_fold(store: Store) -> None:
    queries = DashboardQueries(store.database)
    await _known_week(store)
    first, last, today = date(2026, 11, 19), date(2026, 11, 24), date(2026, 12, 1)
    live = await queries.energy_per_day(first, last, today)  # every day still pending
    assert live == EXPECTED_WEEK
    assert await store.fleet_stats.fold() == 3  # the days with stops: 20, 21, 23
    assert await _pending(store) == 0
    assert await queries.energy_per_day(first, last, today) == EXPECTED_WEEK  # the rollup
    rollup = await store.database.run(
        lambda c: c.fetch("SELECT day, energy_wh, sessions FROM energy_per_day ORDER BY day")
    )
    assert [tuple(r) for r in rollup] == [
        (date(2026, 11, 20), 15_000.0, 2),
        (date(2026, 11, 21), 7_000.0, 2),
        (date(2026, 11, 23), 2_000.0, 1),
    ]
    assert await queries.charge_point_energy_per_day("CP-A", first, last) == [
        DayEnergy(d.day, d.energy_wh, d.sessions)
        if d.day < date(2026, 11, 23)
        else DayEnergy(d.day, 0.0, 0)
        for d in EXPECTED_WEEK
    ]
    assert [
        d.energy_wh for d in await queries.charge_point_energy_per_day("CP-B", first, last)
    ] == [0.0, 0.0, 0.0, 0.0, 2_000.0, 0.0]


async def test_a_late_stop_changes_its_own_day_however_old(store: Store) -> None:
    queries = DashboardQueries(store.database)
    await _known_week(store)
    await store.fleet_stats.fold()
    open_id = await store.database.run(
        lambda c: c.fetchval("SELECT transaction_id FROM transactions WHERE stopped_at IS NULL")
    )
    # the open one stops (queued while offline) at 23:55 on Nov 23, arriving much later
    stopped = DAY1 + timedelta(days=3, hours=23, minutes=55)
    await store.transactions.stop(
        "CP-B", open_id, stopped, 8_000, None, None, stopped + timedelta(days=5)
    )
    first, last, today = date(2026, 11, 19), date(2026, 11, 24), date(2026, 12, 1)
    expected = [
        d if d.day != date(2026, 11, 23) else DayEnergy(d.day, 5_000.0, 2) for d in EXPECTED_WEEK
    ]
    assert await queries.energy_per_day(first, last, today) == expected  # pending: live
    assert await store.fleet_stats.fold() == 1
    assert await queries.energy_per_day(first, last, today) == expected
    # a transaction removed by hand takes its energy with it
    await store.database.run(
        lambda c: c.execute("DELETE FROM transactions WHERE transaction_id = $1", open_id)
    )
    await store.fleet_stats.fold()
    assert (await queries.energy_per_day(first, last, today))[4] == DayEnergy(
        date(2026, 11, 23), 2_000.0, 1
    )


async def test_the_overview_counts_today_and_the_month_through_the_rollup(store: Store) -> None:
    queries = DashboardQueries(store.database)
    await _known_week(store)
    await store.fleet_stats.fold()
    day = DAY1 + timedelta(days=3)  # "today" is Nov 23: 2 kWh stopped, 3 kWh running
    await store.database.run(
        lambda c: c.execute("UPDATE transactions SET energy_wh = 3000 WHERE stopped_at IS NULL")
    )
    overview = await queries.overview(day, day.replace(day=1))
    assert overview.energy_today_wh == 5_000.0
    assert overview.energy_month_wh == 15_000 + 7_000 + 2_000 + 3_000
    assert overview.active_transactions == 1
    for cp, connector, status in (
        ("CP-A", 1, "Charging"),
        ("CP-A", 2, "Faulted"),
        ("CP-A", 0, "Faulted"),
        ("CP-B", 1, "Charging"),
        ("CP-B", 2, "Available"),
    ):
        await store.connectors.record_status(cp, _status(connector, status, DAY1))
    overview = await queries.overview(day, day.replace(day=1))
    assert (overview.faulted, overview.charging) == (1, 2)


async def test_sessions_per_hour(store: Store) -> None:
    queries = DashboardQueries(store.database)
    await _known_week(store)
    hours = await queries.sessions_per_hour(DAY1 + timedelta(days=3, hours=20), 6)
    assert [(h.hour.hour, h.sessions) for h in hours] == [
        (20, 0),
        (21, 0),
        (22, 0),
        (23, 2),
        (0, 0),
        (1, 0),
    ]
    assert await queries.sessions_per_hour(DAY1 - timedelta(hours=2), 1) == [
        type(hours[0])(DAY1 - timedelta(hours=2), 1)
    ]


def _status(connector: int, status: str, at: datetime) -> StatusChange:
    return StatusChange(connector, status, None, "NoError", None, None, None, at, at, False)


async def test_utilisation_is_the_share_of_time_charging(store: Store) -> None:
    queries = DashboardQueries(store.database)
    await store.charge_points.register("CP-U", "Accepted")
    t0 = DAY1
    changes = [
        (1, "Available", t0 - timedelta(days=3)),  # before the period: Available at its start
        (1, "Charging", t0 + timedelta(hours=2)),
        (1, "Finishing", t0 + timedelta(hours=5)),
        (1, "Charging", t0 + timedelta(hours=20)),  # still charging at the end: 4 h
        (2, "Available", t0 + timedelta(hours=12)),  # known only for the last 12 h
        (2, "Charging", t0 + timedelta(hours=18)),
        (2, "Available", t0 + timedelta(hours=21)),
        (0, "Available", t0),  # the charger itself is not a connector
    ]
    for connector, status, at in changes:
        await store.connectors.record_status("CP-U", _status(connector, status, at))
    used = await queries.utilisation("CP-U", t0, t0 + timedelta(hours=24))
    assert [(u.connector_id, u.charging_seconds / 3600, u.known_seconds / 3600) for u in used] == [
        (1, 7.0, 24.0),
        (2, 3.0, 12.0),
    ]
    assert used[1].share == 0.25
    # a period in which nothing is known
    early = await queries.utilisation("CP-U", t0 - timedelta(days=10), t0 - timedelta(days=9))
    assert [(u.connector_id, u.known_seconds, u.share) for u in early] == [
        (1, 0.0, 0.0),
        (2, 0.0, 0.0),
    ]


async def test_a_sample_is_taken_once_per_period(store: Store) -> None:
    queries = DashboardQueries(store.database)
    for n in range(3):
        await store.charge_points.register(f"CP-S{n}", "Accepted")
    now = datetime.now(UTC)
    await store.database.run(
        lambda c: c.execute("UPDATE charge_points SET online = true WHERE id <> 'CP-S2'")
    )
    await store.connectors.record_status("CP-S0", _status(1, "Charging", now))
    await store.connectors.record_status("CP-S0", _status(2, "Charging", now))
    await store.connectors.record_status("CP-S1", _status(1, "Available", now))
    await store.connectors.record_status("CP-S2", _status(1, "Charging", now))  # offline
    await store.connectors.record_status("CP-S1", _status(0, "Charging", now))  # not a connector
    taken = [await store.fleet_stats.sample(), await store.fleet_stats.sample()]
    samples = await queries.fleet_samples(now - timedelta(hours=1), now + timedelta(hours=1))
    assert taken[0] is True  # the first in a fresh database
    # the second is refused, unless a five-minute boundary fell between the two
    assert len(samples) == sum(taken)
    last = samples[-1]
    assert (last.charge_points, last.online, last.charging) == (3, 2, 2)
    assert last.at.minute % 5 == 0 and last.at.second == 0


async def _pending(store: Store) -> Any:
    return await store.database.run(
        lambda c: c.fetchval("SELECT count(*) FROM energy_per_day_pending")
    )
