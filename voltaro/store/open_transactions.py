"""Which id tags are in an open transaction right now, installation-wide (for ConcurrentTx).

The index lives in memory (every StartTransaction and Authorize asks it) and is kept right
for every writer, not only this process: a trigger on ``transactions`` announces each start
and stop on the ``voltaro_transactions`` channel, and the id tag cache's LISTEN connection
(:mod:`voltaro.store.id_tags`) applies the announcements here. Whenever that connection
(re)connects, the index is reloaded from the table after LISTEN, with what was announced
during the load replayed, as the id tags are. The handlers of this process also apply their
own starts and stops at once (before their announcement arrives); applying one twice
changes nothing.

While the LISTEN connection is down, other writers' starts and stops are missed until it is
back (then the reload repairs the index): ConcurrentTx may be missed for that long, never a
charger refused for a transaction that does not exist once the connection is back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson

from voltaro.store.database import Connection

log = logging.getLogger(__name__)

CHANNEL = "voltaro_transactions"


def tag_key(id_tag: str) -> str:
    """idTag is a CiString20: compared case-insensitively, like ``lower(id_tag)`` in SQL."""
    return id_tag.lower()


class OpenTransactions:
    """Open transactions by id tag (see the module doc)."""

    def __init__(self) -> None:
        self._tag_of: dict[int, str] = {}
        self._by_tag: dict[str, set[int]] = {}

    def load(self, transactions: Iterable[tuple[int, str]]) -> None:
        """Replace the index with ``(transaction_id, id_tag)`` pairs."""
        self._tag_of.clear()
        self._by_tag.clear()
        for transaction_id, id_tag in transactions:
            self.started(transaction_id, id_tag)

    def started(self, transaction_id: int, id_tag: str) -> None:
        key = tag_key(id_tag)
        self._tag_of[transaction_id] = key
        self._by_tag.setdefault(key, set()).add(transaction_id)

    def stopped(self, transaction_id: int) -> None:
        key = self._tag_of.pop(transaction_id, None)
        if key is not None:
            ids = self._by_tag.get(key, set())
            ids.discard(transaction_id)
            if not ids:
                self._by_tag.pop(key, None)

    def in_transaction(self, id_tag: str) -> bool:
        return bool(self._by_tag.get(tag_key(id_tag)))

    def __len__(self) -> int:
        return len(self._tag_of)

    def apply(self, payload: str) -> bool:
        """Apply one announcement; False when it cannot be read (then reload)."""
        try:
            change: dict[str, Any] = orjson.loads(payload)
            op = change["op"]
            if op == "started":
                self.started(int(change["id"]), str(change["id_tag"]))
                return True
            if op == "stopped":
                self.stopped(int(change["id"]))
                return True
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            pass
        log.error("open transactions: unusable notification %r; reloading", payload)
        return False


async def fetch_open(connection: Connection) -> list[tuple[int, str]]:
    rows = await connection.fetch(
        "SELECT transaction_id, id_tag FROM transactions WHERE stopped_at IS NULL"
    )
    return [(row[0], row[1]) for row in rows]
