"""The OCPP message log: every frame in and out, appended in batches, kept within bounds.

Bounds (:class:`MessageLogLimits`), because a hostile or broken charger decides how much it
sends (200 connections of 64 KiB DataTransfers once grew the database 2.27 GB in 20 s):

- **Payload size**: a payload over ``max_payload`` bytes is stored as a stub saying so
  (see :func:`truncated`): its size, its SHA-256 and its first KiB. Ordinary OCPP messages
  are far below the default; what a flood sends is not kept whole.
- **Bytes per charge point and in total**: every entry counts its size (the frame's, or the
  stub's, plus :data:`ENTRY_OVERHEAD` for its row and index entries), summed per charge
  point in the database itself (``message_log_usage``, migration 0006: maintained by
  triggers, so it holds for any number of instances and across restarts). Housekeeping
  calls :meth:`MessageLogRepository.enforce_bounds` every few seconds: a charge point over
  ``charger_bytes`` loses its oldest entries, and when the whole log is over ``max_bytes``
  the oldest entries overall go, in short DELETEs of a few thousand rows.
- **Age**: :meth:`MessageLogRepository.purge_before` (the retention, once an hour).

What was cut is counted (the repository's counters) and logged once per episode (when it
starts and when it has been quiet for a minute; :mod:`.episodes`), never per entry.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voltaro.episodes import Episode
from voltaro.store.database import LONG_DEADLINE, Connection, Database, json_bytes
from voltaro.store.purge import purge_older_than
from voltaro.store.records import pg_text
from voltaro.store.writer import CopyTarget, GroupCommitWriter, Write

log = logging.getLogger(__name__)

MESSAGE_LOG = CopyTarget(
    "message_log",
    (
        "logged_at",
        "charge_point_id",
        "direction",
        "message_id",
        "action",
        "payload",
        "error_code",
        "bytes",
    ),
)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Counted per entry besides its payload: the row's header and other columns and its three
# index entries (measured: ~215 bytes for an empty payload, a 36-character message id).
ENTRY_OVERHEAD = 256
HEAD_BYTES = 1024  # of a truncated payload's JSON text, kept to show what it was
BOUND_CHUNK = 2000  # rows per DELETE when enforcing the byte bounds (~10-30 ms each)
# Work per enforcement at most: a large purge (a lowered bound, thousands of chargers over)
# is spread over several housekeeping rounds rather than holding up the presence checks
# between them (~1-3 s of DELETEs at most).
MAX_BOUND_ROWS = 100_000
MAX_BOUND_DELETES = 1000
QUIET_SECONDS = 60.0  # an episode (truncating, purging) is over after this long without


@dataclass(frozen=True)
class MessageLogLimits:
    """The message log's bounds, in bytes; the README's Configuration table says why these
    defaults."""

    max_payload: int = 8 * KiB
    charger_bytes: int = 64 * MiB
    max_bytes: int = 32 * GiB


@dataclass(frozen=True)
class Purged:
    """What one :meth:`MessageLogRepository.enforce_bounds` deleted."""

    entries: int = 0
    bytes: int = 0  # as counted (see the module docstring)
    chargers: tuple[str, ...] = ()  # charge points that were over their own bound
    overall: bool = False  # the whole log was over its bound
    entries_over_charger: int = 0  # of ``entries``, those deleted for their charge point's


def truncated(payload: object, size: int, text: bytes | None = None) -> dict[str, Any]:
    """The stub stored instead of a payload too large to keep: ``bytes`` is ``size`` (the
    frame's size as it came or went); ``sha256`` and ``head`` are of the payload's compact
    JSON text (as :func:`~voltaro.store.database.json_bytes` writes it: no spaces, keys in
    the order received, UTF-8; ``text`` when the caller has it already), ``head`` its first
    KiB cut at a character boundary."""
    if text is None:
        text = json_bytes(payload)
    return {
        "truncated": True,
        "bytes": size,
        "sha256": hashlib.sha256(text).hexdigest(),
        "head": text[:HEAD_BYTES].decode("utf-8", "ignore"),
    }


class MessageLogRepository:
    """Counters (read them, do not write them): ``truncated_payloads`` (payloads stored as a
    stub), ``purged_over_charger_bound`` and ``purged_over_total_bound`` (entries deleted to
    keep a charge point, or the whole log, within its bound), ``purged_bytes`` (their size
    as counted)."""

    def __init__(
        self,
        database: Database,
        writer: GroupCommitWriter,
        limits: MessageLogLimits | None = None,
    ) -> None:
        self._database = database
        self._writer = writer
        self.limits = limits or MessageLogLimits()
        self._truncating = Episode(QUIET_SECONDS)
        self._purging = Episode(QUIET_SECONDS)
        self.truncated_payloads = 0
        self.purged_over_charger_bound = 0
        self.purged_over_total_bound = 0
        self.purged_bytes = 0

    def post(
        self,
        logged_at: datetime,
        charge_point_id: str,
        direction: str,
        message_id: str | None,
        action: str | None,
        payload: object,
        error_code: str | None,
        *,
        size: int | None = None,
    ) -> None:
        """Fire-and-forget: the frame goes into the next batch's COPY.

        ``size``: the frame's size in bytes as it came or went; when None, the payload's
        JSON is measured here (a serialisation the caller usually need not pay for).
        """
        text = None
        if size is None:
            try:
                text = json_bytes(payload)
            except TypeError:  # not JSON: the batch will say so; no reason to fail here
                text = b""
            size = len(text)
        if size > self.limits.max_payload:
            payload, size = self._truncate(charge_point_id, action, payload, size, text)
        row = (
            logged_at,
            charge_point_id,
            direction,
            pg_text(message_id),
            pg_text(action),
            payload,
            pg_text(error_code),
            size + ENTRY_OVERHEAD,
        )
        self._writer.post(Write(copies={MESSAGE_LOG: [row]}, label="message log", size=size))

    def _truncate(
        self,
        charge_point_id: str,
        action: str | None,
        payload: object,
        size: int,
        text: bytes | None,
    ) -> tuple[dict[str, Any], int]:
        stub = truncated(payload, size, text)
        self.truncated_payloads += 1
        if self._truncating.event(size):
            log.warning(
                "message log: payloads over %d bytes are stored truncated (first: %s, %s of"
                " %d bytes); counted until it stops",
                self.limits.max_payload,
                charge_point_id,
                action,
                size,
            )
        return stub, len(json_bytes(stub))

    async def latest(
        self, charge_point_id: str, action: str, direction: str = "in"
    ) -> tuple[datetime, object] | None:
        """When the charge point's newest ``action`` frame (not a CALLERROR) was logged, and
        its payload; None when the log holds none (any more)."""

        async def read(connection: Connection) -> tuple[datetime, object] | None:
            row = await connection.fetchrow(
                "SELECT logged_at, payload FROM message_log WHERE charge_point_id = $1"
                " AND action = $2 AND direction = $3 AND error_code IS NULL"
                " ORDER BY logged_at DESC, id DESC LIMIT 1",
                charge_point_id,
                action,
                direction,
            )
            return None if row is None else (row["logged_at"], row["payload"])

        return await self._database.run(read)

    async def enforce_bounds(self) -> Purged:
        """Delete the oldest entries of each charge point over its bound, then the oldest
        overall while the whole log is over its bound (at most :data:`MAX_BOUND_ROWS` rows in
        :data:`MAX_BOUND_DELETES` DELETEs; the next call goes on). Two short queries when
        nothing is over (one crossing).

        Several instances may do this at once: each DELETE measures the excess it removes in
        the same statement, so they do not delete twice what one of them should.
        """
        limits = self.limits
        total, over = await self._database.run(_fold_and_measure, limits.charger_bytes)
        if not over and total <= limits.max_bytes:
            purged = Purged()
        else:
            # one crossing for all the DELETEs (each its own short transaction); a purge may
            # take its time (up to MAX_BOUND_ROWS), so the long deadline
            purged = await self._database.run(
                _purge_over_bounds, limits, total, over, deadline=LONG_DEADLINE
            )
        self.purged_over_charger_bound += purged.entries_over_charger
        self.purged_over_total_bound += purged.entries - purged.entries_over_charger
        self.purged_bytes += purged.bytes
        self._log_episodes(purged)
        return purged

    def _log_episodes(self, purged: Purged) -> None:
        if purged.entries and self._purging.event(purged.entries):
            over = []
            if purged.chargers:
                over.append(
                    f"{len(purged.chargers)} charge point(s) over {self.limits.charger_bytes}"
                    f" bytes, e.g. {', '.join(purged.chargers[:3])}"
                )
            if purged.overall:
                over.append(f"the whole log over {self.limits.max_bytes} bytes")
            log.warning(
                "message log over its bounds (%s): deleting the oldest entries",
                "; ".join(over),
            )
        ended = self._purging.end_if_quiet()
        if ended is not None:
            log.warning(
                "message log within its bounds for %.0f s: %d entries deleted in the %.0f s before",
                QUIET_SECONDS,
                ended.amount,
                ended.seconds,
            )
        ended = self._truncating.end_if_quiet()
        if ended is not None:
            log.warning(
                "message log: no payload truncated for %.0f s; %d were (%d bytes) in the %.0f s"
                " before",
                QUIET_SECONDS,
                ended.events,
                ended.amount,
                ended.seconds,
            )

    async def purge_before(self, cutoff: datetime) -> int:
        """Delete entries logged before ``cutoff``, a chunk per transaction; returns the count."""
        return await purge_older_than(self._database, "message_log", "logged_at", cutoff)


async def _fold_and_measure(connection: Connection, charger_bytes: int) -> tuple[int, list[str]]:
    """Bring message_log_usage up to date; the log's total and the charge points over
    ``charger_bytes``, largest first."""
    await connection.execute("SELECT message_log_usage_fold()")
    row = await connection.fetchrow(
        "SELECT coalesce(sum(bytes), 0) AS total,"
        " array_agg(charge_point_id ORDER BY bytes DESC) FILTER (WHERE bytes > $1) AS over"
        " FROM message_log_usage",
        charger_bytes,
    )
    return int(row["total"]), list(row["over"] or ())


# The oldest entries (of one charge point, or overall) whose sizes add up to the excess over
# the bound, read in the same statement (so concurrent enforcers do not both delete it), at
# most BOUND_CHUNK of them. Entries are taken in (logged_at, id) order along the indexes
# message_log_cp (charge_point_id, logged_at) and message_log_time (logged_at).
_PURGE_OLDEST = """
WITH excess AS ({excess}),
oldest AS (
    SELECT id, b, sum(b) OVER (ORDER BY logged_at, id) - b AS before
    FROM (SELECT id, logged_at, message_log_entry_bytes(bytes, payload) AS b
          FROM message_log {where} ORDER BY logged_at, id LIMIT {chunk}) AS s
),
gone AS (
    DELETE FROM message_log m USING oldest o, excess e
    WHERE m.id = o.id AND o.before < e.amount
    RETURNING o.b
)
SELECT count(*) AS entries, coalesce(sum(b), 0) AS bytes FROM gone
"""
_PURGE_OLDEST_OF = _PURGE_OLDEST.format(
    excess="SELECT bytes - $2 AS amount FROM message_log_usage WHERE charge_point_id = $1",
    where="WHERE charge_point_id = $1",
    chunk=BOUND_CHUNK,
)
_PURGE_OLDEST_OVERALL = _PURGE_OLDEST.format(
    excess="SELECT coalesce(sum(bytes), 0) - $1 AS amount FROM message_log_usage",
    where="",
    chunk=BOUND_CHUNK,
)


async def _purge_over_bounds(
    connection: Connection, limits: MessageLogLimits, total: int, over: list[str]
) -> Purged:
    """The DELETEs of :meth:`MessageLogRepository.enforce_bounds` (asyncio side)."""
    deletes = entries = freed = 0

    def more() -> bool:
        return deletes < MAX_BOUND_DELETES and entries < MAX_BOUND_ROWS

    for charge_point_id in over:
        while more():
            deletes += 1
            count, size = await _purge_oldest_of(connection, charge_point_id, limits.charger_bytes)
            entries, freed = entries + count, freed + size
            if count < BOUND_CHUNK:
                break
    over_charger = entries
    overall = total - freed > limits.max_bytes
    while overall and more():
        deletes += 1
        count, size = await _purge_oldest_overall(connection, limits.max_bytes)
        entries, freed = entries + count, freed + size
        if count < BOUND_CHUNK:
            break
    return Purged(entries, freed, tuple(over), overall, over_charger)


async def _purge_oldest_of(
    connection: Connection, charge_point_id: str, charger_bytes: int
) -> tuple[int, int]:
    row = await connection.fetchrow(_PURGE_OLDEST_OF, charge_point_id, charger_bytes)
    return int(row["entries"]), int(row["bytes"])


async def _purge_oldest_overall(connection: Connection, max_bytes: int) -> tuple[int, int]:
    row = await connection.fetchrow(_PURGE_OLDEST_OVERALL, max_bytes)
    return int(row["entries"]), int(row["bytes"])
