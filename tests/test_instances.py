"""Several Voltaro instances on one database, each with its own OCPP port and admin API (in
one test process, over real WebSockets and HTTP): a command sent to any instance reaches the
charger wherever it is connected, the newest connection wins across instances, a dead
instance's chargers go offline when its lease runs out, and a tag changed through one
instance reaches the local list of a charger held by another."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.e2e import e2e_settings, fetch, never_busy, ws_url
from tests.harness import RawCharger
from voltaro.app import Voltaro, start_ocpp_worker, start_voltaro
from voltaro.central.domain_events import BackOnline, Booted, event_json
from voltaro.central.local_list_entries import apply_update
from voltaro.config import Settings
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt 1"}
TOKEN = "multi-instance-test-token"


async def start(nursery: trio.Nursery, settings: Settings, tmp: Path, name: str) -> Voltaro:
    changed = e2e_settings(
        settings,
        unknown_chargers="accept",
        admin_port=0,
        admin_token=TOKEN,
        data_dir=tmp / name,
        heartbeat_interval=2,  # housekeeping (leases, sweeps) every 1.25 s
        heartbeat_grace=1,
        instance_lease=3,
    )
    voltaro: Voltaro = await nursery.start(start_voltaro, changed)
    never_busy(voltaro)
    return voltaro


async def two_with_a_charger(
    nursery: trio.Nursery, settings: Settings, tmp: Path, charge_point_id: str
) -> tuple[Voltaro, Voltaro, RawCharger]:
    """Instances ``a`` and ``b``, and the charger booted on ``a``."""
    first = await start(nursery, settings, tmp, "a")
    second = await start(nursery, settings, tmp, "b")
    charger = await RawCharger.connect(nursery, ws_url(first, charge_point_id))
    assert (await charger.call("BootNotification", BOOT))[0] == 3
    return first, second, charger


def api(voltaro: Voltaro) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=voltaro.admin_url or "", headers={"Authorization": f"Bearer {TOKEN}"}
    )


async def answer_calls(charger: RawCharger, answers: dict[str, dict[str, Any]]) -> None:
    """Answer each CALL the server sends with the action's canned payload (CALLERROR
    NotImplemented for others, as a charger without a local list answers GetLocalListVersion)."""
    while True:
        frame = await charger.receive(timeout=60)
        if frame[0] == 2 and frame[2] in answers:
            await charger.send([3, frame[1], answers[frame[2]]])
        elif frame[0] == 2:
            await charger.send([4, frame[1], "NotImplemented", "not here", {}])


async def test_a_command_sent_to_any_instance_reaches_the_charger(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    first = await start(nursery, voltaro_settings, tmp_path, "a")
    second = await start(nursery, voltaro_settings, tmp_path, "b")
    assert first.central.instance_id != second.central.instance_id
    charger = await RawCharger.connect(nursery, ws_url(first, "ROUTED"))
    assert (await charger.call("BootNotification", BOOT))[0] == 3
    answers = {
        "GetConfiguration": {"configurationKey": [{"key": "K", "readonly": True, "value": "1"}]},
        "Reset": {"status": "Accepted"},
    }
    nursery.start_soon(answer_calls, charger, answers)
    path = "/api/v1/charge-points/ROUTED/commands"
    async with api(second) as through_second, api(first) as through_first:
        got = await through_second.post(f"{path}/GetConfiguration", json={})
        assert got.status_code == 200, got.text
        assert got.json() == {"result": answers["GetConfiguration"]}
        # the effect was applied (by the instance holding the charger): the key is known
        detail = (await through_second.get("/api/v1/charge-points/ROUTED")).json()
        assert [(c["key"], c["value"]) for c in detail["configuration"]] == [("K", "1")]
        local = await through_first.post(f"{path}/Reset", json={"type": "Soft"})
        assert local.json() == {"result": {"status": "Accepted"}}
        unknown = await through_second.post(
            "/api/v1/charge-points/NOBODY/commands/Reset", json={"type": "Soft"}
        )
        assert unknown.status_code == 404
    assert second.central._router is not None and second.central._router.routed == 1
    assert first.central._router is not None and first.central._router.served == 1


async def test_a_routed_command_keeps_the_http_answers(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    _, second, charger = await two_with_a_charger(nursery, voltaro_settings, tmp_path, "PICKY")

    async def refuse_then_stay_silent() -> None:
        frame = await charger.receive()
        await charger.send([4, frame[1], "NotSupported", "not here", {"hint": "x"}])
        await charger.receive()  # the second call: never answered

    nursery.start_soon(refuse_then_stay_silent)
    path = "/api/v1/charge-points/PICKY/commands/ClearCache"
    async with api(second) as http:
        refused = await http.post(path, json={})
        assert refused.status_code == 502
        assert refused.json()["code"] == "NotSupported"
        assert refused.json()["details"] == {"hint": "x"}
        silent = await http.post(path, params={"timeout": "1"}, json={})
        assert silent.status_code == 504
        assert "did not answer ClearCache within 1 s" in silent.json()["detail"]
    await charger.close()
    async with api(second) as http:
        with trio.fail_after(15):
            while True:  # once the first instance recorded it offline: not connected
                gone = await http.post(path, json={})
                if gone.status_code == 409:
                    break
                await trio.sleep(0.1)


async def test_the_newest_connection_wins_across_instances(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    first = await start(nursery, voltaro_settings, tmp_path, "a")
    second = await start(nursery, voltaro_settings, tmp_path, "b")
    old = await RawCharger.connect(nursery, ws_url(first, "MOVER"))
    assert (await old.call("BootNotification", BOOT))[0] == 3
    new = await RawCharger.connect(nursery, ws_url(second, "MOVER"))
    assert (await new.call("BootNotification", BOOT))[0] == 3
    with pytest.raises(ConnectionClosed) as closed:
        await old.receive(timeout=15)
    assert closed.value.reason.code == 1008
    assert closed.value.reason.reason == "replaced by a newer connection on another instance"
    assert "MOVER" in second.sessions
    with trio.fail_after(5):
        while "MOVER" in first.sessions:
            await trio.sleep(0.02)
    rows = await fetch(first, "SELECT online, instance_id FROM charge_points WHERE id = 'MOVER'")
    assert rows == [{"online": True, "instance_id": second.central.instance_id}]
    assert (await new.call("Heartbeat", {}))[0] == 3


async def test_a_dead_instances_chargers_go_offline_when_its_lease_runs_out(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    live = await start(nursery, voltaro_settings, tmp_path, "a")
    # an instance that died without a word: its lease runs out, its chargers are online
    await fetch(
        live,
        "INSERT INTO instances (id, host, pid, alive_until) VALUES"
        " ('dead-node', 'gone', 1, now() + interval '1 second')",
    )
    for cp in ("ORPHAN", "MOVED-ON"):
        await fetch(
            live,
            "INSERT INTO charge_points (id, registration_status, online, instance_id)"
            " VALUES ($1, 'Accepted', true, 'dead-node')",
            cp,
        )
    # one of them reconnected elsewhere (here) before the lease ran out
    charger = await RawCharger.connect(nursery, ws_url(live, "MOVED-ON"))
    assert (await charger.call("BootNotification", BOOT))[0] == 3
    with trio.fail_after(15):
        while await fetch(live, "SELECT 1 FROM instances WHERE id = 'dead-node'"):
            await trio.sleep(0.1)
    rows = await fetch(live, "SELECT id, online, instance_id FROM charge_points ORDER BY id")
    assert rows == [
        {"id": "MOVED-ON", "online": True, "instance_id": live.central.instance_id},
        {"id": "ORPHAN", "online": False, "instance_id": None},
    ]
    events = await fetch(
        live, "SELECT reason FROM presence_events WHERE charge_point_id = 'ORPHAN'"
    )
    assert events == [{"reason": "instance lease expired"}]


async def test_the_instances_are_listed_with_the_chargers_each_holds(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    first, second, _ = await two_with_a_charger(nursery, voltaro_settings, tmp_path, "LISTED")
    ids = sorted([first.central.instance_id, second.central.instance_id])
    async with api(second) as through_second:
        listed = await through_second.get("/api/v1/instances")
        assert listed.status_code == 200, listed.text
        items = {item["id"]: item for item in listed.json()["items"]}
        assert sorted(items) == ids and listed.json()["total"] == 2
        assert items[first.central.instance_id]["chargers"] == 1
        assert items[second.central.instance_id]["chargers"] == 0
        assert all(item["live"] and item["pid"] > 0 for item in items.values())
        dead = await through_second.get("/api/v1/instances", params={"live": "false"})
        assert dead.json()["total"] == 0
    async with httpx.AsyncClient(base_url=second.admin_url or "") as browser:
        signed_in = await browser.post("/login", data={"token": TOKEN, "next": "/"})
        assert signed_in.status_code == 302
        page = (await browser.get("/instances")).text
        assert '<a href="/instances" aria-current="page">Instances</a>' in page
        assert '<th scope="col">Chargers online</th>' in page
        assert all(instance_id in page for instance_id in ids)


async def boot_and_see_relayed(
    nursery: trio.Nursery, first: Voltaro, second: Voltaro, *, instances: int
) -> Booted:
    """Once ``first`` knows of all ``instances``, boot charger FAR on it; the Booted event
    as ``second`` publishes it."""
    membership = first.central._membership
    assert membership is not None
    with trio.fail_after(15):  # the first learns of the others at its next renewal
        while membership.alive < instances:
            await trio.sleep(0.05)
    with second.central.events.subscribe() as events:
        charger = await RawCharger.connect(nursery, ws_url(first, "FAR"))
        assert (await charger.call("BootNotification", BOOT))[0] == 3
        with trio.fail_after(15):
            async for event in events:
                if isinstance(event, Booted) and event.charge_point_id == "FAR":
                    return event
    raise AssertionError("the event stream ended")


async def test_live_events_reach_every_instance(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    first = await start(nursery, voltaro_settings, tmp_path, "a")
    second = await start(nursery, voltaro_settings, tmp_path, "b")
    event = await boot_and_see_relayed(nursery, first, second, instances=2)
    assert event.origin == first.central.instance_id
    assert (event.vendor, event.model, event.status) == ("Acme", "Volt 1", "Accepted")
    assert event_json(event)["type"] == "boot"
    # the first instance's own bus has it once, not relayed back to it
    booted_here = [e for e in first.central.events.recent if isinstance(e, Booted)]
    assert len(booted_here) == 1 and booted_here[0].origin is None


async def test_a_worker_without_a_dashboard_is_not_sent_the_live_events_of_others(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    """A worker of ``--workers`` shows no dashboard: other instances' events are not
    relayed to it (an instance with a dashboard still gets them)."""
    first = await start(nursery, voltaro_settings, tmp_path, "a")
    second = await start(nursery, voltaro_settings, tmp_path, "b")
    worker_settings = e2e_settings(
        voltaro_settings, unknown_chargers="accept", data_dir=tmp_path / "w", instance_lease=3
    )
    worker: Voltaro = await nursery.start(start_ocpp_worker, worker_settings, 0)
    await boot_and_see_relayed(nursery, first, second, instances=3)
    await trio.sleep(1)  # the relay's notification reached every listener at once
    assert [e for e in worker.central.events.recent if e.charge_point_id == "FAR"] == []


async def test_a_registration_change_through_any_instance_applies_at_once(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    _, second, charger = await two_with_a_charger(nursery, voltaro_settings, tmp_path, "DEMOTED")
    authorize = {"idTag": "ANY"}
    assert (await charger.call("Authorize", authorize))[0] == 3
    async with api(second) as http:
        changed = await http.put(
            "/api/v1/charge-points/DEMOTED", json={"registrationStatus": "Rejected"}
        )
        assert changed.status_code == 200
    with trio.fail_after(15):  # the first instance hears of it, and its live session follows
        while (answer := await charger.call("Authorize", authorize))[0] == 3:
            await trio.sleep(0.05)
    assert answer[2] == "SecurityError"


async def test_local_lists_follow_tag_changes_made_through_any_instance(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    quick = replace(voltaro_settings, local_list_debounce=0.2)
    first = await start(nursery, quick, tmp_path, "a")
    second = await start(nursery, quick, tmp_path, "b")
    charger = await RawCharger.connect(nursery, ws_url(first, "LISTED"))
    assert (await charger.call("BootNotification", BOOT))[0] == 3
    held: dict[str, Any] = {"version": 0, "entries": {}, "updates": []}

    async def keep_a_list() -> None:
        while True:
            frame = await charger.receive(timeout=60)
            action, payload = frame[2], frame[3]
            answer: dict[str, Any] = {"status": "Accepted"}
            if action == "GetLocalListVersion":
                answer = {"listVersion": held["version"]}
            elif action == "GetConfiguration":
                answer = {"configurationKey": []}
            elif action == "SendLocalList":
                held["entries"] = apply_update(held["entries"], payload)
                held["version"] = payload["listVersion"]
                held["updates"].append(payload["updateType"])
            await charger.send([3, frame[1], answer])

    nursery.start_soon(keep_a_list)
    async with api(second) as through_second:
        put = await through_second.put("/api/v1/id-tags/ELSEWHERE", json={"status": "Accepted"})
        assert put.status_code == 201
        with trio.fail_after(30):
            while held["entries"] != {"ELSEWHERE": {"status": "Accepted"}}:
                await trio.sleep(0.02)
        # The operator's check through the other instance: routed, its effect recorded by
        # the holder, whose task then resends the list the charger lost.
        held["entries"], held["version"] = {}, 0
        path = "/api/v1/charge-points/LISTED/commands/GetLocalListVersion"
        checked = await through_second.post(path, json={})
        assert checked.json() == {"result": {"listVersion": 0}}
        with trio.fail_after(30):
            while held["entries"] != {"ELSEWHERE": {"status": "Accepted"}}:
                await trio.sleep(0.02)
    assert held["updates"][-1] == "Full"
    query = "SELECT version, state FROM local_lists WHERE charge_point_id = 'LISTED'"
    with trio.fail_after(30):  # the answer is recorded after the charger sent it
        while await fetch(second, query) != [{"version": held["version"], "state": "synced"}]:
            await trio.sleep(0.02)


async def test_an_instance_found_expired_records_its_chargers_online_again_at_once(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    """Another instance expired this one while it ran (say it was starved of CPU for longer
    than its lease) and recorded its chargers offline: at its next renewal it records the
    ones still connected to it online again, without waiting for each to speak."""
    # nothing heard from the chargers once booted: no pings, no local-list sync
    quiet = replace(voltaro_settings, ping_interval=0, local_lists="off")
    live = await start(nursery, quiet, tmp_path, "a")
    instance = live.central.instance_id
    chargers = {}
    for cp in ("STILL-HERE", "LEFT"):
        chargers[cp] = await RawCharger.connect(nursery, ws_url(live, cp))
        assert (await chargers[cp].call("BootNotification", BOOT))[0] == 3
    await chargers["LEFT"].close()
    with trio.fail_after(15):
        while "LEFT" in live.sessions:
            await trio.sleep(0.02)
    with trio.fail_after(15):  # a restore round has passed since they last spoke
        while live.central.presence._heard:
            await trio.sleep(0.02)
    instances = live.central.store.instances
    back: list[BackOnline] = []
    live.central.events.add_listener(
        lambda event: back.append(event) if isinstance(event, BackOnline) else None
    )
    with trio.fail_after(15):  # as another instance would (retried if a renewal came first)
        while True:
            await fetch(
                live,
                "UPDATE instances SET alive_until = now() - interval '1 minute' WHERE id = $1",
                instance,
            )
            if await instances.expire_dead("judge", "instance lease expired"):
                break
    online = "SELECT online FROM charge_points WHERE id = 'STILL-HERE'"
    with trio.fail_after(15):
        while await fetch(live, online) != [{"online": True}]:
            await trio.sleep(0.05)
    rows = await fetch(live, "SELECT id, online, instance_id FROM charge_points ORDER BY id")
    assert rows == [
        {"id": "LEFT", "online": False, "instance_id": None},
        {"id": "STILL-HERE", "online": True, "instance_id": instance},
    ]
    events = await fetch(
        live,
        "SELECT online, reason FROM presence_events WHERE charge_point_id = 'STILL-HERE'"
        " ORDER BY at, online",
    )
    assert events[-2:] == [
        {"online": False, "reason": "instance lease expired"},
        {"online": True, "reason": "instance lease renewed"},
    ]
    assert await fetch(live, "SELECT id FROM instances") == [{"id": instance}]
    assert live.central._membership is not None and live.central._membership.rejoins == 1
    # the dashboard hears it (its row said offline)
    assert [(e.charge_point_id, e.reason) for e in back] == [
        ("STILL-HERE", "instance lease renewed")
    ]
