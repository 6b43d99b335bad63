"""StatusNotification: the connector state machine, applied and flagged, and what is stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.central.helpers import call, fetch
from voltaro.central import CentralSystem
from voltaro.central.connector_state import (
    CHARGE_POINT_STATES,
    TRANSITIONS,
    ConnectorStatus,
    is_expected,
)
from voltaro.ocppj.errors import ErrorCode, OcppError


def status(connector: int, value: str, error: str = "NoError", **extra: str) -> dict[str, object]:
    return {"connectorId": connector, "status": value, "errorCode": error, **extra}


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(ConnectorStatus)
    for source, targets in TRANSITIONS.items():
        assert source not in targets  # staying is not a transition
    assert is_expected(1, "Charging", "Finishing")
    assert not is_expected(1, "Available", "Finishing")
    assert not is_expected(1, "Reserved", "Charging")
    assert is_expected(1, None, "Charging")  # first status heard
    assert is_expected(1, "Charging", "Charging")  # repeated
    assert not is_expected(1, "Available", "NoSuchStatus")
    for value in ConnectorStatus:
        assert is_expected(0, None, value) == (value in CHARGE_POINT_STATES)
        assert is_expected(0, "Available", value) == (value in CHARGE_POINT_STATES)


async def test_session_transitions_are_expected(central: CentralSystem) -> None:
    for value in (
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEV",
        "Charging",
        "Finishing",
        "Available",
    ):
        assert await call(central, "CP1", "StatusNotification", status(1, value)) == {}
    history = await fetch(
        central,
        "SELECT status, previous_status, unexpected FROM connector_status_history"
        " WHERE charge_point_id = 'CP1' ORDER BY id",
    )
    assert [h["status"] for h in history][-1] == "Available"
    assert not any(h["unexpected"] for h in history)
    assert [h["previous_status"] for h in history][:3] == [None, "Available", "Preparing"]
    assert central.unexpected_transitions == 0


async def test_unexpected_transition_is_applied_flagged_and_counted(
    central: CentralSystem,
) -> None:
    await call(central, "CP1", "StatusNotification", status(1, "Available"))
    await call(central, "CP1", "StatusNotification", status(1, "Finishing"))  # not allowed
    await call(central, "CP1", "StatusNotification", status(0, "Charging"))  # not for 0
    connectors = await central.store.connectors.list_all("CP1")
    assert {c.connector_id: c.status for c in connectors} == {0: "Charging", 1: "Finishing"}
    flags = await fetch(
        central,
        "SELECT connector_id, unexpected FROM connector_status_history ORDER BY id",
    )
    assert [(f["connector_id"], f["unexpected"]) for f in flags] == [
        (1, False),
        (1, True),
        (0, True),
    ]
    assert central.unexpected_transitions == 2
    assert central.charger_state("CP1").unexpected_transitions == 2


async def test_fields_are_stored_and_time_normalised(central: CentralSystem) -> None:
    await call(
        central,
        "CP1",
        "StatusNotification",
        status(
            2,
            "Faulted",
            "GroundFailure",
            info="leak",
            vendorId="Acme",
            vendorErrorCode="E42",
            timestamp="2024-05-01T14:00:00.250+02:00",
        ),
    )
    [row] = await fetch(central, "SELECT * FROM connector_status_history")
    assert row["error_code"] == "GroundFailure"
    assert (row["info"], row["vendor_id"], row["vendor_error_code"]) == ("leak", "Acme", "E42")
    assert row["charger_timestamp"] == datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert row["received_at"] is not None
    [current] = await central.store.connectors.list_all("CP1")
    assert (current.status, current.error_code, current.info) == (
        "Faulted",
        "GroundFailure",
        "leak",
    )


async def test_state_survives_restart(central: CentralSystem) -> None:
    # the state machine's memory is loaded from the database for a charger seen before
    await call(central, "CP1", "StatusNotification", status(1, "Charging"))
    central.domain.chargers.clear()  # as after a restart
    await call(central, "CP1", "StatusNotification", status(1, "Reserved"))  # Charging -> Reserved
    [last] = await fetch(
        central,
        "SELECT previous_status, unexpected FROM connector_status_history ORDER BY id DESC LIMIT 1",
    )
    assert last == {"previous_status": "Charging", "unexpected": True}


@pytest.mark.parametrize(
    "timestamp", ["2024-02-30T10:00:00Z", "2023-13-01T00:00:00Z", "2024-01-01T25:00:00Z", "soon"]
)
async def test_invalid_date(central: CentralSystem, timestamp: str) -> None:
    with pytest.raises(OcppError) as caught:
        await call(
            central, "CP1", "StatusNotification", status(1, "Available", timestamp=timestamp)
        )
    assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert await fetch(central, "SELECT 1 FROM connector_status_history") == []


async def test_negative_connector(central: CentralSystem) -> None:
    with pytest.raises(OcppError) as caught:
        await call(central, "CP1", "StatusNotification", status(-1, "Available"))
    assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
