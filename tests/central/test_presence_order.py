"""A charger's presence records are committed in the order they were made, whatever the
writer goes through: a charger that left is never shown online because an earlier "online"
of it was written after its "offline" (by the group-commit writer, against the real
database; a row lock held by the test keeps the writer's batch waiting where needed)."""

from __future__ import annotations

from typing import Any

import trio

from tests.central.helpers import fetch
from voltaro.central import CentralSystem
from voltaro.central.timestamps import utc_now

SLEEPING = "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
WAITING = (
    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND datname = current_database()"
)


async def hold_row(central: CentralSystem, charge_point_id: str, seconds: float) -> None:
    """Lock the charge point's row for ``seconds`` (a transaction of the pool's), so that
    the writer's next presence update of it waits."""

    async def hold(connection: Any) -> None:
        await connection.execute(
            "SELECT 1 FROM charge_points WHERE id = $1 FOR UPDATE", charge_point_id
        )
        await connection.execute("SELECT pg_sleep($1)", seconds)

    await central.store.database.run_in_transaction(hold, deadline=seconds + 30)


async def until(central: CentralSystem, sql: str) -> list[dict[str, Any]]:
    with trio.fail_after(15):
        while not (rows := await fetch(central, sql)) or rows == [{"n": 0}]:
            await trio.sleep(0.01)
    return rows


async def online(central: CentralSystem, charge_point_id: str) -> bool:
    rows = await fetch(central, "SELECT online FROM charge_points WHERE id = $1", charge_point_id)
    return bool(rows[0]["online"])


async def test_an_online_record_failed_in_an_outage_does_not_outlive_the_offline_one(
    central: CentralSystem, nursery: trio.Nursery
) -> None:
    """The session's online record is in a batch that fails (its connection is lost) after
    the session ended and its offline record was queued: the offline one is the truth."""
    presence, writer = central.presence, central.store.writer
    await central.store.charge_points.upsert("BRIEF")
    nursery.start_soon(hold_row, central, "BRIEF", 3)
    await until(central, SLEEPING)
    presence.online_soon("BRIEF")  # its batch waits for the row
    [blocked] = await until(central, WAITING)
    offline = trio.Event()

    async def leave() -> None:
        await presence.offline("BRIEF", "closed by the charger")
        offline.set()

    nursery.start_soon(leave)
    with trio.fail_after(15):  # queued behind the waiting batch
        while len(writer._submitted) < 1:
            await trio.sleep(0.01)
    failed = writer.failed_batches
    await fetch(central, "SELECT pg_terminate_backend($1)", blocked["pid"])  # connection lost
    with trio.fail_after(15):
        await offline.wait()
    assert writer.failed_batches == failed + 1
    await writer.flush()
    assert not await online(central, "BRIEF")
    events = await fetch(
        central,
        "SELECT online FROM presence_events WHERE charge_point_id = 'BRIEF' ORDER BY id",
    )
    assert events[-1] == {"online": False}


async def test_a_charger_that_spoke_again_then_left_is_offline(
    central: CentralSystem, nursery: trio.Nursery
) -> None:
    """Declared overdue, it speaks (online again) and leaves at once while the writer is
    busy: its online record must not be written after its offline one."""
    presence, store = central.presence, central.store
    for cp in ("QUIET", "BLOCKER"):
        await store.charge_points.upsert(cp)
    await presence.online("QUIET")
    await presence.overdue("QUIET")
    nursery.start_soon(hold_row, central, "BLOCKER", 2)
    await until(central, SLEEPING)
    store.charge_points.presence_soon(
        "BLOCKER", True, "connected", utc_now(), "elsewhere", on_done=lambda error: None
    )
    await until(central, WAITING)  # the writer's batch waits for the row
    presence.spoke_again("QUIET")
    await presence.offline("QUIET", "closed by the charger")
    await store.writer.flush()
    assert not await online(central, "QUIET")
