"""StartTransaction, StopTransaction and MeterValues: what is stored, and retries."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from tests.central.helpers import call, fetch, fetchval
from voltaro.central import CentralSystem, open_central_system
from voltaro.config import Settings
from voltaro.ocppj.errors import ErrorCode, OcppError

START = {
    "connectorId": 1,
    "idTag": "TAG1",
    "meterStart": 1000,
    "timestamp": "2024-05-01T10:00:00.123Z",
}


def stop(transaction_id: int, meter_stop: int = 1500, **extra: Any) -> dict[str, Any]:
    return {
        "transactionId": transaction_id,
        "meterStop": meter_stop,
        "timestamp": "2024-05-01T11:00:00Z",
        **extra,
    }


def sample(value: str, timestamp: str = "2024-05-01T10:30:00Z", **fields: str) -> dict[str, Any]:
    return {"timestamp": timestamp, "sampledValue": [{"value": value, **fields}]}


async def accepted_tag(central: CentralSystem, tag: str = "TAG1") -> None:
    await tag_with_status(central, tag, "Accepted")


async def tag_with_status(central: CentralSystem, tag: str, status: str) -> None:
    """Store the tag and wait until the id tag cache (kept by LISTEN/NOTIFY) has it."""
    await central.store.id_tags.upsert(tag, status=status)
    with trio.fail_after(10):
        while (await central.authorizer.id_tag_info(tag))["status"] != status:
            await trio.sleep(0.01)


async def test_start_and_stop(central: CentralSystem) -> None:
    await accepted_tag(central)
    reply = await call(central, "CP1", "StartTransaction", {**START, "reservationId": 7})
    assert reply["idTagInfo"] == {"status": "Accepted"}
    tx_id = reply["transactionId"]
    record = await central.store.transactions.get(tx_id)
    assert record is not None
    assert (record.charge_point_id, record.connector_id, record.id_tag) == ("CP1", 1, "TAG1")
    assert record.started_at == datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert (record.meter_start, record.reservation_id, record.stopped_at) == (1000, 7, None)

    data = [
        sample("1200", measurand="Energy.Active.Import.Register", context="Sample.Clock"),
        sample("1500", "2024-05-01T11:00:00Z", context="Transaction.End"),
    ]
    reply = await call(
        central,
        "CP1",
        "StopTransaction",
        stop(tx_id, idTag="TAG1", reason="EVDisconnected", transactionData=data),
    )
    assert reply == {"idTagInfo": {"status": "Accepted"}}
    record = await central.store.transactions.get(tx_id)
    assert record is not None
    assert record.stopped_at == datetime(2024, 5, 1, 11, tzinfo=UTC)
    assert (record.meter_stop, record.energy_wh) == (1500, 500)
    assert (record.stop_reason, record.stop_id_tag) == ("EVDisconnected", "TAG1")
    rows = await fetch(
        central,
        "SELECT transaction_id, connector_id, source, value, context,"
        " measurand FROM meter_values ORDER BY set_id, ordinal",
    )
    assert rows == [
        {
            "transaction_id": tx_id,
            "connector_id": 1,
            "source": "StopTransaction",
            "value": "1200",
            "context": "Sample.Clock",
            "measurand": "Energy.Active.Import.Register",
        },
        {
            "transaction_id": tx_id,
            "connector_id": 1,
            "source": "StopTransaction",
            "value": "1500",
            "context": "Transaction.End",
            "measurand": None,
        },
    ]

    # a retried stop (new message id, same content) answers the same and changes nothing
    again = await call(
        central, "CP1", "StopTransaction", stop(tx_id, 1700, idTag="TAG1", transactionData=data)
    )
    assert again == {"idTagInfo": {"status": "Accepted"}}
    record = await central.store.transactions.get(tx_id)
    assert record is not None and (record.meter_stop, record.energy_wh) == (1500, 500)
    assert await fetchval(central, "SELECT count(*) FROM meter_values") == 2


async def test_stop_unknown_transaction_is_answered(central: CentralSystem) -> None:
    assert await call(central, "CP1", "StopTransaction", stop(424242)) == {}
    reply = await call(central, "CP1", "StopTransaction", stop(424242, idTag="WHO"))
    assert reply == {"idTagInfo": {"status": "Invalid"}}
    assert await fetchval(central, "SELECT count(*) FROM transactions") == 0
    # another charger's transaction is unknown to this one
    started = await call(central, "CP1", "StartTransaction", START)
    assert await call(central, "CP2", "StopTransaction", stop(started["transactionId"])) == {}
    record = await central.store.transactions.get(started["transactionId"])
    assert record is not None and record.stopped_at is None


async def test_start_recorded_even_when_not_accepted(central: CentralSystem) -> None:
    await tag_with_status(central, "BLOCKED", "Blocked")
    reply = await call(central, "CP1", "StartTransaction", {**START, "idTag": "UNKNOWN"})
    assert reply["idTagInfo"] == {"status": "Invalid"}
    blocked = await call(
        central, "CP1", "StartTransaction", {**START, "connectorId": 2, "idTag": "BLOCKED"}
    )
    assert blocked["idTagInfo"]["status"] == "Blocked"
    rows = await fetch(central, "SELECT id_tag, id_tag_status FROM transactions ORDER BY 1")
    assert rows == [
        {"id_tag": "BLOCKED", "id_tag_status": "Blocked"},
        {"id_tag": "UNKNOWN", "id_tag_status": "Invalid"},
    ]
    assert blocked["transactionId"] != reply["transactionId"]


async def test_start_retry_returns_same_id(central: CentralSystem) -> None:
    await accepted_tag(central)
    first = await call(central, "CP1", "StartTransaction", START)
    # the same start again, e.g. after a lost CALLRESULT: same id, same answer, nothing new
    second = await call(central, "CP1", "StartTransaction", START)
    assert second == first
    # the same instant written with another offset is the same content
    shifted = {**START, "timestamp": "2024-05-01T12:00:00.123+02:00"}
    assert await call(central, "CP1", "StartTransaction", shifted) == first
    assert await fetchval(central, "SELECT count(*) FROM transactions") == 1
    # different content is a different transaction
    other = await call(central, "CP1", "StartTransaction", {**START, "meterStart": 1001})
    assert other["transactionId"] != first["transactionId"]


async def test_start_retry_keeps_first_answer(central: CentralSystem) -> None:
    await accepted_tag(central)
    first = await call(central, "CP1", "StartTransaction", START)
    await central.store.id_tags.set_status("TAG1", "Blocked")
    import trio

    with trio.fail_after(10):
        while (await central.authorizer.id_tag_info("TAG1"))["status"] != "Blocked":
            await trio.sleep(0.01)
    assert await call(central, "CP1", "StartTransaction", START) == first


async def test_start_dedup_across_restart(voltaro_settings: Settings, aio_loop: Any) -> None:
    async with open_central_system(voltaro_settings) as central:
        await accepted_tag(central)
        first = await call(central, "CP1", "StartTransaction", START)
    async with open_central_system(voltaro_settings) as restarted:
        assert await call(restarted, "CP1", "StartTransaction", START) == first
        assert await fetchval(restarted, "SELECT count(*) FROM transactions") == 1
        # the open transaction was reloaded: the tag is busy for others
        info = await restarted.authorizer.id_tag_info("TAG1")
        assert info["status"] == "ConcurrentTx"
        reply = await call(restarted, "CP1", "StopTransaction", stop(first["transactionId"]))
        assert reply == {}
        assert (await restarted.authorizer.id_tag_info("TAG1"))["status"] == "Accepted"


async def test_transaction_ids_come_from_a_sequence(central: CentralSystem) -> None:
    ids = []
    for connector in range(1, 5):
        reply = await call(
            central,
            "CP1",
            "StartTransaction",
            {**START, "connectorId": connector, "idTag": f"T{connector}"},
        )
        ids.append(reply["transactionId"])
    assert ids == sorted(ids) and len(set(ids)) == 4


async def test_meter_values_are_all_stored(central: CentralSystem) -> None:
    payload = {
        "connectorId": 2,
        "meterValue": [
            {
                "timestamp": "2024-05-01T10:00:00+01:00",
                "sampledValue": [
                    {
                        "value": "230.1",
                        "context": "Sample.Periodic",
                        "format": "Raw",
                        "measurand": "Voltage",
                        "phase": "L1-N",
                        "location": "Outlet",
                        "unit": "V",
                    },
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                    {"value": "25.5", "measurand": "Temperature", "unit": "Celcius"},  # lenient
                ],
            },
            {"timestamp": "2024-05-01T09:01:00Z", "sampledValue": [{"value": "1234"}]},
        ],
    }
    assert await call(central, "CP1", "MeterValues", payload) == {}
    rows = await fetch(
        central,
        "SELECT connector_id, transaction_id, sampled_at, value, context, format, measurand,"
        " phase, location, unit, source FROM meter_values ORDER BY set_id, ordinal",
    )
    assert len(rows) == 4
    assert rows[0] == {
        "connector_id": 2,
        "transaction_id": None,
        "sampled_at": datetime(2024, 5, 1, 9, tzinfo=UTC),
        "value": "230.1",
        "context": "Sample.Periodic",
        "format": "Raw",
        "measurand": "Voltage",
        "phase": "L1-N",
        "location": "Outlet",
        "unit": "V",
        "source": "MeterValues",
    }
    assert rows[2]["unit"] == "Celcius"
    assert rows[3]["measurand"] is None and rows[3]["unit"] is None  # as sent
    effective = await fetchval(
        central, "SELECT measurand || '/' || unit FROM meter_values_effective WHERE value = '1234'"
    )
    assert effective == "Energy.Active.Import.Register/Wh"


async def test_meter_values_keep_microseconds_and_lose_only_nul(central: CentralSystem) -> None:
    """The sampled values reach the table through jsonb: the one character PostgreSQL cannot
    hold, U+0000, becomes U+FFFD; timestamps keep their microseconds."""
    payload = {
        "connectorId": 1,
        "meterValue": [
            {
                "timestamp": "2024-05-01T10:00:00.123456Z",
                "sampledValue": [{"value": "12\x0034", "unit": "W\u0000h", "phase": "L1"}],
            }
        ],
    }
    assert await call(central, "CP1", "MeterValues", payload) == {}
    row = (await fetch(central, "SELECT sampled_at, value, unit, phase FROM meter_values"))[0]
    assert row == {
        "sampled_at": datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
        "value": "12\ufffd34",
        "unit": "W\ufffdh",
        "phase": "L1",
    }


async def test_energy_register_keeps_running_energy(central: CentralSystem) -> None:
    tx = (await call(central, "CP1", "StartTransaction", START))["transactionId"]

    async def meter(*values: dict[str, Any]) -> None:
        await call(
            central,
            "CP1",
            "MeterValues",
            {"connectorId": 1, "transactionId": tx, "meterValue": list(values)},
        )

    async def energy() -> float:
        return await fetchval(
            central, "SELECT energy_wh FROM transactions WHERE transaction_id = $1", tx
        )

    assert await energy() == 0
    await meter(sample("1100", "2024-05-01T10:10:00Z"))
    assert await energy() == 100
    # kWh, with per-phase and other measurands around it that must not count
    await meter(
        {
            "timestamp": "2024-05-01T10:20:00Z",
            "sampledValue": [
                {
                    "value": "9.9",
                    "measurand": "Energy.Active.Import.Register",
                    "phase": "L1",
                    "unit": "kWh",
                },
                {"value": "1.35", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
                {"value": "7000", "measurand": "Power.Active.Import", "unit": "W"},
            ],
        }
    )
    assert await energy() == pytest.approx(350)
    # a late reading (older timestamp) does not move the register back
    await meter(sample("1200", "2024-05-01T10:15:00Z"))
    assert await energy() == pytest.approx(350)
    record = await central.store.transactions.get(tx)
    assert record is not None and record.last_register_wh == pytest.approx(1350)
    await call(central, "CP1", "StopTransaction", stop(tx, 1400))
    await meter(sample("1500", "2024-05-01T11:30:00Z"))  # after the stop: stored, energy final
    assert await energy() == 400
    assert await fetchval(central, "SELECT count(*) FROM meter_values") == 6


@pytest.mark.parametrize("action", ["StartTransaction", "StopTransaction", "MeterValues"])
async def test_invalid_dates(central: CentralSystem, action: str) -> None:
    payloads = {
        "StartTransaction": {**START, "timestamp": "2023-02-29T10:00:00Z"},
        "StopTransaction": stop(1, timestamp="2024-04-31T10:00:00Z"),
        "MeterValues": {"connectorId": 1, "meterValue": [sample("1", "2024-06-31T00:00:00Z")]},
    }
    with pytest.raises(OcppError) as caught:
        await call(central, "CP1", action, payloads[action])
    assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION


async def test_start_on_connector_zero_is_refused(central: CentralSystem) -> None:
    with pytest.raises(OcppError) as caught:
        await call(central, "CP1", "StartTransaction", {**START, "connectorId": 0})
    assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("StartTransaction", {**START, "connectorId": 2**31}),
        ("StartTransaction", {**START, "meterStart": 2**63}),
        ("StartTransaction", {**START, "reservationId": 2**40}),
        ("StopTransaction", stop(2**35)),
        ("StopTransaction", stop(1, -(2**64))),
        ("MeterValues", {"connectorId": 1, "transactionId": 2**31, "meterValue": [sample("1")]}),
    ],
)
async def test_integers_out_of_storable_range(
    central: CentralSystem, action: str, payload: dict[str, Any]
) -> None:
    with pytest.raises(OcppError) as caught:
        await call(central, "CP1", action, payload)
    assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION


async def test_large_meter_registers(central: CentralSystem) -> None:
    big = 2**40  # a lifetime register in Wh can pass 2^31
    reply = await call(central, "CP1", "StartTransaction", {**START, "meterStart": big})
    await call(central, "CP1", "StopTransaction", stop(reply["transactionId"], big + 7))
    record = await central.store.transactions.get(reply["transactionId"])
    assert record is not None and record.energy_wh == 7


async def test_concurrent_tx_holds_across_instances_on_one_database(
    central: CentralSystem, voltaro_settings: Settings
) -> None:
    """A tag in a transaction started through another instance (or any writer) is
    ConcurrentTx here, and Accepted again once that transaction stops there."""
    await accepted_tag(central)
    other_settings = dataclasses.replace(voltaro_settings, instance_id="other-node")
    async with open_central_system(other_settings) as other:
        await accepted_tag(other)
        started = await call(other, "CP-OTHER", "StartTransaction", START)
        assert started["idTagInfo"] == {"status": "Accepted"}

        async def status_here() -> str:
            info = await central.authorizer.id_tag_info("tag1")  # case-insensitive
            return str(info["status"])

        with trio.fail_after(10):
            while await status_here() != "ConcurrentTx":
                await trio.sleep(0.01)
        answer = await call(central, "CP-HERE", "StartTransaction", {**START, "connectorId": 2})
        assert answer["idTagInfo"]["status"] == "ConcurrentTx"
        await call(other, "CP-OTHER", "StopTransaction", stop(started["transactionId"]))
        # CP-HERE's own transaction (recorded, though ConcurrentTx) keeps the tag busy
        await call(central, "CP-HERE", "StopTransaction", stop(answer["transactionId"]))
        with trio.fail_after(10):
            while await status_here() != "Accepted":
                await trio.sleep(0.01)
            while (await other.authorizer.id_tag_info("TAG1"))["status"] != "Accepted":
                await trio.sleep(0.01)
        again = await call(other, "CP-OTHER", "StartTransaction", {**START, "meterStart": 2000})
        assert again["idTagInfo"] == {"status": "Accepted"}
    # the transaction started last is still open: a restart finds it by its load
    async with open_central_system(other_settings) as restarted:
        assert (await restarted.authorizer.id_tag_info("TAG1"))["status"] == "ConcurrentTx"
