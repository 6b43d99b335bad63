"""The stats API: the numbers behind the dashboard's charts, for other tools to draw.

Fleet-wide: energy per day, chargers online and connectors charging over time, sessions per
hour; per charge point: energy per day and utilisation. Every window ends now (UTC days and
hours, as everywhere in Voltaro) and lists every day or hour in it, zero where nothing
happened; how each number is read cheaply at 20,000 chargers is migration 0016's comment.
The dashboard draws its charts from these same handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from voltaro.admin.api import AUTH_ANSWERS, BAD, CHARGE_POINT_ID, MISSING, PREFIX, iso, ref
from voltaro.admin.spec import Answer, JsonObject, Operation, Param, Request, not_found
from voltaro.central.operations import Operations
from voltaro.store.dashboard_queries import DayEnergy
from voltaro.store.fleet_stats import SAMPLE_PERIOD

MAX_DAYS = 366
MAX_HOURS = 24 * 31

INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
DATE_TIME = {"type": "string", "format": "date-time"}

STATS_SCHEMAS: JsonObject = {
    "DayEnergy": {
        "type": "object",
        "properties": {
            "day": {"type": "string", "format": "date", "description": "a UTC day"},
            "energyWh": {
                "type": "number",
                "description": "energy of the transactions stopped that day (those with "
                "negative energy, flagged as not billed, left out)",
            },
            "sessions": {"type": "integer", "description": "transactions stopped that day"},
        },
        "required": ["day", "energyWh", "sessions"],
        "example": {"day": "2026-11-30", "energyWh": 182340.0, "sessions": 17},
    },
    "EnergyPerDay": {
        "type": "object",
        "properties": {
            "days": INTEGER,
            "items": {"type": "array", "items": ref("DayEnergy")},
        },
        "required": ["days", "items"],
    },
    "OnlineSamples": {
        "type": "object",
        "properties": {
            "hours": INTEGER,
            "intervalSeconds": {
                "type": "integer",
                "description": "one sample per interval, taken by any running instance "
                "(none while no instance ran)",
            },
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": DATE_TIME,
                        "chargePoints": INTEGER,
                        "online": INTEGER,
                        "charging": {
                            "type": "integer",
                            "description": "connectors (not 0) in Charging, of online chargers",
                        },
                    },
                    "required": ["at", "chargePoints", "online", "charging"],
                },
            },
        },
        "required": ["hours", "intervalSeconds", "items"],
        "example": {
            "hours": 24,
            "intervalSeconds": 300,
            "items": [
                {"at": "2026-11-30T10:05:00Z", "chargePoints": 210, "online": 204, "charging": 37}
            ],
        },
    },
    "SessionsPerHour": {
        "type": "object",
        "properties": {
            "hours": INTEGER,
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "hour": DATE_TIME,
                        "sessions": {"type": "integer", "description": "transactions started"},
                    },
                    "required": ["hour", "sessions"],
                },
            },
        },
        "required": ["hours", "items"],
        "example": {"hours": 1, "items": [{"hour": "2026-11-30T10:00:00Z", "sessions": 12}]},
    },
    "ConnectorUse": {
        "type": "object",
        "properties": {
            "connectorId": INTEGER,
            "share": {"type": "number", "minimum": 0, "maximum": 1},
            "chargingSeconds": NUMBER,
            "knownSeconds": {
                "type": "number",
                "description": "the part of the period since the connector's first status",
            },
        },
        "required": ["connectorId", "share", "chargingSeconds", "knownSeconds"],
    },
    "ChargePointStats": {
        "type": "object",
        "properties": {
            "chargePointId": {"type": "string"},
            "days": INTEGER,
            "energyPerDay": {"type": "array", "items": ref("DayEnergy")},
            "utilisation": {
                "type": "object",
                "description": "share of the time its connectors were Charging, by their "
                "status history (all connectors together, and each)",
                "properties": {
                    "share": {"type": "number", "minimum": 0, "maximum": 1},
                    "chargingSeconds": NUMBER,
                    "knownSeconds": NUMBER,
                    "connectors": {"type": "array", "items": ref("ConnectorUse")},
                },
                "required": ["share", "chargingSeconds", "knownSeconds", "connectors"],
            },
        },
        "required": ["chargePointId", "days", "energyPerDay", "utilisation"],
    },
}

DAYS = Param(
    "days",
    {"type": "integer", "minimum": 1, "maximum": MAX_DAYS, "default": 30},
    "how many days, ending today (UTC)",
)
HOURS = Param(
    "hours",
    {"type": "integer", "minimum": 1, "maximum": MAX_HOURS, "default": 24},
    "how many hours, ending with the current one",
)


def day_json(day: DayEnergy) -> JsonObject:
    return {"day": day.day.isoformat(), "energyWh": day.energy_wh, "sessions": day.sessions}


def _share(charging: float, known: float) -> float:
    return charging / known if known > 0 else 0.0


class StatsApi:
    def __init__(self, operations: Operations) -> None:
        self.operations = operations

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    def _first_day(self, days: int) -> tuple[date, date]:
        today = self._now().date()
        return today - timedelta(days=days - 1), today

    async def energy_per_day(self, request: Request) -> JsonObject:
        days = request.query.get("days", 30)
        first, today = self._first_day(days)
        listed = await self.operations.dashboard_queries.energy_per_day(first, today, today)
        return {"days": days, "items": [day_json(d) for d in listed]}

    async def online(self, request: Request) -> JsonObject:
        hours = request.query.get("hours", 24)
        now = self._now()
        samples = await self.operations.dashboard_queries.fleet_samples(
            now - timedelta(hours=hours), now + SAMPLE_PERIOD
        )
        return {
            "hours": hours,
            "intervalSeconds": int(SAMPLE_PERIOD.total_seconds()),
            "items": [
                {
                    "at": iso(s.at),
                    "chargePoints": s.charge_points,
                    "online": s.online,
                    "charging": s.charging,
                }
                for s in samples
            ],
        }

    async def sessions_per_hour(self, request: Request) -> JsonObject:
        hours = request.query.get("hours", 24)
        current = self._now().replace(minute=0, second=0, microsecond=0)
        listed = await self.operations.dashboard_queries.sessions_per_hour(
            current - timedelta(hours=hours - 1), hours
        )
        return {
            "hours": hours,
            "items": [{"hour": iso(h.hour), "sessions": h.sessions} for h in listed],
        }

    async def charge_point_stats(self, request: Request) -> JsonObject:
        charge_point_id = request.path["chargePointId"]
        if await self.operations.charge_point(charge_point_id) is None:
            raise not_found(f"charge point {charge_point_id!r} is not known")
        days = request.query.get("days", 30)
        return {
            "chargePointId": charge_point_id,
            "days": days,
            "energyPerDay": await self.charge_point_energy(charge_point_id, days),
            "utilisation": await self.utilisation(charge_point_id, days),
        }

    async def charge_point_energy(self, charge_point_id: str, days: int) -> list[JsonObject]:
        first, today = self._first_day(days)
        listed = await self.operations.dashboard_queries.charge_point_energy_per_day(
            charge_point_id, first, today
        )
        return [day_json(d) for d in listed]

    async def utilisation(self, charge_point_id: str, days: int) -> JsonObject:
        """Over the last ``days`` times 24 hours."""
        now = self._now()
        used = await self.operations.dashboard_queries.utilisation(
            charge_point_id, now - timedelta(days=days), now
        )
        charging = sum(u.charging_seconds for u in used)
        known = sum(u.known_seconds for u in used)
        return {
            "share": _share(charging, known),
            "chargingSeconds": charging,
            "knownSeconds": known,
            "connectors": [
                {
                    "connectorId": u.connector_id,
                    "share": u.share,
                    "chargingSeconds": u.charging_seconds,
                    "knownSeconds": u.known_seconds,
                }
                for u in used
            ],
        }


EVERY_DAY = Answer(200, "every day of the period", ref("EnergyPerDay"))
SAMPLES = Answer(200, "the samples of the period", ref("OnlineSamples"))
EVERY_HOUR = Answer(200, "every hour of the period", ref("SessionsPerHour"))


def stats_operations(stats: StatsApi) -> Sequence[Operation]:
    return [
        Operation(
            "GET",
            f"{PREFIX}/stats/energy-per-day",
            "getEnergyPerDay",
            "The fleet's energy per day (by the day transactions stopped)",
            stats.energy_per_day,
            "stats",
            query=(DAYS,),
            answers=(
                EVERY_DAY,
                BAD,
                *AUTH_ANSWERS,
            ),
        ),
        Operation(
            "GET",
            f"{PREFIX}/stats/online",
            "getOnlineSamples",
            "Chargers online and connectors charging, sampled every five minutes",
            stats.online,
            "stats",
            query=(HOURS,),
            answers=(
                SAMPLES,
                BAD,
                *AUTH_ANSWERS,
            ),
        ),
        Operation(
            "GET",
            f"{PREFIX}/stats/sessions-per-hour",
            "getSessionsPerHour",
            "Transactions started per hour",
            stats.sessions_per_hour,
            "stats",
            query=(HOURS,),
            answers=(
                EVERY_HOUR,
                BAD,
                *AUTH_ANSWERS,
            ),
        ),
        Operation(
            "GET",
            f"{PREFIX}/charge-points/{{chargePointId}}/stats",
            "getChargePointStats",
            "A charge point's energy per day and utilisation (share of time charging)",
            stats.charge_point_stats,
            "stats",
            path_params=(CHARGE_POINT_ID,),
            query=(DAYS,),
            answers=(
                Answer(200, "the charge point's numbers", ref("ChargePointStats")),
                BAD,
                *AUTH_ANSWERS,
                MISSING,
            ),
        ),
    ]
