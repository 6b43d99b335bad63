"""Transactions and meter values.

StartTransaction de-duplication lives in the database: the unique key ``transactions_dedup``
(charge point, connector, idTag, start timestamp, meterStart) makes a retried start, with a
new message id or after a restart, find the transaction it created the first time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from voltaro.store.database import LONG_DEADLINE, Connection, Database, JsonbElement
from voltaro.store.records import (
    EnergyReading,
    StartedTransaction,
    StopOutcome,
    TransactionRecord,
    pg_text,
)
from voltaro.store.writer import GroupCommitWriter, MergedQuery, Write

# MeterValues, one statement per batch for all of them (one round trip to the database):
# - each message's content is claimed in meter_value_messages (charger, digest); a retry
#   with a new message id, in this batch or after a restart, finds the claim and stores
#   nothing (within a batch, the first of equal messages is the one stored);
# - each message stored goes in as one row (see migration 0005): its meterValue list;
# - the running energy of open transactions; a reading older than the one stored (a late,
#   queued message) does not overwrite a newer one.
# It answers (ordinal, true) for each message stored; a retry gets no row.
METER_VALUES = MergedQuery(
    "meter values",
    """
    WITH input AS (
        SELECT * FROM unnest($1::integer[], $2::text[], $3::bytea[], $4::timestamptz[],
                             $5::integer[], $6::integer[], $7::jsonb[], $8::integer[],
                             $9::float8[], $10::timestamptz[])
             AS i(n, cp, digest, received, connector, tx, meter_value, energy_tx, wh, at)
    ), claimed AS (
        INSERT INTO meter_value_messages (charge_point_id, digest, received_at)
        SELECT cp, digest, received FROM input ORDER BY n
        ON CONFLICT DO NOTHING
        RETURNING charge_point_id, digest
    ), stored AS (
        SELECT DISTINCT ON (i.cp, i.digest) i.*
        FROM input AS i JOIN claimed AS c ON c.charge_point_id = i.cp AND c.digest = i.digest
        ORDER BY i.cp, i.digest, i.n
    ), sets AS (
        INSERT INTO meter_value_sets (charge_point_id, connector_id, transaction_id,
                                      received_at, source, meter_value)
        SELECT cp, connector, tx, received, 'MeterValues', meter_value FROM stored ORDER BY n
    ), energy AS (
        UPDATE transactions AS t
        SET last_register_wh = u.wh, last_register_at = u.at,
            energy_wh = u.wh - t.meter_start
        FROM (SELECT DISTINCT ON (energy_tx) energy_tx, cp, wh, at FROM stored
              WHERE energy_tx IS NOT NULL ORDER BY energy_tx, at DESC) AS u
        WHERE t.transaction_id = u.energy_tx AND t.charge_point_id = u.cp
          AND t.stopped_at IS NULL
          AND (t.last_register_at IS NULL OR t.last_register_at <= u.at)
    )
    SELECT n, true FROM stored
    """,
)

# A StopTransaction's transactionData: one row, like a MeterValues' (without the claim: a
# retried stop is recognised by the transaction being stopped already).
_INSERT_SET_SQL = """
INSERT INTO meter_value_sets (charge_point_id, connector_id, transaction_id, received_at,
                              source, meter_value)
VALUES ($1, $2, $3, $4, 'StopTransaction', $5)
"""

_INSERT_SQL = """
INSERT INTO transactions (charge_point_id, connector_id, id_tag, id_tag_status, started_at,
                          meter_start, reservation_id, received_at, energy_wh)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)
ON CONFLICT ON CONSTRAINT transactions_dedup DO NOTHING
RETURNING transaction_id, id_tag_status
"""

_FIND_SQL = """
SELECT transaction_id, id_tag_status FROM transactions
WHERE charge_point_id = $1 AND connector_id = $2 AND id_tag = $3 AND started_at = $4
  AND meter_start = $5
"""

_STOP_SQL = """
UPDATE transactions SET stopped_at = $3, meter_stop = $4, stop_reason = $5, stop_id_tag = $6,
                        stop_received_at = $7, energy_wh = $4::bigint::float8 - meter_start
WHERE transaction_id = $1 AND charge_point_id = $2 AND stopped_at IS NULL
RETURNING connector_id
"""


class TransactionRepository:
    def __init__(self, database: Database, writer: GroupCommitWriter) -> None:
        self._database = database
        self._writer = writer

    async def start(
        self,
        charge_point_id: str,
        connector_id: int,
        id_tag: str,
        started_at: datetime,
        meter_start: int,
        reservation_id: int | None,
        id_tag_status: str,
        received_at: datetime,
    ) -> StartedTransaction:
        """Record a started transaction, or find the one an identical earlier start created
        (then ``created`` is False and ``id_tag_status`` is what was answered then)."""
        id_tag = pg_text(id_tag) or ""

        async def apply(connection: Connection) -> StartedTransaction:
            key = (charge_point_id, connector_id, id_tag, started_at, meter_start)
            # Two tries: a concurrent insert of the same key (two servers) makes the first
            # DO NOTHING and is invisible to this statement's snapshot; the second sees it.
            for _ in range(2):
                row = await connection.fetchrow(
                    _INSERT_SQL, *key[:3], id_tag_status, *key[3:], reservation_id, received_at
                )
                if row is not None:
                    return StartedTransaction(row[0], row[1], created=True)
                row = await connection.fetchrow(_FIND_SQL, *key)
                if row is not None:
                    return StartedTransaction(row[0], row[1], created=False)
            raise RuntimeError("transaction neither inserted nor found")

        return await self._writer.submit(Write(apply, label="StartTransaction"))

    async def stop(
        self,
        charge_point_id: str,
        transaction_id: int,
        stopped_at: datetime,
        meter_stop: int,
        reason: str | None,
        id_tag: str | None,
        received_at: datetime,
        transaction_data: Sequence[dict[str, Any]] = (),
    ) -> StopOutcome:
        """Close the transaction; its transactionData values are stored (on the transaction's
        connector) only when this call closed it, so a retried stop changes nothing."""
        stop_id_tag = pg_text(id_tag)

        async def apply(connection: Connection) -> StopOutcome:
            connector_id = await connection.fetchval(
                _STOP_SQL,
                transaction_id,
                charge_point_id,
                stopped_at,
                meter_stop,
                pg_text(reason),
                stop_id_tag,
                received_at,
            )
            if connector_id is None:
                exists = await connection.fetchval(
                    "SELECT true FROM transactions"
                    " WHERE transaction_id = $1 AND charge_point_id = $2",
                    transaction_id,
                    charge_point_id,
                )
                return StopOutcome.ALREADY_STOPPED if exists else StopOutcome.UNKNOWN
            if transaction_data:
                await connection.execute(
                    _INSERT_SET_SQL,
                    charge_point_id,
                    connector_id,
                    transaction_id,
                    received_at,
                    JsonbElement(transaction_data),
                )
            return StopOutcome.STOPPED

        return await self._writer.submit(Write(apply, label="StopTransaction"))

    async def meter_values(
        self,
        charge_point_id: str,
        connector_id: int,
        transaction_id: int | None,
        meter_value: Sequence[dict[str, Any]],
        energy: EnergyReading | None,
        received_at: datetime,
        digest: bytes,
    ) -> bool:
        """Store the sampled values and the transaction's energy (one statement per batch).

        ``digest`` identifies the message's content: a retry of a message already stored
        stores nothing and returns False."""
        reading: tuple[object, ...] = (None, None, None)
        if energy is not None:
            reading = (energy.transaction_id, energy.wh, energy.at)
        message = (charge_point_id, digest, received_at, connector_id, transaction_id)
        row = (*message, JsonbElement(meter_value), *reading)
        stored = await self._writer.submit(
            Write[bool | None](query=(METER_VALUES, row), label="MeterValues")
        )
        return stored is True

    async def purge_meter_messages_before(self, cutoff: datetime) -> int:
        """Forget the digests of MeterValues older than ``cutoff``; returns how many."""

        async def purge(connection: Connection) -> int:
            result: str = await connection.execute(
                "DELETE FROM meter_value_messages WHERE received_at < $1", cutoff
            )
            return int(result.split()[-1])

        # one statement for all that is due: after a long stop, many rows
        return await self._database.run(purge, deadline=LONG_DEADLINE)

    # ---- reads ----------------------------------------------------------------------

    async def get(self, transaction_id: int) -> TransactionRecord | None:
        async def read(connection: Connection) -> TransactionRecord | None:
            row = await connection.fetchrow(
                "SELECT * FROM transactions WHERE transaction_id = $1", transaction_id
            )
            return None if row is None else TransactionRecord.from_row(row)

        return await self._database.run(read)

    async def list_all(self, charge_point_id: str) -> list[TransactionRecord]:
        async def read(connection: Connection) -> list[TransactionRecord]:
            rows = await connection.fetch(
                "SELECT * FROM transactions WHERE charge_point_id = $1 ORDER BY transaction_id",
                charge_point_id,
            )
            return [TransactionRecord.from_row(row) for row in rows]

        return await self._database.run(read)
