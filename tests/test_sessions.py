"""The session registry and presence, with a whole Voltaro over real WebSockets: the newest
connection wins, presence and last-seen come from what the charger sends, an instance marks
offline only its own chargers, and whatever marked a live charger offline wrongly is undone
by its next message."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.e2e import e2e_settings, fetch, start_voltaro_with_loop, ws_url
from tests.harness import RawCharger
from tests.threaded import trio_in_thread
from voltaro import cli
from voltaro.app import Voltaro, start_voltaro
from voltaro.central.domain_events import BackOnline, WentOffline
from voltaro.config import Settings
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings
from voltaro.store.writer import Write

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt 1"}


async def start(nursery: trio.Nursery, settings: Settings, **changes: Any) -> Voltaro:
    changes.setdefault("unknown_chargers", "accept")
    changes.setdefault("admin_port", 0)
    voltaro: Voltaro = await nursery.start(start_voltaro, e2e_settings(settings, **changes))
    return voltaro


async def presence_events(voltaro: Voltaro, charge_point_id: str) -> list[tuple[bool, str]]:
    rows = await fetch(
        voltaro,
        "SELECT online, reason FROM presence_events WHERE charge_point_id = $1 ORDER BY id",
        charge_point_id,
    )
    return [(row["online"], row["reason"]) for row in rows]


async def online(voltaro: Voltaro, charge_point_id: str) -> bool:
    record = await voltaro.central.store.charge_points.get(charge_point_id)
    return record is not None and record.online


async def eventually(check: Any, timeout: float = 15) -> None:
    with trio.fail_after(timeout):
        while not await check():
            await trio.sleep(0.05)


async def test_a_second_connection_replaces_the_first_and_the_charger_stays_online(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings)
    first = await RawCharger.connect(nursery, ws_url(voltaro, "DUP"))
    assert (await first.call("BootNotification", BOOT))[0] == 3
    first_session = voltaro.sessions.get("DUP")
    second = await RawCharger.connect(nursery, ws_url(voltaro, "DUP"))
    with pytest.raises(ConnectionClosed) as closed:
        await first.receive()
    assert closed.value.reason.code == 1008
    assert closed.value.reason.reason == "replaced by a newer connection"
    assert (await second.call("Heartbeat", {}))[0] == 3
    session = voltaro.sessions.get("DUP")
    assert session is not None and session is not first_session
    assert session.instance_id == voltaro.central.instance_id
    assert await online(voltaro, "DUP")
    await second.close()
    await eventually(lambda: _not_online(voltaro, "DUP"))
    assert "DUP" not in voltaro.sessions
    assert await presence_events(voltaro, "DUP") == [
        (True, "connected"),
        (False, "disconnected: code 1000"),
    ]


async def _not_online(voltaro: Voltaro, charge_point_id: str) -> bool:
    return not await online(voltaro, charge_point_id)


async def test_presence_and_last_seen_follow_what_the_charger_sends(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    # overdue after 2 x 1 s + 0.2 s of silence; housekeeping every 0.55 s
    voltaro = await start(nursery, voltaro_settings, heartbeat_interval=1, heartbeat_grace=0.2)
    charger = await RawCharger.connect(nursery, ws_url(voltaro, "QUIET"))
    with voltaro.central.events.subscribe() as events:
        assert (await charger.call("BootNotification", BOOT))[0] == 3

        async def last_seen_written() -> bool:
            rows = await fetch(voltaro, "SELECT last_seen FROM charge_points WHERE id = 'QUIET'")
            return rows[0]["last_seen"] is not None

        await eventually(last_seen_written)
        with trio.fail_after(15):  # silent: declared offline, the connection stays
            async for event in events:
                if isinstance(event, WentOffline) and event.charge_point_id == "QUIET":
                    break
        assert not await online(voltaro, "QUIET")
        assert "QUIET" in voltaro.sessions
        assert (await charger.call("Heartbeat", {}))[0] == 3  # it speaks again: online
        with trio.fail_after(15):  # said once committed (the dashboard's row updates)
            async for event in events:
                if isinstance(event, BackOnline) and event.charge_point_id == "QUIET":
                    break
        assert event.reason == "message received"
        assert await online(voltaro, "QUIET")
    assert (await presence_events(voltaro, "QUIET"))[:3] == [
        (True, "connected"),
        (False, "heartbeat overdue"),
        (True, "message received"),
    ]


async def test_a_charger_marked_offline_wrongly_is_online_again_at_its_next_message(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings, heartbeat_interval=2, heartbeat_grace=1)
    charger = await RawCharger.connect(nursery, ws_url(voltaro, "WRONGED"))
    assert (await charger.call("BootNotification", BOOT))[0] == 3
    await eventually(lambda: online(voltaro, "WRONGED"))
    await fetch(voltaro, "UPDATE charge_points SET online = false WHERE id = 'WRONGED'")
    assert (await charger.call("Heartbeat", {}))[0] == 3
    await eventually(lambda: online(voltaro, "WRONGED"))
    assert (await presence_events(voltaro, "WRONGED"))[-1] == (True, "message received")


@asynccontextmanager
async def writer_held(voltaro: Voltaro) -> AsyncIterator[None]:
    """The writer busy with a write that ends only when the block does: what is submitted
    meanwhile waits (no commit can happen in the block)."""
    started: concurrent.futures.Future[None] = concurrent.futures.Future()
    release: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def held(connection: Any) -> None:  # on the writer's asyncio thread
        started.set_result(None)
        await asyncio.wrap_future(release)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(voltaro.central.store.writer.submit, Write(held, label="held"))
        await trio.to_thread.run_sync(started.result, 10)
        try:
            yield
        finally:
            release.set_result(None)


async def known(voltaro: Voltaro, charge_point_id: str) -> None:
    """Added and in the admission cache: its handshake needs no write."""
    await voltaro.central.store.charge_points.upsert(charge_point_id, status="Accepted")
    cache = voltaro.central.store.charge_point_cache
    with trio.fail_after(10):
        while cache.peek(charge_point_id) is None:
            await cache.lookup(charge_point_id)
            await trio.sleep(0.01)


async def test_a_session_is_served_while_its_online_record_waits_to_be_committed(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    """The online record is presence, not acknowledged data: the charger is served before it
    commits, and meanwhile the restore round does not take the charger for wrongly offline
    (no second online event, no warning)."""
    voltaro = await start(nursery, voltaro_settings)
    await known(voltaro, "EAGER")
    async with writer_held(voltaro):
        charger = await RawCharger.connect(nursery, ws_url(voltaro, "EAGER"))
        with trio.fail_after(10):  # with the online record awaited it would wait for the writer
            assert (await charger.call("Heartbeat", {}))[0] == 3
        assert not await online(voltaro, "EAGER")  # not committed yet, the writer is held
        presence = voltaro.central.presence
        assert await presence.restore(voltaro.sessions.__contains__) == []
    await eventually(lambda: online(voltaro, "EAGER"))
    assert (await charger.call("Heartbeat", {}))[0] == 3
    assert await presence.restore(voltaro.sessions.__contains__) == []
    assert await presence_events(voltaro, "EAGER") == [(True, "connected")]


async def test_what_a_session_commits_is_committed_with_or_after_its_online_record(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    """The online record is queued before the first frame is read: a BootNotification sent
    at once is answered only when the record is committed too."""
    voltaro = await start(nursery, voltaro_settings)
    await known(voltaro, "ORDERED")
    answers: list[list[Any]] = []
    async with writer_held(voltaro):
        charger = await RawCharger.connect(nursery, ws_url(voltaro, "ORDERED"))

        async def boot() -> None:
            answers.append(await charger.call("BootNotification", BOOT))

        nursery.start_soon(boot)
        await trio.sleep(0.2)  # the boot is in the writer's queue behind the held write
        assert answers == []
    with trio.fail_after(10):
        while not answers:
            await trio.sleep(0.01)
    assert answers[0][0] == 3
    assert await online(voltaro, "ORDERED")  # no waiting: committed with or before the boot


async def test_a_session_that_ends_before_its_online_record_commits_ends_offline(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings)
    await known(voltaro, "BRIEF")
    async with writer_held(voltaro):
        charger = await RawCharger.connect(nursery, ws_url(voltaro, "BRIEF"))
        with trio.fail_after(10):
            assert (await charger.call("Heartbeat", {}))[0] == 3
        await charger.close()
        with trio.fail_after(10):  # ended, its online and offline records both still queued
            while "BRIEF" in voltaro.sessions:
                await trio.sleep(0.01)
        assert not await online(voltaro, "BRIEF")
    await voltaro.central.store.writer.flush()
    await eventually(lambda: _not_online(voltaro, "BRIEF"))
    assert await presence_events(voltaro, "BRIEF") == [
        (True, "connected"),
        (False, "disconnected: code 1000"),
    ]


async def test_an_instance_on_the_same_database_leaves_the_others_chargers_online(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any
) -> None:
    voltaro = await start(nursery, voltaro_settings)
    charger = await RawCharger.connect(nursery, ws_url(voltaro, "HELD"))
    assert (await charger.call("BootNotification", BOOT))[0] == 3
    async with trio.open_nursery() as other:  # another port: another instance
        second = await start(other, voltaro_settings)
        assert second.central.instance_id != voltaro.central.instance_id
        other.cancel_scope.cancel()  # it stops: it held nobody
    assert await online(voltaro, "HELD")
    assert (await charger.call("Heartbeat", {}))[0] == 3


def test_a_second_serve_that_cannot_listen_leaves_the_running_servers_chargers_online(
    pg_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The defect: a second ``voltaro serve`` on the same database and port first marked
    every live charger offline, then failed on the port; they stayed offline."""
    monkeypatch.delenv("VOLTARO_ADMIN_TOKEN", raising=False)
    url = pg_server.new_database()
    token = "first-server-token-1234"
    settings = Settings(
        database_url=url,
        data_dir=tmp_path / "first",
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        admin_host="127.0.0.1",
        admin_port=0,
        unknown_chargers="accept",
        admin_token=token,
    )

    async def serve_with_a_charger(nursery: trio.Nursery) -> Voltaro:
        voltaro: Voltaro = await nursery.start(start_voltaro_with_loop, settings)
        charger = await RawCharger.connect(nursery, ws_url(voltaro, "LIVE-1"))
        assert (await charger.call("BootNotification", BOOT))[0] == 3
        return voltaro

    def online_ids(client: httpx.Client) -> list[str]:
        listed = client.get("/api/v1/charge-points", params={"online": "true"}).json()
        return [cp["chargePointId"] for cp in listed["items"]]

    with trio_in_thread(serve_with_a_charger) as voltaro:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=voltaro.admin_url or "", headers=headers) as client:
            for _ in range(300):
                if online_ids(client) == ["LIVE-1"]:
                    break
                time.sleep(0.05)
            assert online_ids(client) == ["LIVE-1"]
            second = ["serve", "--database-url", url, "--data-dir", str(tmp_path / "second")]
            second += ["--ocpp-host", "127.0.0.1", "--ocpp-port", str(voltaro.server.port)]
            assert cli.main([*second, "--admin-port", "0"]) == 2  # the port is taken
            assert online_ids(client) == ["LIVE-1"]
