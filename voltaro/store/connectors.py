"""Connectors: current status per (charge point, connector) and the status history."""

from __future__ import annotations

from voltaro.store.database import Connection, Database
from voltaro.store.records import ConnectorRecord, StatusChange, pg_text
from voltaro.store.writer import CopyTarget, GroupCommitWriter, Write

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

_UPSERT_SQL = """
INSERT INTO connectors (charge_point_id, connector_id, status, error_code, info, vendor_id,
                        vendor_error_code, charger_timestamp, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (charge_point_id, connector_id) DO UPDATE SET
    status = EXCLUDED.status, error_code = EXCLUDED.error_code, info = EXCLUDED.info,
    vendor_id = EXCLUDED.vendor_id, vendor_error_code = EXCLUDED.vendor_error_code,
    charger_timestamp = EXCLUDED.charger_timestamp, updated_at = EXCLUDED.updated_at
"""


class ConnectorRepository:
    def __init__(self, database: Database, writer: GroupCommitWriter) -> None:
        self._database = database
        self._writer = writer

    async def statuses(self, charge_point_id: str) -> dict[int, str]:
        """Current status of each known connector of the charge point."""

        async def read(connection: Connection) -> dict[int, str]:
            rows = await connection.fetch(
                "SELECT connector_id, status FROM connectors WHERE charge_point_id = $1",
                charge_point_id,
            )
            return {row[0]: row[1] for row in rows}

        return await self._database.run(read)

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

        async def apply(connection: Connection) -> None:
            await connection.execute(
                _UPSERT_SQL,
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
            Write(apply, copies={STATUS_HISTORY: [row]}, label="StatusNotification")
        )
