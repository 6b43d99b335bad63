"""The installation's instances as a listing (``GET /api/v1/instances`` and the dashboard's
``/instances`` page): each node or worker process with its lease and the chargers it holds,
so that an operator of several nodes sees which are up and how the chargers are spread.

Not a feature profile's: the application core lists it before the profiles' listings (see
:attr:`voltaro.central.operations.Operations.listings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voltaro.central.domain import Domain
from voltaro.central.profile import Field, Listing, Payload
from voltaro.central.timestamps import format_timestamp

ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "title": "Instance"},
        "live": {"type": "boolean", "title": "Live"},
        "chargers": {"type": "integer", "title": "Chargers online"},
        "host": {"type": "string", "title": "Host"},
        "pid": {"type": "integer", "title": "Process"},
        "startedAt": {"type": "string", "format": "date-time", "title": "Started"},
        "aliveUntil": {"type": "string", "format": "date-time", "title": "Lease until"},
    },
}


async def instances(
    domain: Domain, filters: Mapping[str, Any], limit: int, offset: int
) -> tuple[list[Payload], int]:
    """Every registered instance by id; ``live``: only those whose lease holds (or not)."""
    records = await domain.store.instances.list_all()
    if "live" in filters:
        records = [r for r in records if r.live is filters["live"]]
    items = [
        {
            "id": r.id,
            "live": r.live,
            "chargers": r.chargers,
            "host": r.host,
            "pid": r.pid,
            "startedAt": format_timestamp(r.started_at),
            "aliveUntil": format_timestamp(r.alive_until),
        }
        for r in records
    ]
    return items[offset : offset + limit], len(items)


INSTANCES = Listing(
    "instances",
    "Instances",
    (Field("live", "Live", "bool"),),
    instances,
    ITEM_SCHEMA,
)
