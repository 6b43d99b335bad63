"""Authorization: the ``idTagInfo`` answered to Authorize, StartTransaction and
StopTransaction.

Status, in order of precedence:

1. ``Invalid``: the tag is unknown;
2. the operator's status when it is not Accepted (``Blocked``, ``Expired``, ``Invalid``);
3. ``Expired``: the expiry date has passed;
4. ``ConcurrentTx``: the tag is already in an open transaction (any charge point);
5. ``Accepted``.

The tag comes from the store's cache (kept current by LISTEN/NOTIFY, see
``voltaro.store.id_tags``); the open transactions from an in-memory index loaded at start
and updated after each committed start and stop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from voltaro.central.timestamps import format_timestamp, utc_now
from voltaro.store.id_tags import IdTagCache, tag_key
from voltaro.store.records import OpenTransaction


class OpenTransactions:
    """Which id tags are in an open transaction right now."""

    def __init__(self) -> None:
        self._tag_of: dict[int, str] = {}
        self._by_tag: dict[str, set[int]] = {}

    def load(self, transactions: Iterable[OpenTransaction]) -> None:
        self._tag_of.clear()
        self._by_tag.clear()
        for tx in transactions:
            self.started(tx.transaction_id, tx.id_tag)

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


class Authorizer:
    def __init__(
        self,
        cache: IdTagCache,
        open_transactions: OpenTransactions,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._cache = cache
        self._open = open_transactions
        self._clock = clock

    async def id_tag_info(self, id_tag: str, *, check_concurrent: bool = True) -> dict[str, Any]:
        """The ``idTagInfo`` object for ``id_tag`` (see the module docstring)."""
        record = await self._cache.lookup(id_tag)
        if record is None:
            return {"status": "Invalid"}
        info: dict[str, Any] = {}
        if record.expiry_date is not None:
            info["expiryDate"] = format_timestamp(record.expiry_date)
        if record.parent_id_tag is not None:
            info["parentIdTag"] = record.parent_id_tag
        if record.status != "Accepted":
            status = record.status
        elif record.expiry_date is not None and record.expiry_date <= self._clock():
            status = "Expired"
        elif check_concurrent and self._open.in_transaction(id_tag):
            status = "ConcurrentTx"
        else:
            status = "Accepted"
        return {"status": status, **info}
