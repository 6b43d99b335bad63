"""A hypothesis state machine drives one charger through random StatusNotification /
StartTransaction / StopTransaction / MeterValues sequences via the handlers, and after every
step compares what is stored with a simple model.

How it runs with trio: the test is synchronous; it starts trio once (the CentralSystem on a
fresh database, inside the trio-asyncio loop) and runs hypothesis in a worker thread. Each
rule calls into the trio thread with ``trio.from_thread.run``. Every example uses its own
charge point id and id tags, so examples share the database without seeing each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import trio
import trio_asyncio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from voltaro.central import CentralSystem, open_central_system
from voltaro.central.connector_state import ConnectorStatus
from voltaro.central.timestamps import format_timestamp
from voltaro.config import Settings

T = TypeVar("T")
CONNECTORS = (1, 2)
TAG_KINDS = ("ok", "other", "blocked", "unknown")
_example_numbers = itertools.count(1)


@dataclass
class ModelTransaction:
    connector: int
    tag: str
    meter_start: int
    start_payload: dict[str, Any]
    reply: dict[str, Any]
    meter_stop: int | None = None
    energy: float = 0.0
    meter_rows: int = 0

    @property
    def open(self) -> bool:
        return self.meter_stop is None


class ChargerMachine(RuleBasedStateMachine):
    central: CentralSystem  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        n = next(_example_numbers)
        self.cp = f"HYP-{n}"
        self.tags = {kind: f"H{n}-{kind}" for kind in TAG_KINDS}
        self.clock = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n)
        self.connectors: dict[int, str] = {}
        self.transactions: dict[int, ModelTransaction] = {}
        self.loose_meter_rows = 0
        self.last_start: int | None = None

    # ---- plumbing ---------------------------------------------------------------------

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args)

    def send(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        handler = self.central.handlers(self.cp)[action]
        return self.run(handler, payload)

    def tick(self) -> str:
        self.clock += timedelta(seconds=1)
        return format_timestamp(self.clock)

    def open_tags(self) -> set[str]:
        return {tx.tag for tx in self.transactions.values() if tx.open}

    # ---- rules --------------------------------------------------------------------------

    @initialize()
    def create_tags(self) -> None:
        async def setup() -> None:
            await self.central.store.charge_points.upsert(self.cp, status="Accepted")
            tags = self.central.store.id_tags
            await tags.upsert(self.tags["ok"])
            await tags.upsert(self.tags["other"])
            await tags.upsert(self.tags["blocked"], status="Blocked")
            with trio.fail_after(10):  # wait for the cache to hear of them
                while (await self.central.authorizer.id_tag_info(self.tags["blocked"]))[
                    "status"
                ] != "Blocked":
                    await trio.sleep(0.005)

        self.run(setup)

    @rule(connector=st.sampled_from(CONNECTORS), status=st.sampled_from(list(ConnectorStatus)))
    def status_notification(self, connector: int, status: ConnectorStatus) -> None:
        payload = {
            "connectorId": connector,
            "status": status.value,
            "errorCode": "NoError",
            "timestamp": self.tick(),
        }
        assert self.send("StatusNotification", payload) == {}
        self.connectors[connector] = status.value

    @rule(
        connector=st.sampled_from(CONNECTORS),
        kind=st.sampled_from(TAG_KINDS),
        meter_start=st.integers(0, 10**6),
    )
    def start_transaction(self, connector: int, kind: str, meter_start: int) -> None:
        tag = self.tags[kind]
        if kind == "unknown":
            expected = "Invalid"
        elif kind == "blocked":
            expected = "Blocked"
        else:
            expected = "ConcurrentTx" if tag in self.open_tags() else "Accepted"
        payload = {
            "connectorId": connector,
            "idTag": tag,
            "meterStart": meter_start,
            "timestamp": self.tick(),
        }
        reply = self.send("StartTransaction", payload)
        assert reply["idTagInfo"]["status"] == expected
        tx_id = reply["transactionId"]
        assert tx_id not in self.transactions
        self.transactions[tx_id] = ModelTransaction(connector, tag, meter_start, payload, reply)
        self.last_start = tx_id

    @precondition(lambda self: self.last_start is not None)
    @rule()
    def retry_start(self) -> None:
        assert self.last_start is not None
        tx = self.transactions[self.last_start]
        assert self.send("StartTransaction", dict(tx.start_payload)) == tx.reply

    @precondition(lambda self: any(tx.open for tx in self.transactions.values()))
    @rule(data=st.data(), delta=st.integers(0, 50_000), retries=st.integers(0, 2))
    def stop_transaction(self, data: st.DataObject, delta: int, retries: int) -> None:
        tx_id = data.draw(
            st.sampled_from(sorted(i for i, tx in self.transactions.items() if tx.open))
        )
        tx = self.transactions[tx_id]
        payload = {
            "transactionId": tx_id,
            "meterStop": tx.meter_start + delta,
            "timestamp": self.tick(),
            "reason": "Local",
            "transactionData": [
                {"timestamp": self.tick(), "sampledValue": [{"value": str(tx.meter_start + delta)}]}
            ],
        }
        for _ in range(1 + retries):  # retries change nothing
            assert self.send("StopTransaction", payload) == {}
        tx.meter_stop = tx.meter_start + delta
        tx.energy = delta
        tx.meter_rows += 1

    @precondition(lambda self: bool(self.transactions))
    @rule(data=st.data(), reading=st.integers(0, 10**6), kwh=st.booleans())
    def meter_values(self, data: st.DataObject, reading: int, kwh: bool) -> None:
        tx_id = data.draw(st.sampled_from(sorted(self.transactions)))
        tx = self.transactions[tx_id]
        value = f"{reading / 1000:.3f}" if kwh else str(reading)
        payload = {
            "connectorId": tx.connector,
            "transactionId": tx_id,
            "meterValue": [
                {
                    "timestamp": self.tick(),
                    "sampledValue": [
                        {"value": value, "unit": "kWh" if kwh else "Wh"},
                        {"value": "230", "measurand": "Voltage", "unit": "V"},
                    ],
                }
            ],
        }
        assert self.send("MeterValues", payload) == {}
        tx.meter_rows += 2
        if tx.open:
            tx.energy = reading - tx.meter_start

    @rule(connector=st.sampled_from((0, *CONNECTORS)))
    def meter_values_without_transaction(self, connector: int) -> None:
        payload = {
            "connectorId": connector,
            "meterValue": [{"timestamp": self.tick(), "sampledValue": [{"value": "1"}]}],
        }
        assert self.send("MeterValues", payload) == {}
        self.loose_meter_rows += 1

    # ---- the stored state against the model ---------------------------------------------

    @invariant()
    def stored_state_matches_model(self) -> None:
        if not hasattr(self, "cp"):
            return

        async def read(connection: Any) -> tuple[Any, Any, Any]:
            txs = await connection.fetch(
                "SELECT transaction_id, connector_id, id_tag, meter_start, meter_stop,"
                " energy_wh, stopped_at IS NULL AS open FROM transactions"
                " WHERE charge_point_id = $1",
                self.cp,
            )
            connectors = await connection.fetch(
                "SELECT connector_id, status FROM connectors WHERE charge_point_id = $1", self.cp
            )
            meters = await connection.fetch(
                "SELECT transaction_id, count(*) FROM meter_values WHERE charge_point_id = $1"
                " GROUP BY transaction_id",
                self.cp,
            )
            return txs, connectors, meters

        txs, connectors, meters = self.run(self.central.store.database.run, read)
        assert {row["connector_id"]: row["status"] for row in connectors} == self.connectors
        assert {row["transaction_id"] for row in txs} == set(self.transactions)
        for row in txs:
            tx = self.transactions[row["transaction_id"]]
            assert (row["connector_id"], row["id_tag"], row["meter_start"]) == (
                tx.connector,
                tx.tag,
                tx.meter_start,
            )
            assert row["open"] == tx.open
            assert row["meter_stop"] == tx.meter_stop
            assert abs(row["energy_wh"] - tx.energy) < 1e-6
        counts = {row[0]: row[1] for row in meters}
        assert counts.pop(None, 0) == self.loose_meter_rows
        assert counts == {i: tx.meter_rows for i, tx in self.transactions.items() if tx.meter_rows}


def test_charger_state_machine(database_url: str, tmp_path: Any) -> None:
    config = Settings(database_url=database_url, data_dir=tmp_path)

    async def main() -> None:
        async with trio_asyncio.open_loop(), open_central_system(config) as central:
            ChargerMachine.central = central
            await trio.to_thread.run_sync(
                lambda: run_state_machine_as_test(
                    ChargerMachine,
                    settings=settings(
                        max_examples=15,
                        stateful_step_count=20,
                        deadline=None,
                        suppress_health_check=[HealthCheck.too_slow],
                    ),
                )
            )

    trio.run(main)
