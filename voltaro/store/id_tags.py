"""Id tags: the operator's table, and the in-process cache every Authorize is answered from.

Why a cache: Authorize and StartTransaction are on the hot path and the answer depends on
one small row. Why it can be trusted: a trigger on ``id_tags`` announces every change (the
new row itself) with NOTIFY, and a dedicated LISTEN connection applies it to the cache, so a
tag blocked by ``voltaro idtag block`` in another process is answered Blocked the moment
that command commits.

Staleness, the one thing that must never happen (a blocked tag answered Accepted):

- The cache is *valid* only while its LISTEN connection is up. Start-up order is LISTEN,
  then load the table, then replay whatever was announced during the load; from then on no
  change can slip between the snapshot and the notifications.
- When the LISTEN connection drops (or fails the periodic health check: a ping unanswered
  within 5 s while no notification arrives on it either), the cache is emptied and marked
  invalid at once; until it has reconnected and reloaded, lookups go to
  the database (and fail, as InternalError, if the database is away too).
- A TRUNCATE of the table forces the same reconnect-and-reload.

The same LISTEN connection keeps the open-transaction index current
(:mod:`voltaro.store.open_transactions`, loaded and replayed the same way) and the charge
points' admission facts (:mod:`voltaro.store.charge_point_cache`, the same way again, valid
exactly when this cache is), and hands the ids of removed charge points to
:attr:`IdTagCache.on_charge_point_removed` (one connection rather than four). A removal
announced while the connection is down is missed there, and that charger keeps its
connection until it reconnects (as an unknown charger then).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import trio
import trio_asyncio

from voltaro.store import charge_point_cache, open_transactions
from voltaro.store.charge_point_cache import ChargePointCache, fetch_facts
from voltaro.store.database import CONNECT_TIMEOUT, Connection, Database, connect
from voltaro.store.open_transactions import OpenTransactions, fetch_open, tag_key
from voltaro.store.records import IdTagRecord

log = logging.getLogger(__name__)

CHANNEL = "voltaro_id_tags"
CHARGE_POINTS_CHANNEL = charge_point_cache.CHANNEL
HEALTH_CHECK_INTERVAL = 10.0  # seconds between pings of the LISTEN connection
HEALTH_CHECK_TIMEOUT = 5.0  # a ping slower than this (or the database's deadline) is a loss
# ...unless notifications kept arriving meanwhile (the connection is alive, its answer only
# queued behind them), for at most this long.
HEALTH_CHECK_PATIENCE = 60.0
RECONNECT_BACKOFF = (0.1, 5.0)  # first and longest wait between reconnection attempts


async def _fetch_one(connection: Connection, id_tag: str) -> IdTagRecord | None:
    row = await connection.fetchrow("SELECT * FROM id_tags WHERE lower(id_tag) = lower($1)", id_tag)
    return None if row is None else IdTagRecord.from_row(row)


async def _fetch_all(connection: Connection) -> list[IdTagRecord]:
    rows = await connection.fetch("SELECT * FROM id_tags ORDER BY id_tag")
    return [IdTagRecord.from_row(row) for row in rows]


class IdTagCache:
    """The id tag table in memory, kept current by LISTEN/NOTIFY; run :meth:`run` in a
    nursery (``nursery.start``) and ask :meth:`lookup`.

    Counters: ``reloads`` (full loads), ``notifications`` (changes applied), ``misses``
    (lookups that went to the database because the cache was invalid).

    A frozen database (it keeps the connection open and answers nothing) is noticed by the
    health check: a ping unanswered within ``health_check_timeout`` (at most the
    database's deadline) invalidates the cache. Connecting and loading again are bounded by
    the deadline too, and retried until the database answers.
    """

    def __init__(
        self,
        database: Database,
        *,
        open_transactions: OpenTransactions | None = None,
        health_check_interval: float = HEALTH_CHECK_INTERVAL,
        health_check_timeout: float = HEALTH_CHECK_TIMEOUT,
    ) -> None:
        self._database = database
        self._check_interval = health_check_interval
        self._check_timeout = min(health_check_timeout, database.deadline)
        self._tags: dict[str, IdTagRecord] = {}
        self._valid = False
        self.open_transactions = open_transactions or OpenTransactions()
        self.charge_points = ChargePointCache(database)
        self._buffer: list[tuple[str, str]] | None = None  # (channel, payload) during a load
        self._lost: trio.Event | None = None
        self.listener_pid: int | None = None  # backend pid of the LISTEN connection
        self.on_charge_point_removed: Callable[[str], None] | None = None
        """Called (in trio's thread) with the id of each charge point removed anywhere."""
        self._subscriptions: dict[str, Callable[[str], None]] = {}
        self._connection: Connection | None = None  # the LISTEN connection while it is up
        self.reloads = 0
        self.notifications = 0
        self._heard = 0  # notifications that arrived on the LISTEN connection
        self.misses = 0

    async def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        """Hand every notification on ``channel`` to ``callback(payload)`` (in trio's thread)
        from now on, across reconnections of the LISTEN connection. The callback must not
        block; an exception from it is logged, never raised. Notifications sent while the
        connection is down are lost: a subscriber that cannot afford that sweeps the table
        behind its notifications from time to time."""
        self._subscriptions[channel] = callback
        connection = self._connection
        if connection is not None and not connection.is_closed():
            try:
                await trio_asyncio.aio_as_trio(connection.add_listener)(
                    channel, self._on_subscribed
                )
            except Exception as exc:  # the connection is going: the reconnection listens
                log.debug("LISTEN %s deferred to the next connection: %s", channel, exc)

    @property
    def valid(self) -> bool:
        return self._valid

    async def lookup(self, id_tag: str) -> IdTagRecord | None:
        """The tag's row, or None when unknown. From memory while the cache is valid, from the
        database otherwise (raises StoreUnavailable when that is away too)."""
        if self._valid:
            return self._tags.get(tag_key(id_tag))
        self.misses += 1
        return await self._database.run(_fetch_one, id_tag)

    def records(self) -> list[IdTagRecord] | None:
        """Every tag's row from memory (in no order), or None while the cache is invalid."""
        return list(self._tags.values()) if self._valid else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the cache valid: connect, LISTEN, load, watch; on any loss invalidate and
        start over. Reports started once the first load is done (or failed: then lookups
        read the table until a later attempt succeeds)."""
        started = False
        backoff = RECONNECT_BACKOFF[0]
        failing_since: float | None = None  # the first failed attempt of this stretch
        while True:
            lost = trio.Event()
            self._lost = lost
            try:
                connection = await trio_asyncio.aio_as_trio(self._listen_and_load)()
            except Exception as exc:
                if failing_since is None:  # one line for the stretch, not one per attempt
                    failing_since = trio.current_time()
                    log.warning("id tag cache: cannot listen (%s); retrying until it can", exc)
                else:
                    log.debug("id tag cache: still cannot listen (%s)", exc)
                if not started:  # serve anyway: lookups go to the table until it works
                    task_status.started()
                    started = True
                await trio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF[1])
                continue
            if failing_since is not None:
                log.warning(
                    "id tag cache: listening again after %.1f s; reloaded",
                    trio.current_time() - failing_since,
                )
                failing_since = None
            backoff = RECONNECT_BACKOFF[0]
            self._valid = not lost.is_set()
            self.charge_points.set_valid(self._valid)
            if not started:
                task_status.started()
                started = True
            self._connection = connection
            try:
                await self._watch(connection, lost)
            finally:
                self._connection = None
                self._invalidate()
                with trio.CancelScope(shield=True):
                    await self._close(connection)
            log.warning("id tag cache: LISTEN connection lost; reloading")

    def _invalidate(self) -> None:
        self._valid = False
        self._tags = {}
        self.charge_points.set_valid(False)

    async def _watch(self, connection: Connection, lost: trio.Event) -> None:
        while not lost.is_set():
            with trio.move_on_after(self._check_interval):
                await lost.wait()
                return
            if not await self._answers_ping(connection):
                return

    async def _answers_ping(self, connection: Connection) -> bool:
        """Whether the connection answers a ping within the health check's timeout, or
        later while notifications keep arriving on it (a storm of registrations announces
        tens of thousands: the answer is queued behind them, the connection is alive), up
        to :data:`HEALTH_CHECK_PATIENCE`; logs why not."""
        answered = trio.Event()
        failure: list[Exception] = []

        async def ping() -> None:
            try:
                await trio_asyncio.aio_as_trio(connection.fetchval)("SELECT 1")
            except Exception as exc:
                failure.append(exc)
            answered.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ping)
            in_time = await answered_or_alive(
                answered, lambda: self._heard, self._check_timeout, HEALTH_CHECK_PATIENCE
            )
            nursery.cancel_scope.cancel()
        if not in_time:
            log.warning("id tag cache: health check timed out")
            return False
        if failure:
            log.warning("id tag cache: health check failed: %s", failure[0])
            return False
        return True

    @staticmethod
    async def _close(connection: Connection) -> None:
        with trio.move_on_after(2):
            try:
                await trio_asyncio.aio_as_trio(connection.close)()
                return
            except Exception:
                pass
        connection.terminate()

    # ---- asyncio side -------------------------------------------------------------

    async def _listen_and_load(self) -> Connection:
        deadline = self._database.deadline
        connection = await connect(self._database.url, min(deadline, CONNECT_TIMEOUT))
        try:
            async with asyncio.timeout(deadline):
                return await self._load(connection)
        except BaseException:
            self._buffer = None
            connection.terminate()
            raise

    async def _load(self, connection: Connection) -> Connection:
        self.listener_pid = connection.get_server_pid()
        self._buffer = []
        connection.add_termination_listener(self._on_terminated)
        await connection.add_listener(CHANNEL, self._on_notify)
        await connection.add_listener(CHARGE_POINTS_CHANNEL, self._on_notify)
        await connection.add_listener(open_transactions.CHANNEL, self._on_notify)
        for channel in self._subscriptions:
            await connection.add_listener(channel, self._on_subscribed)
        records = await _fetch_all(connection)
        self._tags = {tag_key(r.id_tag): r for r in records}
        self.open_transactions.load(await fetch_open(connection))
        self.charge_points.load(await fetch_facts(connection))
        buffered, self._buffer = self._buffer, None
        for channel, payload in buffered:
            self._dispatch(channel, payload)
        self.reloads += 1
        return connection

    def _on_terminated(self, connection: Connection) -> None:
        self._valid = False
        self.charge_points.set_valid(False)
        if self._lost is not None:
            self._lost.set()

    def _on_notify(self, connection: Connection, pid: int, channel: str, payload: str) -> None:
        self._heard += 1
        if self._buffer is not None:
            self._buffer.append((channel, payload))
        else:
            self._dispatch(channel, payload)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == CHARGE_POINTS_CHANNEL:
            self._apply_charge_point(payload)
        elif channel != open_transactions.CHANNEL:
            self._apply(payload)
        elif not self.open_transactions.apply(payload):
            self._reload()

    def _on_subscribed(self, connection: Connection, pid: int, channel: str, payload: str) -> None:
        self._heard += 1
        callback = self._subscriptions.get(channel)
        if callback is None:
            return
        try:
            callback(payload)
        except Exception:  # this runs in the LISTEN callback: never let it end the server
            log.exception("handling a notification on %s failed: %.200r", channel, payload)

    def _apply_charge_point(self, payload: str) -> None:
        change = charge_point_cache.decode(payload)
        if change is None or not self.charge_points.apply(change):
            if change is None:
                log.error("charge point cache: unreadable notification %r; reloading", payload)
            self._reload()
            return
        removed = change["id"] if change["op"] == "removed" else None
        if isinstance(removed, str) and self.on_charge_point_removed is not None:
            self.on_charge_point_removed(removed)

    def _apply(self, payload: str) -> None:
        """Apply one notification. This runs in the LISTEN connection's callback, where an
        exception would end the whole server: a notification that cannot be applied makes
        the cache reload instead (it is trusted for nothing until then)."""
        self.notifications += 1
        try:
            change: dict[str, Any] = orjson.loads(payload)
            op = change.get("op")
            if op == "upsert":
                expiry = change.get("expiry")
                record = IdTagRecord(
                    str(change["id_tag"]),
                    str(change["status"]),
                    None if expiry is None else _from_epoch(expiry),
                    change.get("parent_id_tag"),
                )
                self._tags[tag_key(record.id_tag)] = record
                return
            if op == "delete":
                self._tags.pop(tag_key(str(change["id_tag"])), None)
                return
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            log.error("id tag cache: unusable notification %r; reloading", payload)
        # reload (a TRUNCATE), unknown or unusable: trust nothing in memory
        self._reload()

    def _reload(self) -> None:
        """Trust nothing in memory: reconnect and load again."""
        self._invalidate()
        if self._lost is not None:
            self._lost.set()


async def answered_or_alive(
    answered: trio.Event, heard: Callable[[], int], timeout: float, patience: float
) -> bool:
    """Wait for ``answered``: True once it is set; False once ``timeout`` seconds pass
    without it and with nothing heard meanwhile (``heard()``, a count, unchanged), or
    ``patience`` seconds in all."""
    give_up = trio.current_time() + patience
    while True:
        before = heard()
        with trio.move_on_at(min(trio.current_time() + timeout, give_up)):
            await answered.wait()
            return True
        if heard() == before or trio.current_time() >= give_up:
            return False


def _from_epoch(seconds: object) -> datetime:
    """A notification's expiry (epoch seconds) as an aware datetime. PostgreSQL's
    ``infinity`` and ``-infinity`` arrive as infinite numbers: they are the latest and the
    earliest times, as the table's rows read (see ``records``)."""
    value = float(seconds)  # type: ignore[arg-type]  # a number or its text; else ValueError
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):  # infinite, NaN, or beyond year 9999
        return _LATEST if value > 0 else _EARLIEST


_LATEST = datetime.max.replace(tzinfo=UTC)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


class IdTagChange(NamedTuple):
    """An id tag as :meth:`IdTagRepository.upsert` writes it."""

    id_tag: str
    status: str = "Accepted"
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None


async def _upsert(connection: Connection, change: IdTagChange) -> bool:
    updated = await connection.execute(
        "UPDATE id_tags SET status = $2, expiry_date = $3, parent_id_tag = $4,"
        " updated_at = now() WHERE lower(id_tag) = lower($1)",
        *change,
    )
    if updated != "UPDATE 0":
        return False
    await connection.execute(
        "INSERT INTO id_tags (id_tag, status, expiry_date, parent_id_tag) VALUES ($1, $2, $3, $4)",
        *change,
    )
    return True


class IdTagRepository:
    """The operator's commands on the id tag table (the cache follows by itself)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, id_tag: str) -> IdTagRecord | None:
        return await self._database.run(_fetch_one, id_tag)

    async def list_all(self) -> list[IdTagRecord]:
        return await self._database.run(_fetch_all)

    async def upsert(
        self,
        id_tag: str,
        *,
        status: str = "Accepted",
        expiry_date: datetime | None = None,
        parent_id_tag: str | None = None,
    ) -> bool:
        """Add the tag, or replace status/expiry/parent of the existing one (matched
        case-insensitively). Returns True when it was added."""
        return await self._database.run_in_transaction(
            _upsert, IdTagChange(id_tag, status, expiry_date, parent_id_tag)
        )

    async def upsert_many(self, changes: Sequence[IdTagChange]) -> int:
        """:meth:`upsert` each of ``changes`` in one transaction: all or none. Returns how
        many were added."""

        async def apply(connection: Connection) -> int:
            added = 0
            for change in changes:
                added += await _upsert(connection, change)
            return added

        return await self._database.run_in_transaction(apply)

    async def set_status(self, id_tag: str, status: str) -> bool:
        """False when the tag is unknown."""
        result: str = await self._database.run(
            lambda c: c.execute(
                "UPDATE id_tags SET status = $2, updated_at = now()"
                " WHERE lower(id_tag) = lower($1)",
                id_tag,
                status,
            )
        )
        return result != "UPDATE 0"

    async def remove(self, id_tag: str) -> bool:
        result: str = await self._database.run(
            lambda c: c.execute("DELETE FROM id_tags WHERE lower(id_tag) = lower($1)", id_tag)
        )
        return result != "DELETE 0"
