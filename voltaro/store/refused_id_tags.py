"""The id tags chargers presented and Voltaro refused (unknown, blocked, expired, invalid):
one row per tag with how often, when and where, for the operator's "refused id tags" list.

Recorded off the charger's critical path: :meth:`RefusedIdTags.post` queues the refusal
for the writer's next batch and returns at once, and all the refusals of a batch become one
upsert (:data:`REFUSALS`). A refusal lost to an outage costs one count in an operator's
list, nothing the charger relies on. Tags last refused longer ago than the message log's
retention are forgotten with it (:meth:`RefusedIdTags.purge_before`).
"""

from __future__ import annotations

from datetime import datetime

from voltaro.store.database import Connection, Database
from voltaro.store.records import pg_text
from voltaro.store.writer import GroupCommitWriter, MergedUpdate, Write

REASONS = ("unknown", "blocked", "expired", "invalid")

# Many refusals in one statement: per tag (any case), the batch's count added, the last
# refusal's spelling, reason, charge point and message kept.
REFUSALS = MergedUpdate(
    "refused_id_tags",
    """
    INSERT INTO refused_id_tags AS r
        (key, id_tag, reason, times, first_seen, last_seen, charge_point_id, action)
    SELECT lower(id_tag),
           (array_agg(id_tag ORDER BY n DESC))[1],
           (array_agg(reason ORDER BY n DESC))[1],
           count(*), min(at), max(at),
           (array_agg(charge_point_id ORDER BY n DESC))[1],
           (array_agg(action ORDER BY n DESC))[1]
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
         WITH ORDINALITY AS x(id_tag, reason, charge_point_id, at, action, n)
    GROUP BY lower(id_tag)
    ON CONFLICT (key) DO UPDATE SET
        id_tag = EXCLUDED.id_tag,
        reason = EXCLUDED.reason,
        times = r.times + EXCLUDED.times,
        last_seen = greatest(r.last_seen, EXCLUDED.last_seen),
        charge_point_id = EXCLUDED.charge_point_id,
        action = EXCLUDED.action
    """,
)


class RefusedIdTags:
    def __init__(self, database: Database, writer: GroupCommitWriter) -> None:
        self._database = database
        self._writer = writer

    def post(
        self, id_tag: str, reason: str, charge_point_id: str, at: datetime, action: str
    ) -> None:
        """Fire-and-forget: counted with the next batch. ``reason`` is one of
        :data:`REASONS`."""
        if reason not in REASONS:
            raise ValueError(f"not a refusal reason: {reason!r}")
        row = (pg_text(id_tag), reason, pg_text(charge_point_id), at, action)
        self._writer.post(Write(merges={REFUSALS: [row]}, label="refused id tag", size=128))

    async def purge_before(self, cutoff: datetime) -> int:
        """Forget the tags last refused before ``cutoff``; returns how many."""

        async def purge(connection: Connection) -> int:
            result: str = await connection.execute(
                "DELETE FROM refused_id_tags WHERE last_seen < $1", cutoff
            )
            return int(result.split()[-1])

        return await self._database.run(purge)
