"""Three `voltaro serve` nodes on one database behind a real HAProxy (the repository's
`deploy/haproxy.cfg`), chargers connecting through the proxy: commands through each node
reach chargers on the others, the newest connection wins across nodes, and a node killed
with -9 in the middle of a charging session loses nothing: its chargers reconnect through
the proxy to the others, the session is stopped correctly there, and the chargers that do
not come back are recorded offline once the dead node's lease runs out.

Without HAProxy the test skips, unless ``VOLTARO_REQUIRE_HAPROXY=1`` (CI installs it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from benchmarks.cluster import TOKEN, Cluster, Node, cluster, healthy
from tests.harness import RawCharger
from tests.tools import installed_tool
from voltaro.store.embedded import embedded_url, start_embedded, stop_embedded
from voltaro.store.migrate import apply_migrations
from voltaro.store.testing import TestPostgres, pg_server

__all__ = ["pg_server"]

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt 1"}
START = {"connectorId": 1, "idTag": "TAG-1", "meterStart": 1000}
SETTINGS = {
    "VOLTARO_INSTANCE_LEASE": "3",
    "VOLTARO_HEARTBEAT_INTERVAL": "2",
    "VOLTARO_HEARTBEAT_GRACE": "30",
}


@pytest.fixture
def installation(pg_server: TestPostgres, tmp_path: Path) -> Iterator[Cluster]:
    haproxy = installed_tool("haproxy", "VOLTARO_REQUIRE_HAPROXY")
    url = pg_server.new_database()
    try:
        with cluster(url, tmp_path, haproxy=haproxy, settings=SETTINGS) as nodes:
            yield nodes
    finally:
        pg_server.drop_database(url)


def api(node: Node) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=node.admin_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


async def held_by(node: Node, charge_point_id: str) -> str | None:
    async with api(node) as http:
        answer = await http.get(f"/api/v1/charge-points/{charge_point_id}")
    return answer.json().get("instanceId") if answer.status_code == 200 else None


class Charger:
    """A charger over the proxy that answers the server's CALLs while the test talks."""

    def __init__(self, charge_point_id: str, raw: RawCharger) -> None:
        self.id = charge_point_id
        self.raw = raw
        self.calls = 0

    @classmethod
    async def connect(cls, nursery: trio.Nursery, url: str, charge_point_id: str) -> Charger:
        raw = await RawCharger.connect(nursery, f"{url}/{charge_point_id}")
        charger = cls(charge_point_id, raw)
        answer = await charger.call("BootNotification", BOOT)
        assert answer[0] == 3 and answer[2]["status"] == "Accepted", answer
        return charger

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Our CALL's answer; the server's CALLs in between are answered Accepted."""
        self.calls += 1
        await self.raw.send([2, f"{self.id}-{self.calls}", action, payload])
        while True:
            frame = await self.raw.receive(timeout=30)
            if frame[0] == 2:
                await self.raw.send([3, frame[1], {"status": "Accepted"}])
                continue
            return frame

    async def serve_calls(self) -> None:
        """Answer the server's CALLs until the connection ends."""
        try:
            while True:
                frame = await self.raw.receive(timeout=120)
                if frame[0] == 2:
                    await self.raw.send([3, frame[1], {"status": "Accepted"}])
        except ConnectionClosed:
            return


async def test_three_nodes_behind_haproxy(installation: Cluster, nursery: trio.Nursery) -> None:
    for node in installation.nodes:
        await healthy(node.admin_url)
    await trio.sleep(2.5)  # the proxy's health checks see every node up
    url = installation.ocpp_url
    chargers = [await Charger.connect(nursery, url, f"LB-{n}") for n in range(6)]
    first = installation.nodes[0]
    holders = {c.id: await held_by(first, c.id) for c in chargers}
    assert set(holders.values()) == {"node1", "node2", "node3"}  # spread over the nodes
    for charger in chargers[1:]:  # LB-0 talks below: it answers CALLs as it goes
        nursery.start_soon(charger.serve_calls)

    # a command through each node reaches a charger held by another
    for node in installation.nodes:
        target = next(c for c in chargers[1:] if holders[c.id] != node.name)
        async with api(node) as http:
            sent = await http.post(
                f"/api/v1/charge-points/{target.id}/commands/Reset", json={"type": "Soft"}
            )
        assert sent.status_code == 200, (node.name, target.id, sent.text)
        assert sent.json() == {"result": {"status": "Accepted"}}

    # the newest connection wins across nodes
    previous = await Charger.connect(nursery, url, "TWIN")
    previous_holder = await held_by(first, "TWIN")
    crossed = False
    for _ in range(4):  # least connections: a newer one soon lands on another node
        newer = await Charger.connect(nursery, url, "TWIN")
        holder = await held_by(first, "TWIN")
        with pytest.raises(ConnectionClosed) as closed:
            await previous.raw.receive(timeout=15)
        assert closed.value.reason.code == 1008
        if holder != previous_holder:
            reason = closed.value.reason.reason
            assert reason == "replaced by a newer connection on another instance"
            crossed = True
            break
        previous, previous_holder = newer, holder
    assert crossed

    # a charging session in flight on the node about to die
    victim_name = holders["LB-0"]
    victim = installation.node(victim_name)
    session = next(c for c in chargers if c.id == "LB-0")
    started = await session.call("StartTransaction", {**START, "timestamp": "2026-12-01T10:00:00Z"})
    transaction_id = started[2]["transactionId"]
    metered = await session.call(
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [
                {"timestamp": "2026-12-01T10:05:00Z", "sampledValue": [{"value": "1500"}]}
            ],
        },
    )
    assert metered[0] == 3
    stay_away = [c.id for c in chargers if holders[c.id] == victim_name and c.id != "LB-0"]
    victim.kill()

    # the charger reconnects through the proxy, lands on a live node, and stops its session
    with trio.fail_after(30):
        while True:
            try:
                back = await Charger.connect(nursery, url, "LB-0")
                break
            except Exception:
                await trio.sleep(0.2)
    stopped = await back.call(
        "StopTransaction",
        {"transactionId": transaction_id, "meterStop": 2500, "timestamp": "2026-12-01T10:30:00Z"},
    )
    assert stopped[0] == 3
    survivor = next(n for n in installation.nodes if n is not victim)
    assert await held_by(survivor, "LB-0") in {"node1", "node2", "node3"} - {victim_name}
    async with api(survivor) as http:
        transaction = (await http.get(f"/api/v1/transactions/{transaction_id}")).json()
        assert transaction["meterStop"] == 2500 and transaction["stopTimestamp"] is not None
        assert transaction["energyWh"] == 1500
        assert [v["value"] for v in transaction["meterValues"]] == ["1500"]
        # a command reaches the reconnected charger, through any live node
        nursery.start_soon(back.serve_calls)
        sent = await http.post("/api/v1/charge-points/LB-0/commands/ClearCache", json={})
        assert sent.status_code == 200, sent.text
        # the dead node's other chargers (they did not come back) go offline with its lease
        with trio.fail_after(30):
            while True:
                online_only = {"online": "true"}
                listed = (await http.get("/api/v1/charge-points", params=online_only)).json()
                online = {cp["chargePointId"] for cp in listed["items"]}
                if not online & set(stay_away):
                    break
                await trio.sleep(0.2)
        assert "LB-0" in online


def restart_postgres(server: Any) -> None:
    """``pg_ctl restart -m fast``: every connection of every node is cut at once."""
    from pgserver._commands import pg_ctl

    pg_ctl(
        ["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60
    )


async def test_every_node_recovers_by_itself_when_the_database_restarts(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    haproxy = installed_tool("haproxy", "VOLTARO_REQUIRE_HAPROXY")
    server = await trio.to_thread.run_sync(start_embedded, tmp_path / "db")
    try:
        url = embedded_url(server)
        await trio.to_thread.run_sync(lambda: asyncio.run(apply_migrations_at(url)))
        with cluster(url, tmp_path, haproxy=haproxy, settings=SETTINGS) as nodes:
            for node in nodes.nodes:
                await healthy(node.admin_url)
            first, second = nodes.nodes[0], nodes.nodes[1]
            charger = await Charger.connect(nursery, f"ws://127.0.0.1:{first.ocpp}/ocpp", "DB-1")
            await trio.to_thread.run_sync(restart_postgres, server)
            for node in nodes.nodes:
                await healthy(node.admin_url)
            with trio.fail_after(60):  # the charger is served again (InternalError meanwhile)
                while (await charger.call("Heartbeat", {}))[0] != 3:
                    await trio.sleep(0.2)
            started = await charger.call(
                "StartTransaction", {**START, "timestamp": "2026-12-01T11:00:00Z"}
            )
            assert started[0] == 3, started
            nursery.start_soon(charger.serve_calls)
            async with api(second) as http:  # a command routed through the database again
                with trio.fail_after(60):
                    while True:
                        sent = await http.post(
                            "/api/v1/charge-points/DB-1/commands/ClearCache", json={}
                        )
                        if sent.status_code == 200:
                            break
                        await trio.sleep(0.5)
                detail = (await http.get("/api/v1/charge-points/DB-1")).json()
            # nobody took the others for dead although every lease ran out meanwhile
            assert detail["online"] and detail["instanceId"] == first.name
    finally:
        await trio.to_thread.run_sync(stop_embedded, server)
        await trio.to_thread.run_sync(stop_restarted_postgres, server)


def stop_restarted_postgres(server: Any) -> None:
    """pgserver stops the postmaster it started; the one ``pg_ctl restart`` started instead
    outlived the test (seen once), so it is stopped by its data directory."""
    from pgserver._commands import pg_ctl

    if (Path(server.pgdata) / "postmaster.pid").exists():
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)


async def apply_migrations_at(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await apply_migrations(connection)
    finally:
        await connection.close()
