"""Authorization: the ``idTagInfo`` answered to Authorize, StartTransaction and
StopTransaction.

Status, in order of precedence:

1. ``Invalid``: the tag is unknown;
2. the operator's status when it is not Accepted (``Blocked``, ``Expired``, ``Invalid``);
3. ``Expired``: the expiry date has passed;
4. ``ConcurrentTx``: the tag is already in an open transaction (any charge point);
5. ``Accepted``.

A refusal (an answer other than Accepted and ConcurrentTx) also says why, for the operator's
list of refused tags: ``unknown``, or the operator's status (``blocked``, ``expired``,
``invalid``), or ``expired`` by date (:meth:`Authorizer.check`).

The tag comes from the store's cache and the open transactions from the store's index, both
in memory and both kept current for every writer by LISTEN/NOTIFY (see
``voltaro.store.id_tags`` and ``voltaro.store.open_transactions``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voltaro.central.timestamps import format_timestamp, utc_now
from voltaro.store.id_tags import IdTagCache
from voltaro.store.open_transactions import OpenTransactions


@dataclass(frozen=True)
class Verdict:
    """The ``idTagInfo`` to answer, and why the tag was refused (None: it was not)."""

    info: dict[str, Any]
    refusal: str | None


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
        return (await self.check(id_tag, check_concurrent=check_concurrent)).info

    async def check(self, id_tag: str, *, check_concurrent: bool = True) -> Verdict:
        """The ``idTagInfo`` for ``id_tag`` and the reason of a refusal."""
        record = await self._cache.lookup(id_tag)
        if record is None:
            return Verdict({"status": "Invalid"}, "unknown")
        info: dict[str, Any] = {}
        if record.expiry_date is not None:
            info["expiryDate"] = format_timestamp(record.expiry_date)
        if record.parent_id_tag is not None:
            info["parentIdTag"] = record.parent_id_tag
        refusal = None
        if record.status != "Accepted":
            status = record.status
            refusal = status.lower()
        elif record.expiry_date is not None and record.expiry_date <= self._clock():
            status, refusal = "Expired", "expired"
        elif check_concurrent and self._open.in_transaction(id_tag):
            status = "ConcurrentTx"
        else:
            status = "Accepted"
        return Verdict({"status": status, **info}, refusal)
