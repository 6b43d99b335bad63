"""Connectors: current status per (charge point, connector) and the status history."""

from __future__ import annotations

import trio

from voltaro.store.database import Connection, Database
from voltaro.store.read_batch import ReadBatcher
from voltaro.store.records import ConnectorRecord, StatusChange, pg_text
from voltaro.store.writer import CopyTarget, GroupCommitWriter, MergedUpdate, Write

STATUS_HISTORY = CopyTarget(
    "connector_status_history",
    (
        "charge_point_id",
        "connector_id",
        "status",
        "previous_status",
        "error_code",
        "info",
        "vendor_id",
        "vendor_error_code",
        "charger_timestamp",
        "received_at",
        "unexpected",
    ),
)

# Many connectors' current status in one upsert; a connector's last change in the batch wins
# (WITH ORDINALITY keeps the batch's order; one INSERT may not touch a row twice).
CONNECTOR_STATUS = MergedUpdate(
    "connector_status",
    """
    INSERT INTO connectors (charge_point_id, connector_id, status, error_code, info, vendor_id,
                            vendor_error_code, charger_timestamp, updated_at)
    SELECT DISTINCT ON (cp, connector) cp, connector, status, error_code, info, vendor_id,
           vendor_error_code, charger_timestamp, updated_at
    FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::timestamptz[], $9::timestamptz[])
         WITH ORDINALITY AS x(cp, connector, status, error_code, info, vendor_id,
                              vendor_error_code, charger_timestamp, updated_at, n)
    ORDER BY cp, connector, n DESC
    ON CONFLICT (charge_point_id, connector_id) DO UPDATE SET
        status = EXCLUDED.status, error_code = EXCLUDED.error_code, info = EXCLUDED.info,
        vendor_id = EXCLUDED.vendor_id, vendor_error_code = EXCLUDED.vendor_error_code,
        charger_timestamp = EXCLUDED.charger_timestamp, updated_at = EXCLUDED.updated_at
    """,
)


class ConnectorRepository:
    def __init__(
        self, database: Database, writer: GroupCommitWriter, batched_reads: Database | None = None
    ) -> None:
        """``batched_reads``: where the batched status reads go (default ``database``)."""
        self._database = database
        self._writer = writer
        self._statuses = ReadBatcher(batched_reads or database, _read_statuses, dict)

    async def statuses(self, charge_point_id: str) -> dict[int, str]:
        """Current status of each known connector of the charge point (a charger's first
        StatusNotification asks; a storm of them is read in batches, see :meth:`run`)."""
        return await self._statuses.get(charge_point_id)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Batch the reads of :meth:`statuses` until cancelled (without it each is read
        alone); see :mod:`voltaro.store.read_batch`."""
        await self._statuses.run(task_status=task_status)

    async def list_all(self, charge_point_id: str) -> list[ConnectorRecord]:
        async def read(connection: Connection) -> list[ConnectorRecord]:
            rows = await connection.fetch(
                "SELECT * FROM connectors WHERE charge_point_id = $1 ORDER BY connector_id",
                charge_point_id,
            )
            return [ConnectorRecord.from_row(row) for row in rows]

        return await self._database.run(read)

    async def record_status(self, charge_point_id: str, change: StatusChange) -> None:
        """Set the connector's current status and append the change to its history."""
        info = pg_text(change.info)
        vendor_id = pg_text(change.vendor_id)
        vendor_error_code = pg_text(change.vendor_error_code)
        current = (
            charge_point_id,
            change.connector_id,
            change.status,
            change.error_code,
            info,
            vendor_id,
            vendor_error_code,
            change.charger_timestamp,
            change.received_at,
        )
        row = (
            charge_point_id,
            change.connector_id,
            change.status,
            change.previous_status,
            change.error_code,
            info,
            vendor_id,
            vendor_error_code,
            change.charger_timestamp,
            change.received_at,
            change.unexpected,
        )
        await self._writer.submit(
            Write(
                copies={STATUS_HISTORY: [row]},
                merges={CONNECTOR_STATUS: [current]},
                label="StatusNotification",
            )
        )


async def _read_statuses(
    connection: Connection, charge_point_ids: list[str]
) -> dict[str, dict[int, str]]:
    rows = await connection.fetch(
        "SELECT charge_point_id, connector_id, status FROM connectors"
        " WHERE charge_point_id = ANY($1::text[])",
        charge_point_ids,
    )
    statuses: dict[str, dict[int, str]] = {}
    for charge_point_id, connector_id, status in rows:
        statuses.setdefault(charge_point_id, {})[connector_id] = status
    return statuses
