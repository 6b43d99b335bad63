"""Presence and connector status are written once per batch for many chargers: the last
change of a charger (or connector) in a batch is the one that stays."""

from datetime import UTC, datetime, timedelta
from typing import Any

import trio
import trio.testing

from voltaro.store import Store
from voltaro.store.charge_point_cache import AdmissionFacts
from voltaro.store.records import BootDetails, StatusChange
from voltaro.store.writer import Write

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def _hold_the_writer(store: Store, nursery: trio.Nursery) -> None:
    """Start a slow write, so what is submitted next waits and shares one batch."""

    async def slow(connection: Any) -> None:
        await connection.execute("SELECT pg_sleep(0.3)")

    nursery.start_soon(store.writer.submit, Write(slow, label="slow"))
    await trio.sleep(0.05)


def _status(connector_id: int, status: str, at: datetime) -> StatusChange:
    return StatusChange(connector_id, status, None, "NoError", None, None, None, at, at, False)


async def test_the_last_status_of_a_connector_in_a_batch_wins(store: Store) -> None:
    await store.charge_points.register("CP-M1", "Accepted")
    commits_before = store.writer.commits
    statuses = ["Available", "Preparing", "Charging", "SuspendedEV", "Finishing"]
    async with trio.open_nursery() as nursery:
        await _hold_the_writer(store, nursery)
        for n, status in enumerate(statuses):  # queued in this order, one batch
            nursery.start_soon(
                store.connectors.record_status, "CP-M1", _status(1, status, T0 + timedelta(n))
            )
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(store.connectors.record_status, "CP-M1", _status(2, "Faulted", T0))
    assert store.writer.commits - commits_before == 2  # the slow write, then all the rest
    assert await store.connectors.statuses("CP-M1") == {1: "Finishing", 2: "Faulted"}
    history = await store.database.run(
        lambda c: c.fetch(
            "SELECT status FROM connector_status_history"
            " WHERE charge_point_id = 'CP-M1' AND connector_id = 1 ORDER BY id"
        )
    )
    assert [row[0] for row in history] == statuses  # every change is in the history


def _presence_soon(store: Store, *args: Any) -> None:
    store.charge_points.presence_soon(*args, on_done=lambda error: None)


async def test_the_last_presence_change_in_a_batch_wins(store: Store) -> None:
    for cp in ("CP-P1", "CP-P2"):
        await store.charge_points.register(cp, "Accepted")
    async with trio.open_nursery() as nursery:
        await _hold_the_writer(store, nursery)
        _presence_soon(store, "CP-P1", True, "connected", T0, "I1")
        _presence_soon(store, "CP-P1", False, "disconnected", T0 + timedelta(1), "I1")
        _presence_soon(store, "CP-P2", False, "disconnected", T0, "I1")
        _presence_soon(store, "CP-P2", True, "connected", T0 + timedelta(2), "I1")
    await store.writer.flush()
    p1 = await store.charge_points.get("CP-P1")
    p2 = await store.charge_points.get("CP-P2")
    assert p1 is not None and p2 is not None
    assert (p1.online, p2.online) == (False, True)
    assert p1.last_seen == T0  # going online counts as seen; going offline does not
    assert p2.last_seen == T0 + timedelta(2)
    events = await store.database.run(
        lambda c: c.fetch(
            "SELECT charge_point_id, online FROM presence_events"
            " WHERE charge_point_id LIKE 'CP-P_' ORDER BY id"
        )
    )
    assert [tuple(row) for row in events] == [
        ("CP-P1", True),
        ("CP-P1", False),
        ("CP-P2", False),
        ("CP-P2", True),
    ]


async def test_boots_in_one_batch_each_get_their_charge_points_status(store: Store) -> None:
    """One statement answers every boot of a batch: a known charger keeps its status, a new
    one gets the status for new chargers, a charger that booted twice keeps its last boot's
    details, and every boot is in the history."""
    await store.charge_points.register("CP-B1", "Rejected")
    boots = [
        ("CP-B1", BootDetails("V", "M", firmware_version="1.0")),
        ("CP-B2", BootDetails("V", "M", firmware_version="1.0")),
        ("CP-B1", BootDetails("V", "M", firmware_version="2.0\x00")),
    ]
    answers: dict[int, str] = {}

    async def boot(n: int, charge_point_id: str, details: BootDetails) -> None:
        payload = {"chargePointVendor": "V", "chargePointModel": "M", "n": n}
        at = T0 + timedelta(seconds=n)
        answers[n] = await store.charge_points.boot(
            charge_point_id, details, payload, at, "Pending"
        )

    commits_before = store.writer.commits
    async with trio.open_nursery() as nursery:
        await _hold_the_writer(store, nursery)
        for n, (charge_point_id, details) in enumerate(boots):
            nursery.start_soon(boot, n, charge_point_id, details)
            await trio.testing.wait_all_tasks_blocked()
    assert store.writer.commits - commits_before == 2  # the slow write, then the three boots
    assert answers == {0: "Rejected", 1: "Pending", 2: "Rejected"}
    b1 = await store.charge_points.get("CP-B1")
    b2 = await store.charge_points.get("CP-B2")
    assert b1 is not None and b2 is not None
    assert (b1.firmware_version, b1.last_boot_at) == ("2.0\ufffd", T0 + timedelta(seconds=2))
    assert (b2.registration_status, b2.firmware_version) == ("Pending", "1.0")
    history = await store.database.run(
        lambda c: c.fetch(
            "SELECT charge_point_id, registration_status, payload->>'n' FROM boot_notifications"
            " WHERE charge_point_id LIKE 'CP-B_' ORDER BY id"
        )
    )
    assert [tuple(row) for row in history] == [
        ("CP-B1", "Rejected", "0"),
        ("CP-B2", "Pending", "1"),
        ("CP-B1", "Rejected", "2"),
    ]


async def test_registrations_in_one_batch_each_get_their_charge_points_facts(
    store: Store,
) -> None:
    """One statement registers every unknown charge point of a batch: a new one gets the
    status asked for, a known one keeps its row (status, password, lenient), and one
    registered twice in the batch is added once."""
    await store.charge_points.upsert("CP-R1", status="Rejected", password_hash="h", lenient=True)
    asked = [("CP-R1", "Accepted"), ("CP-R2", "Pending"), ("CP-R2", "Accepted")]
    answers: dict[int, AdmissionFacts | None] = {}

    async def register(n: int, charge_point_id: str, status: str) -> None:
        answers[n] = await store.charge_points.register(charge_point_id, status)

    commits_before = store.writer.commits
    async with trio.open_nursery() as nursery:
        await _hold_the_writer(store, nursery)
        for n, (charge_point_id, status) in enumerate(asked):
            nursery.start_soon(register, n, charge_point_id, status)
            await trio.testing.wait_all_tasks_blocked()
    assert store.writer.commits - commits_before == 2  # the slow write, then the three
    assert answers == {
        0: AdmissionFacts("Rejected", "h", True),
        1: AdmissionFacts("Pending", None, False),
        2: AdmissionFacts("Pending", None, False),
    }
    r2 = await store.charge_points.get("CP-R2")
    assert r2 is not None and r2.registration_status == "Pending"


async def test_an_instance_marks_offline_only_chargers_it_holds(store: Store) -> None:
    for cp in ("CP-I1", "CP-I2"):
        await store.charge_points.register(cp, "Accepted")
    await store.charge_points.presence("CP-I1", True, "connected", T0, "node-a")
    await store.charge_points.presence("CP-I2", True, "connected", T0, "node-b")
    # CP-I1 moved to node-b; node-a's late word about its old session changes nothing
    await store.charge_points.presence("CP-I1", True, "connected", T0 + timedelta(1), "node-b")
    await store.charge_points.presence("CP-I1", False, "disconnected", T0 + timedelta(2), "node-a")
    held = await store.charge_points.get("CP-I1")
    assert held is not None and held.online
    # node-a restarts: nothing of node-b's goes offline
    assert await store.charge_points.mark_instance_offline("node-a", "restart", T0) == []
    assert sorted(await store.charge_points.mark_instance_offline("node-b", "stop", T0)) == [
        "CP-I1",
        "CP-I2",
    ]
    # a charger that speaks on node-a's live session is recorded online there again
    assert await store.charge_points.restore_online(["CP-I1"], "node-a", "back", T0) == ["CP-I1"]
    assert await store.charge_points.restore_online(["CP-I1"], "node-a", "back", T0) == []
    back = await store.charge_points.get("CP-I1")
    assert back is not None and back.online
