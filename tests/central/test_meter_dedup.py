"""MeterValues retries (same content, new message id) store nothing twice."""

from __future__ import annotations

import trio

from tests.central.helpers import call, fetchval
from voltaro.central import CentralSystem

__all__: list[str] = []


def meter_values(value: str, timestamp: str = "2024-05-01T10:30:00Z") -> dict[str, object]:
    return {
        "connectorId": 1,
        "meterValue": [{"timestamp": timestamp, "sampledValue": [{"value": value, "unit": "Wh"}]}],
    }


async def stored(central: CentralSystem) -> int:
    return int(
        await fetchval(central, "SELECT count(*) FROM meter_values WHERE charge_point_id = 'MV'")
    )


async def test_a_retry_stores_nothing_again(central: CentralSystem) -> None:
    assert await call(central, "MV", "MeterValues", meter_values("100")) == {}
    # the same content with keys in another order is the same message
    retry = {"meterValue": meter_values("100")["meterValue"], "connectorId": 1}
    assert await call(central, "MV", "MeterValues", retry) == {}
    assert await stored(central) == 1
    # another value, or the same value at another time, is a new message
    await call(central, "MV", "MeterValues", meter_values("101"))
    await call(central, "MV", "MeterValues", meter_values("100", "2024-05-01T10:31:00Z"))
    assert await stored(central) == 3


async def test_retries_in_the_same_batch_store_once(central: CentralSystem) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(call, central, "MV", "MeterValues", meter_values("7"))
    assert await stored(central) == 1


async def test_same_content_from_another_charger_is_not_a_retry(central: CentralSystem) -> None:
    await call(central, "MV", "MeterValues", meter_values("5"))
    await call(central, "OTHER", "MeterValues", meter_values("5"))
    assert await stored(central) == 1
    total = await fetchval(central, "SELECT count(*) FROM meter_values")
    assert total == 2
