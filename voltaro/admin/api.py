"""The admin API's routes under ``/api/v1``: charge points, id tags, transactions, the
message log, commands, and the listings the feature profiles declare
(:func:`listing_operation`).

Names are OCPP's, camelCase, everywhere: JSON fields, query parameters and CSV columns.
Each route is an :class:`~voltaro.admin.spec.Operation`, which both validates requests and
documents them in the OpenAPI document.

Every list pages (``limit``, ``offset``), sorts (``sort`` = one of the list's documented
fields, ``order`` = ``asc`` or ``desc``) and searches (``q``: part of an id, any case) in the
database; a list with times filters them with ``from``/``to``. Lists of things that happen
(transactions, the message log, status history, refused id tags) are newest first unless
asked otherwise. A list's ``total`` counts up to 100,000 matches (``totalCapped`` says when
there are more).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from voltaro.admin import commands
from voltaro.admin.examples import DATE_RANGE_EXAMPLE
from voltaro.admin.spec import (
    NO_NUL,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_SCHEMA,
    Answer,
    JsonObject,
    Operation,
    Param,
    Request,
    Variant,
    bad_request,
    not_found,
    parse_datetime,
)
from voltaro.central.commands import CommandCatalog
from voltaro.central.operations import Operations
from voltaro.central.profile import Command, Field, Listing
from voltaro.ocppj.actions import Direction
from voltaro.ocppj.dialect import OCPP16
from voltaro.store.admin_queries import Order, Page, Period, Row, TransactionFilter
from voltaro.store.refused_id_tags import REASONS
from voltaro.transport.handshake import charge_point_id_problem

PREFIX = "/api/v1"

REGISTRATION_STATUSES = ["Accepted", "Pending", "Rejected"]
ID_TAG_STATUSES = ["Accepted", "Blocked", "Expired", "Invalid"]

CSV_COLUMNS = (
    "transactionId",
    "chargePointId",
    "connectorId",
    "idTag",
    "startTimestamp",
    "stopTimestamp",
    "meterStart",
    "meterStop",
    "energyWh",
    "stopReason",
    "energyAnomaly",
)

# A text cell starting with one of these is a formula to Excel, LibreOffice and Google
# Sheets (a tab or carriage return too, for some of them): `=HYPERLINK(...)` in an id tag
# must reach the spreadsheet as text. OWASP's advice: prefix such a cell with '.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell: None empty, text that a spreadsheet would run as a formula neutralised
    with a leading apostrophe; numbers as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def ref(name: str) -> JsonObject:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: JsonObject) -> JsonObject:
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
DATE_TIME = {"type": "string", "format": "date-time"}
N_STRING = nullable(STRING)
N_DATE_TIME = nullable(DATE_TIME)
INTEGER = {"type": "integer"}

SCHEMAS: JsonObject = {
    "Problem": PROBLEM_SCHEMA,
    "Connector": {
        "type": "object",
        "properties": {
            "connectorId": INTEGER,
            "status": STRING,
            "errorCode": STRING,
            "info": N_STRING,
            "vendorId": N_STRING,
            "vendorErrorCode": N_STRING,
            "timestamp": N_DATE_TIME,
            "updatedAt": DATE_TIME,
        },
    },
    "ConfigurationKey": {
        "type": "object",
        "properties": {
            "key": STRING,
            "value": N_STRING,
            "readonly": nullable({"type": "boolean"}),
            "updatedAt": DATE_TIME,
        },
    },
    "ChargePoint": {
        "type": "object",
        "properties": {
            "chargePointId": STRING,
            "registrationStatus": {"enum": REGISTRATION_STATUSES},
            "lenient": {"type": "boolean"},
            "hasPassword": {"type": "boolean"},
            "online": {"type": "boolean"},
            "instanceId": N_STRING,
            "lastSeen": N_DATE_TIME,
            "lastBootAt": N_DATE_TIME,
            "lenientDeviations": INTEGER,
            "createdAt": DATE_TIME,
            "chargePointVendor": N_STRING,
            "chargePointModel": N_STRING,
            "chargePointSerialNumber": N_STRING,
            "chargeBoxSerialNumber": N_STRING,
            "firmwareVersion": N_STRING,
            "iccid": N_STRING,
            "imsi": N_STRING,
            "meterType": N_STRING,
            "meterSerialNumber": N_STRING,
        },
    },
    "ChargePointDetail": {
        "allOf": [
            ref("ChargePoint"),
            {
                "type": "object",
                "properties": {
                    "connectors": {"type": "array", "items": ref("Connector")},
                    "activeTransactions": {"type": "array", "items": ref("Transaction")},
                    "configuration": {"type": "array", "items": ref("ConfigurationKey")},
                },
            },
        ]
    },
    "StatusChange": {
        "type": "object",
        "properties": {
            "connectorId": INTEGER,
            "status": STRING,
            "previousStatus": N_STRING,
            "errorCode": STRING,
            "info": N_STRING,
            "vendorId": N_STRING,
            "vendorErrorCode": N_STRING,
            "timestamp": N_DATE_TIME,
            "receivedAt": DATE_TIME,
            "unexpected": {"type": "boolean"},
        },
    },
    "Message": {
        "type": "object",
        "properties": {
            "id": INTEGER,
            "loggedAt": DATE_TIME,
            "chargePointId": STRING,
            "direction": {"enum": ["in", "out"]},
            "messageId": N_STRING,
            "action": N_STRING,
            "payload": {},
            "errorCode": N_STRING,
        },
    },
    "IdTag": {
        "type": "object",
        "properties": {
            "idTag": STRING,
            "status": {"enum": ID_TAG_STATUSES},
            "expiryDate": N_DATE_TIME,
            "parentIdTag": N_STRING,
            "createdAt": {**DATE_TIME, "description": "when it was added"},
            "updatedAt": {**DATE_TIME, "description": "when it was last changed"},
        },
    },
    "Transaction": {
        "type": "object",
        "properties": {
            "transactionId": INTEGER,
            "chargePointId": STRING,
            "connectorId": INTEGER,
            "idTag": STRING,
            "idTagStatus": STRING,
            "reservationId": nullable(INTEGER),
            "active": {"type": "boolean"},
            "startTimestamp": DATE_TIME,
            "stopTimestamp": N_DATE_TIME,
            "meterStart": INTEGER,
            "meterStop": nullable(INTEGER),
            "energyWh": nullable({"type": "number"}),
            "energyAnomaly": nullable(
                {"type": "string", "description": "why energyWh is not given (not billed)"}
            ),
            "stopReason": N_STRING,
            "stopIdTag": N_STRING,
        },
    },
    "RefusedIdTag": {
        "type": "object",
        "properties": {
            "idTag": {"type": "string", "description": "as last presented"},
            "reason": {"enum": list(REASONS), "description": "why it was last refused"},
            "times": {"type": "integer", "description": "refusals counted"},
            "firstSeen": DATE_TIME,
            "lastSeen": DATE_TIME,
            "chargePointId": {"type": "string", "description": "where it was last presented"},
            "action": {"enum": ["Authorize", "StartTransaction"]},
            "currentStatus": nullable(
                {"enum": ID_TAG_STATUSES, "description": "its status now; null: still unknown"}
            ),
        },
    },
    "MeterValue": {
        "type": "object",
        "properties": {
            "timestamp": DATE_TIME,
            "connectorId": INTEGER,
            "value": STRING,
            "context": STRING,
            "format": STRING,
            "measurand": STRING,
            "phase": N_STRING,
            "location": STRING,
            "unit": STRING,
            "source": STRING,
        },
    },
}


def all_schemas(operations: Operations) -> JsonObject:
    """:data:`SCHEMAS` with the keys the profiles add to a charge point's detail."""
    facts = operations.facts_schema
    if not facts:
        return SCHEMAS
    detail = {"type": "object", "properties": facts}
    return SCHEMAS | {
        "ChargePointDetail": {"allOf": [*SCHEMAS["ChargePointDetail"]["allOf"], detail]}
    }


def page_schema(item: str | JsonObject) -> JsonObject:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": ref(item) if isinstance(item, str) else item},
            "total": INTEGER,
            "totalCapped": {
                "type": "boolean",
                "description": "more match than were counted: total is a lower bound",
            },
            "limit": INTEGER,
            "offset": INTEGER,
        },
        "required": ["items", "total", "limit", "offset"],
    }


def problem(status: int, description: str) -> Answer:
    return Answer(status, description, ref("Problem"), PROBLEM_MEDIA_TYPE)


AUTH_ANSWERS = (problem(401, "missing or wrong bearer token"),)
BAD = problem(400, "invalid parameter or body")
MISSING = problem(404, "no such resource")

PAGING = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    Param("offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000_000, "default": 0}),
)


class Sorting:
    """A list's ``sort`` and ``order`` parameters: the API's field names a list may be sorted
    by, each with the store's sort key, and the default."""

    def __init__(self, fields: dict[str, str], default: str, *, descending: bool) -> None:
        self.fields = fields
        self.default = default
        self.descending = descending

    def params(self) -> tuple[Param, Param]:
        return (
            Param(
                "sort",
                {"enum": list(self.fields), "default": self.default},
                "the field to sort by: " + ", ".join(self.fields),
            ),
            Param(
                "order",
                {"enum": ["asc", "desc"], "default": "desc" if self.descending else "asc"},
            ),
        )

    def order(self, query: JsonObject) -> Order:
        """The store's order for the validated query (the enum checked the names)."""
        field = query.get("sort", self.default)
        direction = query.get("order", "desc" if self.descending else "asc")
        return Order(self.fields[field], direction == "desc")


CHARGE_POINT_SORTING = Sorting(
    {
        "chargePointId": "id",
        "online": "online",
        "registrationStatus": "registration_status",
        "lastSeen": "last_seen",
        "chargePointVendor": "vendor",
        "chargePointModel": "model",
        "firmwareVersion": "firmware_version",
    },
    "chargePointId",
    descending=False,
)
ID_TAG_SORTING = Sorting(
    {
        "idTag": "id_tag",
        "status": "status",
        "expiryDate": "expiry_date",
        "parentIdTag": "parent_id_tag",
        "createdAt": "created_at",
        "updatedAt": "updated_at",
    },
    "idTag",
    descending=False,
)
TRANSACTION_SORTING = Sorting(
    {
        "transactionId": "transaction_id",
        "chargePointId": "charge_point_id",
        "idTag": "id_tag",
        "startTimestamp": "started_at",
        "stopTimestamp": "stopped_at",
        "energyWh": "energy_wh",
    },
    "transactionId",
    descending=True,
)
MESSAGE_SORTING = Sorting(
    {"loggedAt": "logged_at", "chargePointId": "charge_point_id", "action": "action"},
    "loggedAt",
    descending=True,
)
STATUS_HISTORY_SORTING = Sorting(
    {"receivedAt": "received_at", "connectorId": "connector_id", "status": "status"},
    "receivedAt",
    descending=True,
)
REFUSED_ID_TAG_SORTING = Sorting(
    {
        "lastSeen": "last_seen",
        "idTag": "id_tag",
        "times": "times",
        "reason": "reason",
        "chargePointId": "charge_point_id",
    },
    "lastSeen",
    descending=True,
)


def date_range(what: str = "") -> tuple[Param, Param]:
    """A list's ``from`` and ``to``: ``what`` (e.g. "logged") at or after, and before."""
    what = what + " " if what else ""
    start, end = DATE_RANGE_EXAMPLE
    return (
        Param("from", DATE_TIME, f"{what}at or after", example=start),
        Param("to", DATE_TIME, f"{what}before", example=end),
    )


class Dates:
    """The date filter of a list with several times: ``from``/``to`` bound the one that
    ``dateField`` names (by the API's field name, each with the store's date key; the first
    by default)."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        self.default = next(iter(fields))

    def params(self) -> tuple[Param, Param, Param]:
        return (
            Param(
                "dateField",
                {"enum": list(self.fields), "default": self.default},
                "the time that from and to bound: " + ", ".join(self.fields),
            ),
            *date_range("its dateField"),
        )

    def period(self, query: JsonObject) -> Period | None:
        """The store's period for the validated query; None without ``from`` and ``to``."""
        if query.get("from") is None and query.get("to") is None:
            return None
        field = query.get("dateField", self.default)
        return Period(self.fields[field], query.get("from"), query.get("to"))


CHARGE_POINT_DATES = Dates({"lastSeen": "last_seen", "createdAt": "created_at"})
ID_TAG_DATES = Dates(
    {"expiryDate": "expiry_date", "createdAt": "created_at", "updatedAt": "updated_at"}
)


def search_param(what: str) -> Param:
    return Param(
        "q",
        {"type": "string", "minLength": 1, "maxLength": 100, "pattern": NO_NUL},
        f"part of {what}, any case",
    )


MESSAGE_FILTERS = (
    Param("action", {"type": "string", "maxLength": 100, "pattern": NO_NUL}),
    Param("direction", {"enum": ["in", "out"]}),
    *date_range("logged"),
)
CP_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL}
ID_TAG_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 20, "pattern": NO_NUL}
CHARGE_POINT_ID = Param("chargePointId", CP_ID_SCHEMA, required=True)
ID_TAG = Param("idTag", ID_TAG_SCHEMA, required=True)
TRANSACTION_ID = Param(
    "transactionId", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}, required=True
)
TRANSACTION_FILTERS = (
    Param("chargePointId", CP_ID_SCHEMA),
    Param("idTag", ID_TAG_SCHEMA),
    Param("active", {"type": "boolean"}, "true: still running; false: stopped"),
    *date_range("started"),
    search_param("the id of a charge point registered now or of an id tag known or refused"),
)

CHARGE_POINT_BODY: JsonObject = {
    "type": "object",
    "properties": {
        "registrationStatus": {"enum": REGISTRATION_STATUSES},
        "password": {
            "type": "string",
            "minLength": 8,
            "maxLength": 40,
            "description": "Basic-auth AuthorizationKey (stored hashed)",
        },
        "lenient": {"type": "boolean"},
    },
    "additionalProperties": False,
}
ID_TAG_BODY: JsonObject = {
    "type": "object",
    "properties": {
        "status": {"enum": ID_TAG_STATUSES, "default": "Accepted"},
        "expiryDate": N_DATE_TIME,
        "parentIdTag": nullable(ID_TAG_SCHEMA),
    },
    "additionalProperties": False,
}


# ---- conversions to the API's names ----------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """RFC 3339, UTC; total over anything the database can hold. asyncpg hands PostgreSQL's
    ``-infinity``/``infinity`` back as naive ``datetime.min``/``max``: they are shown as
    those instants in UTC, not converted as local times (which fails at year 1)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    with contextlib.suppress(OverflowError, ValueError):  # leaves years 1-9999: keep its zone
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def charge_point_json(row: Row) -> JsonObject:
    return {
        "chargePointId": row["id"],
        "registrationStatus": row["registration_status"],
        "lenient": row["lenient"],
        "hasPassword": row["password_hash"] is not None,
        "online": row["online"],
        "instanceId": row.get("instance_id"),
        "lastSeen": iso(row["last_seen"]),
        "lastBootAt": iso(row["last_boot_at"]),
        "lenientDeviations": row["lenient_deviations"],
        "createdAt": iso(row["created_at"]),
        "chargePointVendor": row["vendor"],
        "chargePointModel": row["model"],
        "chargePointSerialNumber": row["serial_number"],
        "chargeBoxSerialNumber": row["charge_box_serial_number"],
        "firmwareVersion": row["firmware_version"],
        "iccid": row["iccid"],
        "imsi": row["imsi"],
        "meterType": row["meter_type"],
        "meterSerialNumber": row["meter_serial_number"],
    }


def connector_json(row: Row) -> JsonObject:
    return {
        "connectorId": row["connector_id"],
        "status": row["status"],
        "errorCode": row["error_code"],
        "info": row["info"],
        "vendorId": row["vendor_id"],
        "vendorErrorCode": row["vendor_error_code"],
        "timestamp": iso(row["charger_timestamp"]),
        "updatedAt": iso(row["updated_at"]),
    }


def transaction_json(row: Row) -> JsonObject:
    energy, anomaly = billable_energy(row)
    return {
        "transactionId": row["transaction_id"],
        "chargePointId": row["charge_point_id"],
        "connectorId": row["connector_id"],
        "idTag": row["id_tag"],
        "idTagStatus": row["id_tag_status"],
        "reservationId": row["reservation_id"],
        "active": row["stopped_at"] is None,
        "startTimestamp": iso(row["started_at"]),
        "stopTimestamp": iso(row["stopped_at"]),
        "meterStart": row["meter_start"],
        "meterStop": row["meter_stop"],
        "energyWh": energy,
        "energyAnomaly": anomaly,
        "stopReason": row["stop_reason"],
        "stopIdTag": row["stop_id_tag"],
    }


NEGATIVE_ENERGY = "negative energy: the meter reading fell below meterStart"


def billable_energy(row: Row) -> tuple[int | float | None, str | None]:
    """The transaction's energy in Wh as it may be billed, and why it may not be.

    Negative energy (meterStop, or the last reading, below meterStart: a replaced meter, a
    register that wrapped, a charger's bug) is flagged and not billed: energy None, the
    anomaly said. A number that is not finite is no energy at all.
    """
    energy = row["energy_wh"]
    if energy is None or not math.isfinite(energy):
        return None, None
    if energy < 0:
        return None, NEGATIVE_ENERGY
    return _number(energy), None


# Integers JSON readers keep exactly (JavaScript's Number.MAX_SAFE_INTEGER); beyond it a
# float is written, which orjson can always encode (an int over 64 bits it cannot).
MAX_EXACT_INTEGER = 2**53


def _number(value: float) -> int | float:
    if float(value).is_integer() and abs(value) <= MAX_EXACT_INTEGER:
        return int(value)
    return value


def id_tag_json(row: Row) -> JsonObject:
    return {
        "idTag": row["id_tag"],
        "status": row["status"],
        "expiryDate": iso(row["expiry_date"]),
        "parentIdTag": row["parent_id_tag"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def page_json(page: Page, convert: Any, query: JsonObject) -> JsonObject:
    return {
        "items": [convert(row) for row in page.items],
        "total": page.total,
        "totalCapped": page.total_capped,
        "limit": query.get("limit", 100),
        "offset": query.get("offset", 0),
    }


# ---- handlers ---------------------------------------------------------------------------


class Csv:
    """A handler's answer that is CSV text rather than JSON."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename


class Status:
    """A handler's answer with a status other than 200 (and maybe no body)."""

    def __init__(self, status: int, body: Any = None) -> None:
        self.status = status
        self.body = body


class AdminApi:
    def __init__(self, operations: Operations) -> None:
        self.operations = operations

    async def list_charge_points(self, request: Request) -> JsonObject:
        q = request.query
        page = await self.operations.queries.charge_points(
            online=q.get("online"),
            registration_status=q.get("registrationStatus"),
            limit=q.get("limit", 100),
            offset=q.get("offset", 0),
            search=q.get("q"),
            order=CHARGE_POINT_SORTING.order(q),
            period=CHARGE_POINT_DATES.period(q),
        )
        return page_json(page, charge_point_json, q)

    async def get_charge_point(self, request: Request) -> JsonObject:
        return await self._charge_point_detail(request.path["chargePointId"])

    async def _charge_point_detail(self, charge_point_id: str) -> JsonObject:
        base, facts = await self.charge_point_detail(charge_point_id)
        return base | facts

    async def charge_point_detail(self, charge_point_id: str) -> tuple[JsonObject, JsonObject]:
        """The charge point's own detail and, apart, what the profiles add to it (their
        ``charge_point_facts``; merged into the API's answer)."""
        detail = await self.operations.queries.charge_point_detail(charge_point_id)
        if detail is None:
            raise not_found(f"charge point {charge_point_id!r} is not known")
        base = charge_point_json(detail["charge_point"]) | {
            "connectors": [connector_json(r) for r in detail["connectors"]],
            "activeTransactions": [transaction_json(r) for r in detail["transactions"]],
            "configuration": [
                {
                    "key": r["key"],
                    "value": r["value"],
                    "readonly": r["readonly"],
                    "updatedAt": iso(r["updated_at"]),
                }
                for r in detail["configuration"]
            ],
        }
        facts = await self.operations.charge_point_facts(charge_point_id)
        clash = base.keys() & facts.keys()
        if clash:
            raise ValueError(f"charge point facts {sorted(clash)} clash with the detail's own")
        return base, facts

    async def put_charge_point(self, request: Request) -> Status:
        charge_point_id = request.path["chargePointId"]
        body = request.body
        problem = charge_point_id_problem(charge_point_id)
        if problem is not None and await self.operations.charge_point(charge_point_id) is None:
            raise bad_request(f"{problem}: a charger could never connect as {charge_point_id!r}")
        created = await self.operations.put_charge_point(
            charge_point_id,
            registration_status=body.get("registrationStatus"),
            password=body.get("password"),
            lenient=body.get("lenient"),
        )
        return Status(201 if created else 200, await self._charge_point_detail(charge_point_id))

    async def delete_charge_point(self, request: Request) -> Status:
        charge_point_id = request.path["chargePointId"]
        if not await self.operations.remove_charge_point(charge_point_id):
            raise not_found(f"charge point {charge_point_id!r} is not known")
        return Status(204)

    async def status_history(self, request: Request) -> JsonObject:
        charge_point_id = request.path["chargePointId"]
        await self._require_charge_point(charge_point_id)
        q = request.query
        page = await self.operations.queries.status_history(
            charge_point_id,
            limit=q.get("limit", 100),
            offset=q.get("offset", 0),
            order=STATUS_HISTORY_SORTING.order(q),
            start=q.get("from"),
            end=q.get("to"),
        )
        return page_json(page, _status_json, q)

    async def messages(self, request: Request) -> JsonObject:
        """The message log of the charge point in the path."""
        charge_point_id = request.path["chargePointId"]
        await self._require_charge_point(charge_point_id)
        return await self._messages(charge_point_id, request.query)

    async def all_messages(self, request: Request) -> JsonObject:
        """The message log across all chargers (``chargePointId``: of one, even a removed
        one)."""
        return await self._messages(request.query.get("chargePointId"), request.query)

    async def _messages(self, charge_point_id: str | None, q: JsonObject) -> JsonObject:
        page = await self.operations.queries.messages(
            charge_point_id,
            action=q.get("action"),
            direction=q.get("direction"),
            start=q.get("from"),
            end=q.get("to"),
            limit=q.get("limit", 100),
            offset=q.get("offset", 0),
            search=q.get("q"),
            order=MESSAGE_SORTING.order(q),
        )
        return page_json(page, _message_json, q)

    async def _require_charge_point(self, charge_point_id: str) -> None:
        if await self.operations.charge_point(charge_point_id) is None:
            raise not_found(f"charge point {charge_point_id!r} is not known")

    async def command(self, request: Request) -> JsonObject:
        return await commands.send_command(
            self.operations,
            request.path["chargePointId"],
            request.path["action"],
            request.body,
            commands.timeout_value(request.query.get("timeout")),
        )

    # ---- id tags

    async def list_id_tags(self, request: Request) -> JsonObject:
        q = request.query
        page = await self.operations.queries.id_tags(
            status=q.get("status"),
            limit=q.get("limit", 100),
            offset=q.get("offset", 0),
            search=q.get("q"),
            order=ID_TAG_SORTING.order(q),
            period=ID_TAG_DATES.period(q),
        )
        return page_json(page, id_tag_json, q)

    async def refused_id_tags(self, request: Request) -> JsonObject:
        q = request.query
        page = await self.operations.queries.refused_id_tags(
            reason=q.get("reason"),
            limit=q.get("limit", 100),
            offset=q.get("offset", 0),
            search=q.get("q"),
            order=REFUSED_ID_TAG_SORTING.order(q),
            start=q.get("from"),
            end=q.get("to"),
        )
        return page_json(page, _refused_json, q)

    async def get_id_tag(self, request: Request) -> JsonObject:
        id_tag = request.path["idTag"]
        row = await self.operations.queries.id_tag(id_tag)
        if row is None:
            raise not_found(f"id tag {id_tag!r} is not known")
        return id_tag_json(row)

    async def put_id_tag(self, request: Request) -> Status:
        id_tag = request.path["idTag"]
        body = request.body
        expiry = body.get("expiryDate")
        created = await self.operations.put_id_tag(
            id_tag,
            status=body.get("status", "Accepted"),
            expiry_date=None if expiry is None else parse_datetime(expiry, "expiryDate"),
            parent_id_tag=body.get("parentIdTag"),
        )
        row = await self.operations.queries.id_tag(id_tag)
        assert row is not None  # just written
        return Status(201 if created else 200, id_tag_json(row))

    async def delete_id_tag(self, request: Request) -> Status:
        id_tag = request.path["idTag"]
        if not await self.operations.remove_id_tag(id_tag):
            raise not_found(f"id tag {id_tag!r} is not known")
        return Status(204)

    # ---- transactions

    async def list_transactions(self, request: Request) -> JsonObject:
        q = request.query
        page = await self.operations.queries.transactions(
            _transaction_filter(q),
            limit=q.get("limit", 100),
            offset=q.get("offset", 0),
            order=TRANSACTION_SORTING.order(q),
        )
        return page_json(page, transaction_json, q)

    async def transactions_csv(self, request: Request) -> Csv:
        rows = await self.operations.queries.all_transactions(_transaction_filter(request.query))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            t = transaction_json(row)
            writer.writerow([csv_cell(t[c]) for c in CSV_COLUMNS])
        return Csv(out.getvalue(), "transactions.csv")

    async def get_transaction(self, request: Request) -> JsonObject:
        transaction_id = request.path["transactionId"]
        found = await self.operations.queries.transaction_detail(transaction_id)
        if found is None:
            raise not_found(f"transaction {transaction_id} is not known")
        row, values = found
        return transaction_json(row) | {"meterValues": [_meter_json(v) for v in values]}

    # ---- the profiles' listings

    async def list_items(self, listing: Listing, request: Request) -> JsonObject:
        q = request.query
        filters = {f.name: q[f.name] for f in listing.filters if f.name in q}
        limit, offset = q.get("limit", 100), q.get("offset", 0)
        items, total = await self.operations.list_items(listing, filters, limit, offset)
        return {"items": items, "total": total, "limit": limit, "offset": offset}


def filter_param(field: Field) -> Param:
    """A listing's filter as a query parameter, checked like the API's own."""
    schema: JsonObject
    if field.kind == "int":
        schema = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    elif field.kind == "bool":
        schema = {"type": "boolean"}
    elif field.kind == "select":
        schema = {"enum": list(field.options)}
    else:
        schema = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL}
    return Param(field.name, schema, field.label)


def listing_operation_id(listing: Listing) -> str:
    return "list" + "".join(part.title() for part in listing.name.split("-"))


def listing_operation(api: AdminApi, listing: Listing) -> Operation:
    """``GET /api/v1/{name}``: one page of a profile's listing."""

    async def handler(request: Request) -> JsonObject:
        return await api.list_items(listing, request)

    return Operation(
        "GET",
        f"{PREFIX}/{listing.name}",
        listing_operation_id(listing),
        f"List {listing.title.lower()}",
        handler,
        listing.name,
        query=(*(filter_param(f) for f in listing.filters), *PAGING),
        answers=(
            Answer(200, "one page of results", page_schema(listing.item_schema)),
            BAD,
            *AUTH_ANSWERS,
        ),
    )


def _transaction_filter(q: JsonObject) -> TransactionFilter:
    return TransactionFilter(
        charge_point_id=q.get("chargePointId"),
        id_tag=q.get("idTag"),
        active=q.get("active"),
        start_from=q.get("from"),
        start_to=q.get("to"),
        search=q.get("q"),
    )


def _status_json(row: Row) -> JsonObject:
    return {
        "connectorId": row["connector_id"],
        "status": row["status"],
        "previousStatus": row["previous_status"],
        "errorCode": row["error_code"],
        "info": row["info"],
        "vendorId": row["vendor_id"],
        "vendorErrorCode": row["vendor_error_code"],
        "timestamp": iso(row["charger_timestamp"]),
        "receivedAt": iso(row["received_at"]),
        "unexpected": row["unexpected"],
    }


def _message_json(row: Row) -> JsonObject:
    return {
        "id": row["id"],
        "loggedAt": iso(row["logged_at"]),
        "chargePointId": row["charge_point_id"],
        "direction": row["direction"],
        "messageId": row["message_id"],
        "action": row["action"],
        "payload": row["payload"],
        "errorCode": row["error_code"],
    }


def _refused_json(row: Row) -> JsonObject:
    return {
        "idTag": row["id_tag"],
        "reason": row["reason"],
        "times": row["times"],
        "firstSeen": iso(row["first_seen"]),
        "lastSeen": iso(row["last_seen"]),
        "chargePointId": row["charge_point_id"],
        "action": row["action"],
        "currentStatus": row["current_status"],
    }


def _meter_json(row: Row) -> JsonObject:
    return {
        "timestamp": iso(row["sampled_at"]),
        "connectorId": row["connector_id"],
        "value": row["value"],
        "context": row["context"],
        "format": row["format"],
        "measurand": row["measurand"],
        "phase": row["phase"],
        "location": row["location"],
        "unit": row["unit"],
        "source": row["source"],
    }


# ---- the OCPP payload schemas, for the OpenAPI document ---------------------------------


def ocpp_schema(action: str, direction: Direction) -> JsonObject:
    """The official schema file, as an OpenAPI 3.1 (JSON Schema 2020-12) schema object."""
    import json

    schema: JsonObject = json.loads(
        OCPP16.schema_file(action, direction).read_text(encoding="utf-8")
    )
    for key in ("$schema", "$id", "id"):
        schema.pop(key, None)
    return schema


def ocpp_components(catalog: CommandCatalog) -> JsonObject:
    """Each command's OCPP request and response schemas; a field Voltaro allocates is not
    required of the operator (and said so)."""
    out: JsonObject = {}
    for command in catalog:
        action = command.action
        request = ocpp_schema(action, Direction.REQUEST)
        if command.allocates:
            allocated = set(command.allocates)
            request["required"] = [n for n in request.get("required", []) if n not in allocated]
            for name in sorted(allocated):
                request["properties"][name] = request["properties"][name] | {
                    "description": "allocated by Voltaro: leave it out (a value given is "
                    "replaced); the answer's `allocated` says which"
                }
        if command.fills:
            filled = set(command.fills)
            request["required"] = [n for n in request.get("required", []) if n not in filled]
            for name in sorted(filled):
                request["properties"][name] = request["properties"][name] | {
                    "description": f"left out, Voltaro fills it in: {command.summary}; the "
                    "answer's `allocated` says with what"
                }
        out[f"{action}Request"] = request
        out[f"{action}Response"] = ocpp_schema(action, Direction.RESPONSE)
    return out


def command_answer_schema(command: Command) -> JsonObject:
    """``{"result": <the action's response>}``, with ``allocated`` when Voltaro fills in
    part of the request."""
    properties: JsonObject = {"result": ref(f"{command.action}Response")}
    if command.allocates or command.fills:
        properties["allocated"] = {
            "type": "object",
            "description": "what Voltaro put in the request",
            "properties": {
                name: {"type": "integer" if isinstance(stand_in, int) else "string"}
                for name, stand_in in {**command.allocates, **command.fills}.items()
            },
        }
    return {"type": "object", "properties": properties, "required": ["result"]}


def operations(api: AdminApi) -> Sequence[Operation]:
    cp = f"{PREFIX}/charge-points/{{chargePointId}}"
    json_page = "one page of results"
    command_variants = [
        Variant(
            path=f"{cp}/commands/{command.action}",
            operation_id=f"command{command.action}",
            summary=f"Send {command.action} to the charge point: {command.summary}",
            body=ref(f"{command.action}Request"),
            answers=(
                Answer(
                    200,
                    "the charge point's CALLRESULT",
                    command_answer_schema(command),
                ),
                problem(400, "the body breaks the action's OCPP schema"),
                *AUTH_ANSWERS,
                problem(404, "unknown charge point"),
                problem(409, "the charge point is not connected"),
                problem(
                    502,
                    "the charge point answered with a CALLERROR (code, description, "
                    "details) or an invalid CALLRESULT",
                ),
                problem(504, "no answer within the timeout"),
            ),
        )
        for command in api.operations.commands
    ]
    ops = [
        Operation(
            "GET",
            f"{PREFIX}/charge-points",
            "listChargePoints",
            "List charge points",
            api.list_charge_points,
            "charge points",
            query=(
                Param("online", {"type": "boolean"}),
                Param("registrationStatus", {"enum": REGISTRATION_STATUSES}),
                *CHARGE_POINT_DATES.params(),
                search_param("the id, vendor or model"),
                *CHARGE_POINT_SORTING.params(),
                *PAGING,
            ),
            answers=(Answer(200, json_page, page_schema("ChargePoint")), BAD, *AUTH_ANSWERS),
        ),
        Operation(
            "GET",
            cp,
            "getChargePoint",
            "A charge point: boot details, presence, connectors, active transactions, "
            "known configuration",
            api.get_charge_point,
            "charge points",
            path_params=(CHARGE_POINT_ID,),
            answers=(
                Answer(200, "the charge point", ref("ChargePointDetail")),
                *AUTH_ANSWERS,
                MISSING,
            ),
        ),
        Operation(
            "PUT",
            cp,
            "putChargePoint",
            "Create or update a charge point (registration status default Accepted)",
            api.put_charge_point,
            "charge points",
            role="admin",
            path_params=(CHARGE_POINT_ID,),
            body=CHARGE_POINT_BODY,
            answers=(
                Answer(200, "updated", ref("ChargePointDetail")),
                Answer(201, "created", ref("ChargePointDetail")),
                BAD,
                *AUTH_ANSWERS,
            ),
        ),
        Operation(
            "DELETE",
            cp,
            "deleteChargePoint",
            "Remove a charge point (its history and transactions stay); a live connection"
            " of it is closed with 1008",
            api.delete_charge_point,
            "charge points",
            role="admin",
            path_params=(CHARGE_POINT_ID,),
            answers=(Answer(204, "removed"), *AUTH_ANSWERS, MISSING),
        ),
        Operation(
            "GET",
            f"{cp}/status-history",
            "getStatusHistory",
            "Connector status changes, newest first",
            api.status_history,
            "charge points",
            path_params=(CHARGE_POINT_ID,),
            query=(
                *date_range("received"),
                *STATUS_HISTORY_SORTING.params(),
                *PAGING,
            ),
            answers=(
                Answer(200, json_page, page_schema("StatusChange")),
                BAD,
                *AUTH_ANSWERS,
                MISSING,
            ),
        ),
        Operation(
            "GET",
            f"{cp}/messages",
            "getMessages",
            "The OCPP message log of the charge point, newest first",
            api.messages,
            "charge points",
            path_params=(CHARGE_POINT_ID,),
            query=(
                *MESSAGE_FILTERS,
                search_param("the message id"),
                *MESSAGE_SORTING.params(),
                *PAGING,
            ),
            answers=(Answer(200, json_page, page_schema("Message")), BAD, *AUTH_ANSWERS, MISSING),
        ),
        Operation(
            "GET",
            f"{PREFIX}/messages",
            "listMessages",
            "The OCPP message log of all charge points, newest first",
            api.all_messages,
            "messages",
            query=(
                Param("chargePointId", CP_ID_SCHEMA, "of this charge point only"),
                *MESSAGE_FILTERS,
                search_param(
                    "the id of a charge point registered now; with chargePointId, of the message id"
                ),
                *MESSAGE_SORTING.params(),
                *PAGING,
            ),
            answers=(Answer(200, json_page, page_schema("Message")), BAD, *AUTH_ANSWERS),
        ),
        Operation(
            "POST",
            f"{cp}/commands/{{action}}",
            "command",
            "Send an OCPP command",
            api.command,
            "commands",
            role="operator",
            path_params=(
                CHARGE_POINT_ID,
                Param(
                    "action", {"type": "string", "minLength": 1, "maxLength": 100}, required=True
                ),
            ),
            query=(
                Param(
                    "timeout",
                    {"type": "number", "exclusiveMinimum": 0, "maximum": commands.MAX_TIMEOUT},
                    "seconds to wait for the answer (default: VOLTARO_CALL_TIMEOUT)",
                ),
            ),
            variants=command_variants,
        ),
        Operation(
            "GET",
            f"{PREFIX}/id-tags",
            "listIdTags",
            "List id tags",
            api.list_id_tags,
            "id tags",
            query=(
                Param("status", {"enum": ID_TAG_STATUSES}),
                *ID_TAG_DATES.params(),
                search_param("the id tag or its parent"),
                *ID_TAG_SORTING.params(),
                *PAGING,
            ),
            answers=(Answer(200, json_page, page_schema("IdTag")), BAD, *AUTH_ANSWERS),
        ),
        Operation(
            "GET",
            f"{PREFIX}/id-tags/refused",
            "listRefusedIdTags",
            "Id tags chargers presented and Voltaro refused (unknown, blocked, expired, "
            "invalid), last seen first",
            api.refused_id_tags,
            "id tags",
            query=(
                Param("reason", {"enum": list(REASONS)}),
                *date_range("last refused"),
                search_param("the id tag or the charge point's id"),
                *REFUSED_ID_TAG_SORTING.params(),
                *PAGING,
            ),
            answers=(Answer(200, json_page, page_schema("RefusedIdTag")), BAD, *AUTH_ANSWERS),
        ),
        Operation(
            "GET",
            f"{PREFIX}/id-tags/{{idTag}}",
            "getIdTag",
            "An id tag (matched case-insensitively)",
            api.get_id_tag,
            "id tags",
            path_params=(ID_TAG,),
            answers=(Answer(200, "the id tag", ref("IdTag")), *AUTH_ANSWERS, MISSING),
        ),
        Operation(
            "PUT",
            f"{PREFIX}/id-tags/{{idTag}}",
            "putIdTag",
            "Create or replace an id tag",
            api.put_id_tag,
            "id tags",
            role="operator",
            path_params=(ID_TAG,),
            body=ID_TAG_BODY,
            answers=(
                Answer(200, "replaced", ref("IdTag")),
                Answer(201, "created", ref("IdTag")),
                BAD,
                *AUTH_ANSWERS,
            ),
        ),
        Operation(
            "DELETE",
            f"{PREFIX}/id-tags/{{idTag}}",
            "deleteIdTag",
            "Remove an id tag",
            api.delete_id_tag,
            "id tags",
            role="operator",
            path_params=(ID_TAG,),
            answers=(Answer(204, "removed"), *AUTH_ANSWERS, MISSING),
        ),
        Operation(
            "GET",
            f"{PREFIX}/transactions",
            "listTransactions",
            "List transactions, newest (highest transactionId) first",
            api.list_transactions,
            "transactions",
            query=(*TRANSACTION_FILTERS, *TRANSACTION_SORTING.params(), *PAGING),
            answers=(Answer(200, json_page, page_schema("Transaction")), BAD, *AUTH_ANSWERS),
        ),
        Operation(
            "GET",
            f"{PREFIX}/transactions.csv",
            "exportTransactions",
            "Every matching transaction as CSV (for billing)",
            api.transactions_csv,
            "transactions",
            query=TRANSACTION_FILTERS,
            description="Columns: " + ", ".join(CSV_COLUMNS) + ".",
            answers=(
                Answer(200, "CSV with a header row", {"type": "string"}, "text/csv"),
                BAD,
                *AUTH_ANSWERS,
            ),
        ),
        Operation(
            "GET",
            f"{PREFIX}/transactions/{{transactionId}}",
            "getTransaction",
            "A transaction with its meter values",
            api.get_transaction,
            "transactions",
            path_params=(TRANSACTION_ID,),
            answers=(
                Answer(
                    200,
                    "the transaction",
                    {
                        "allOf": [
                            ref("Transaction"),
                            {
                                "type": "object",
                                "properties": {
                                    "meterValues": {"type": "array", "items": ref("MeterValue")}
                                },
                            },
                        ]
                    },
                ),
                *AUTH_ANSWERS,
                MISSING,
            ),
        ),
    ]
    taken = {op.path for op in ops}
    for listing in api.operations.listings:
        op = listing_operation(api, listing)
        if op.path in taken or f"{op.path}.csv" in taken:
            raise ValueError(f"listing {listing.name!r}: {op.path} is a route already")
        taken.add(op.path)
        ops.append(op)
    for op in ops:  # a path parameter that cannot be valid is a bad request
        if (op.path_params or op.query) and all(a.status != 400 for a in op.answers):
            op.answers = (*op.answers, BAD)
    return ops
