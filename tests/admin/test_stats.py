"""The stats API over a live Voltaro: known transactions, status changes and samples (written
with SQL, at times relative to now) give known numbers; bad windows are 400s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.admin.conftest import Live
from voltaro.store.testing import TestPostgres

CP = "STATS-CP-1"


def seed(live: Live, pg_server: TestPostgres) -> datetime:
    """CP: 12 kWh stopped today (two sessions), 4.5 kWh two days ago;
    connector 1 Charging for the last 6 hours of a day it was Available; three samples."""
    now = datetime.now(UTC)
    database = pg_server.database_name(live.voltaro.settings.database_url)
    pg_server.execute(
        f"""
        INSERT INTO charge_points (id, registration_status) VALUES ('{CP}', 'Accepted');
        INSERT INTO transactions (charge_point_id, connector_id, id_tag, id_tag_status,
            started_at, meter_start, received_at, stopped_at, meter_stop, energy_wh)
        VALUES
          ('{CP}', 1, 'T', 'Accepted', now() - interval '5 hours', 0,
           now(), now() - interval '2 minutes', 10000, 10000),
          ('{CP}', 2, 'T', 'Accepted', now() - interval '3 minutes', 500,
           now(), now() - interval '1 minute', 2500, 2000),
          ('{CP}', 1, 'T', 'Accepted', date_trunc('day', now()) - interval '2 days', 0,
           now(), date_trunc('day', now()) - interval '2 days' + interval '2 hours', 4500, 4500),
          ('OTHER-CP', 1, 'T', 'Accepted', now() - interval '2 minutes', 0,
           now(), now() - interval '90 seconds', 1000, 1000);
        INSERT INTO connectors (charge_point_id, connector_id, status, error_code, updated_at)
        VALUES ('{CP}', 1, 'Charging', 'NoError', now() - interval '6 hours');
        INSERT INTO connector_status_history (charge_point_id, connector_id, status,
            previous_status, error_code, received_at, unexpected)
        VALUES ('{CP}', 1, 'Available', NULL, 'NoError', now() - interval '30 days', false),
               ('{CP}', 1, 'Charging', 'Available', 'NoError', now() - interval '6 hours', false);
        INSERT INTO fleet_samples (at, charge_points, online, charging)
        SELECT b - ago, 7, online, charging
        FROM (SELECT date_bin('5 minutes', now(), timestamptz '2000-01-01') AS b) AS bucket,
             (VALUES (interval '2 hours', 5, 2), (interval '115 minutes', 6, 3),
                     (interval '30 hours', 1, 0)) AS v(ago, online, charging);
        """,
        database,
    )
    return now


@pytest.fixture(scope="module")
def seeded(live: Live, pg_server: TestPostgres) -> datetime:
    return seed(live, pg_server)


def test_energy_per_day(api: httpx.Client, seeded: datetime) -> None:
    answer = api.get("/api/v1/stats/energy-per-day", params={"days": 3}).json()
    today = seeded.date()
    assert answer == {
        "days": 3,
        "items": [
            {"day": (today - timedelta(days=2)).isoformat(), "energyWh": 4500.0, "sessions": 1},
            {"day": (today - timedelta(days=1)).isoformat(), "energyWh": 0.0, "sessions": 0},
            {"day": today.isoformat(), "energyWh": 13000.0, "sessions": 3},
        ],
    }
    default = api.get("/api/v1/stats/energy-per-day").json()
    assert len(default["items"]) == 30 and default["items"][-1]["energyWh"] == 13000.0


def test_sessions_per_hour(api: httpx.Client, seeded: datetime) -> None:
    answer = api.get("/api/v1/stats/sessions-per-hour").json()
    assert answer["hours"] == 24 and len(answer["items"]) == 24
    current = seeded.replace(minute=0, second=0, microsecond=0)
    hours = [datetime.fromisoformat(h["hour"].replace("Z", "+00:00")) for h in answer["items"]]
    assert hours[-1] == current and hours[0] == current - timedelta(hours=23)
    started = {h: n for h, n in zip(hours, (h["sessions"] for h in answer["items"]), strict=True)}
    five_hours_ago = (seeded - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    assert started[five_hours_ago] == 1
    assert sum(started.values()) == 3  # and the two started minutes ago


def test_online_samples(api: httpx.Client, seeded: datetime) -> None:
    answer = api.get("/api/v1/stats/online").json()
    assert answer["hours"] == 24 and answer["intervalSeconds"] == 300
    seeded_items = [i for i in answer["items"] if i["chargePoints"] == 7]
    assert [(i["online"], i["charging"]) for i in seeded_items] == [(5, 2), (6, 3)]
    # anything else is the live server's own sample of this period (it samples every minute)
    others = [i for i in answer["items"] if i["chargePoints"] != 7]
    assert len(others) <= 2
    wider = api.get("/api/v1/stats/online", params={"hours": 48}).json()
    assert [(i["online"], i["charging"]) for i in wider["items"] if i["chargePoints"] == 7] == [
        (1, 0),
        (5, 2),
        (6, 3),
    ]


def test_charge_point_stats(api: httpx.Client, seeded: datetime) -> None:
    answer = api.get(f"/api/v1/charge-points/{CP}/stats", params={"days": 3}).json()
    assert answer["chargePointId"] == CP and answer["days"] == 3
    assert [d["energyWh"] for d in answer["energyPerDay"]] == [4500.0, 0.0, 12000.0]
    assert [d["sessions"] for d in answer["energyPerDay"]] == [1, 0, 2]
    use = answer["utilisation"]
    assert use["knownSeconds"] == pytest.approx(3 * 86400, abs=120)
    assert use["chargingSeconds"] == pytest.approx(6 * 3600, abs=120)
    assert use["share"] == pytest.approx(6 / 72, abs=0.001)
    assert [c["connectorId"] for c in use["connectors"]] == [1]


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/api/v1/stats/energy-per-day", {"days": "0"}, "days"),
        ("/api/v1/stats/energy-per-day", {"days": "367"}, "days"),
        ("/api/v1/stats/online", {"hours": "x"}, "hours"),
        ("/api/v1/stats/sessions-per-hour", {"hours": "745"}, "hours"),
        ("/api/v1/stats/sessions-per-hour", {"days": "1"}, "unknown query parameter"),
        (f"/api/v1/charge-points/{CP}/stats", {"days": "-1"}, "days"),
    ],
)
def test_bad_windows_are_bad_requests(
    api: httpx.Client, path: str, params: dict[str, Any], fragment: str
) -> None:
    response = api.get(path, params=params)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"]


def test_unknown_charge_point_and_the_openapi_entries(api: httpx.Client) -> None:
    assert api.get("/api/v1/charge-points/NOPE/stats").status_code == 404
    document = api.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/stats/energy-per-day",
        "/api/v1/stats/online",
        "/api/v1/stats/sessions-per-hour",
        "/api/v1/charge-points/{chargePointId}/stats",
    ):
        assert "get" in document["paths"][path], path
    assert "ChargePointStats" in document["components"]["schemas"]
