"""The group-commit writer: many chargers' writes share one transaction, and each caller's
``await`` returns only after the commit that holds its write.

Why: a CALLRESULT is the charger's permission to delete its copy, so a handler may answer
only once its data is durable. One durable commit costs ~3-4 ms (fsync); committing each
message alone would cap Voltaro at a few hundred messages per second. Instead one task (the
writer) takes everything queued, writes it in one transaction, commits, and wakes all the
callers. While it commits, new writes queue up and form the next batch, so batches grow by
themselves under load and stay at one write when idle (no added latency). A batch that is one
statement (say, only handshakes' presence records) is sent without BEGIN and COMMIT:
PostgreSQL commits a lone statement atomically, and those are two round trips fewer.

What a write is (:class:`Write`):

- ``apply``: an asyncio function run on the batch's connection (its statements);
- ``copies``: rows for append-only tables, merged across the whole batch into one COPY per
  table (status history, the message log, the meter values of StopTransaction);
- ``merges``: rows for a set-based statement run once per batch with the rows as arrays
  (e.g. the running energy of many transactions in one UPDATE);
- ``query``: a row for a set-based statement that also answers each row (one statement for
  all the batch's BootNotifications, each caller getting its charger's status).

Error handling:

- A bad write (a constraint, bad data) fails alone: the batch is rolled back and replayed
  with each write in its own savepoint, so its batch-mates commit; its caller gets
  :class:`WriteFailed` (chained to the database error).
- An outage (connection lost, server down) fails the whole batch: every waiting caller gets
  :class:`StoreUnavailable`. The writer sleeps a little (doubling up to 2 s) and tries the
  next batch, so it recovers by itself once the database is back. Fire-and-forget writes
  (:meth:`GroupCommitWriter.post`, used for the message log and last-seen) are kept and
  retried, up to ``max_posted`` of them and ``max_posted_bytes`` of their sizes (each
  write's ``size``, an estimate of what it holds); beyond that the oldest are dropped and
  counted.
- A database that stops answering (frozen, partitioned) is an outage too, found by the
  deadline (the database's ``deadline``, ``VOLTARO_DATABASE_DEADLINE``): :meth:`submit`
  returns within it whatever happens. A write not yet taken into a batch when its caller's
  deadline passes is dropped from the queue, never written; one already in a batch may or
  may not commit (its batch's connection is terminated at the same deadline, see
  :mod:`.database`). That is at-least-once, which the chargers' retries need anyway:
  StartTransaction and MeterValues are recognised by their content, and a retried
  StopTransaction finds its transaction stopped.
- An outage is logged as one episode: one WARNING when writes start being refused (why),
  one when a batch begun after the last refusal has committed (how long it lasted, how many
  writes were refused, how many background writes were kept or dropped); nothing per
  failed batch or refused write. Likewise a full queue of background writes outside an
  outage: one line when dropping starts, one when the queue has caught up.
- When the writer stops, every caller still waiting gets :class:`StoreUnavailable`: a write
  whose commit was interrupted may or may not be saved, and the charger, having no answer,
  retries.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import trio

from voltaro.store.database import Connection, Database
from voltaro.store.errors import StoreUnavailable, WriteFailed, is_outage
from voltaro.store.metrics import LATENCY_BUCKETS, SIZE_BUCKETS, Histogram

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH = 2000  # writes per transaction; beyond this a batch's latency grows for no gain
MAX_POSTED = 100_000  # fire-and-forget writes kept through an outage before dropping the oldest
# ... and their sizes: what a queued frame costs in memory is ~5x its JSON (a 1.4 KB
# MeterValues parsed is ~7 KB of Python objects), so ~160 MB at most; a stall at the
# benchmark's full load (~3.5 MB/s of frames logged) keeps its frames ~9 s, longer at
# ordinary loads. Without it, 100,000 writes of 64 KiB frames were ~150 MB/s of growth.
MAX_POSTED_BYTES = 32 * 1024 * 1024
MIN_BACKOFF = 0.05  # seconds after a failed batch; doubles up to MAX_BACKOFF
MAX_BACKOFF = 2.0
FINAL_FLUSH_SECONDS = 2.0  # at shutdown, how long queued writes may take to commit
DRAIN_SECONDS = 1.0  # batches back to back on the database's side before trio is asked again


@dataclass(frozen=True)
class CopyTarget:
    """An append-only table that batches load with COPY: its name and the columns given."""

    table: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class MergedUpdate:
    """A statement run once per batch; ``$1..$n`` are arrays, one per column of the rows.

    The SQL must cope with several rows for the same key in one batch (e.g. ``DISTINCT ON``).
    """

    name: str
    sql: str


@dataclass(frozen=True)
class MergedQuery:
    """A statement run once per batch that answers each of its rows: ``$1`` is the rows'
    ordinals, ``$2..$n`` the columns as arrays; it returns records ``(ordinal, answer)``, and
    a write's result is the answer for its row (None if it got none)."""

    name: str
    sql: str


@dataclass
class Write(Generic[T]):
    """One caller's unit of work; see the module docstring."""

    apply: Callable[[Connection], Awaitable[T]] | None = None
    copies: Mapping[CopyTarget, Sequence[tuple[Any, ...]]] = field(default_factory=dict)
    merges: Mapping[MergedUpdate, Sequence[tuple[Any, ...]]] = field(default_factory=dict)
    query: tuple[MergedQuery, tuple[Any, ...]] | None = None
    """Without ``apply``, the write's result is this row's answer."""
    label: str = "write"
    size: int = 0
    """Bytes it holds, roughly (a logged frame's size): what the queue's byte bound counts."""


class _Pending:
    """A submitted write and the caller waiting for its outcome."""

    __slots__ = ("deadline", "done", "error", "gave_up", "on_done", "result", "taken", "write")

    def __init__(
        self,
        write: Write[Any],
        deadline: float,
        on_done: Callable[[BaseException | None], object] | None = None,
    ) -> None:
        self.write = write
        self.deadline = deadline  # trio's clock
        self.on_done = on_done  # submit_soon's caller, told instead of waiting
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        # Both under the writer's lock: a write is either taken into a batch or given up.
        self.taken = False
        self.gave_up = False

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.result = result
            self.error = error
            self.done.set()
            if self.on_done is not None:
                self.on_done(error)


class _Outage:
    """An outage as the log tells it (see the module docstring); trio's thread only."""

    def __init__(self, posted: int, dropped: int, caught: int, since: float) -> None:
        self.started = since
        self.last_refusal = time.monotonic()
        self.refused = 0
        self.posted_before = posted  # the writer's count of posted writes when it began
        self.dropped_before = dropped
        self.caught = caught  # posted writes in the batch whose failure began it

    def summary(self, posted: int, dropped: int) -> tuple[float, int, int, int]:
        """(seconds, writes refused, background writes kept, dropped) at its end."""
        lost = dropped - self.dropped_before
        kept = posted - self.posted_before + self.caught - lost
        return time.monotonic() - self.started, self.refused, max(kept, 0), lost


# What the asyncio side reports per write: (True, result) or (False, exception).
_Outcome = tuple[bool, Any]
# A batch that failed as a whole: the error, its submitted writes and its posted ones.
_Failure = tuple[Exception, list[_Pending], list[Write[Any]]]


class GroupCommitWriter:
    """Batches writes into shared commits. Start :meth:`run` in a nursery, then
    :meth:`submit` (await the commit) or :meth:`post` (fire and forget).

    A batch's deadline is ``database.deadline``, and so is a submitted write's unless
    ``deadline`` says otherwise (tests make it shorter, to see writes given up while a
    batch hangs). ``drain_seconds`` bounds how long one drain writes batch after batch
    before trio gets a turn; the writer then comes back for what is left by itself.

    Metrics (read them, do not write them): ``batch_sizes`` and ``commit_seconds``
    (histograms), ``commits``, ``failed_batches`` (outages), ``failed_writes`` (bad writes),
    ``refused_writes`` (submitted writes answered :class:`StoreUnavailable`: failed batches
    and deadlines), ``outages`` (episodes begun), ``dropped_posted`` (fire-and-forget writes
    dropped because the queue was full) and ``dropped_posted_bytes`` (their sizes); the
    gauge ``queued_posted_bytes``.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = MAX_BATCH,
        max_posted: int = MAX_POSTED,
        max_posted_bytes: int = MAX_POSTED_BYTES,
        drain_seconds: float = DRAIN_SECONDS,
        deadline: float | None = None,
    ) -> None:
        self._database = database
        self._deadline = database.deadline if deadline is None else deadline
        self._drain_seconds = drain_seconds
        self._max_batch = max_batch
        self._max_posted = max_posted
        self._max_posted_bytes = max_posted_bytes
        # The queued bytes of posted writes, from counters each written by one thread only:
        # trio's appends (and re-queues) and drops, the writer thread's takes.
        self._posted_in_bytes = 0
        self._posted_out_bytes = 0
        self._submitted: deque[_Pending] = deque()
        # submitted writes whose callers wait, in submission order (a dict as ordered set)
        self._waiting: dict[_Pending, None] = {}
        self._posted: deque[Write[Any]] = deque()
        self._take_lock = threading.Lock()  # taking a submitted write vs its caller giving up
        self._wakeup = trio.Event()
        self._running = False
        self._token: trio.lowlevel.TrioToken | None = None
        # the batch being written, for whoever must fail it if that goes wrong
        self._in_flight: list[_Pending] = []
        self._in_flight_posted: list[Write[Any]] = []
        self._outage: _Outage | None = None
        self._overflow: tuple[float, int] | None = None  # (since, dropped_posted then)
        self._posted_count = 0
        self.batch_sizes = Histogram(SIZE_BUCKETS)
        self.commit_seconds = Histogram(LATENCY_BUCKETS)
        self.commits = 0
        self.failed_batches = 0
        self.failed_writes = 0
        self.refused_writes = 0
        self.outages = 0
        self.dropped_posted = 0
        self.dropped_posted_bytes = 0

    @property
    def running(self) -> bool:
        return self._running

    @property
    def queued_posted_bytes(self) -> int:
        """Sizes of the fire-and-forget writes waiting (or being written)."""
        return self._posted_in_bytes - self._posted_out_bytes - self.dropped_posted_bytes

    def lag(self) -> float:
        """Seconds the oldest caller of :meth:`submit` still waiting has waited (0 when none
        waits): how far behind the writer is."""
        for oldest in self._waiting:  # in submission order
            return max(0.0, trio.current_time() - (oldest.deadline - self._deadline))
        return 0.0

    async def submit(self, write: Write[T]) -> T:
        """Queue ``write`` and return its result once committed; returns or raises within
        the database's deadline.

        Raises :class:`StoreUnavailable` (database away or not answering in time, or the
        writer stopped) or :class:`WriteFailed` (this write was rejected; others were not
        affected).
        """
        if not self._running:
            raise StoreUnavailable("the store's writer is not running")
        pending = _Pending(write, trio.current_time() + self._deadline)
        self._waiting[pending] = None
        self._submitted.append(pending)
        self._wakeup.set()
        try:
            await pending.done.wait()  # within the deadline: see _give_up_late_writes
        finally:
            self._waiting.pop(pending, None)
        if pending.error is not None:
            raise pending.error
        result: T = pending.result
        return result

    def submit_soon(
        self, write: Write[Any], on_done: Callable[[BaseException | None], object]
    ) -> None:
        """Queue ``write`` as :meth:`submit` does, without waiting: ``on_done(None)``, or
        ``on_done(error)`` with the error :meth:`submit` would raise, is called in trio's
        thread once its batch committed or failed (it must not raise). It has no deadline of
        its own: queued, it is written in order with the submitted writes around it.

        Raises :class:`StoreUnavailable` at once when the writer is not running.
        """
        if not self._running:
            raise StoreUnavailable("the store's writer is not running")
        self._submitted.append(_Pending(write, math.inf, on_done))
        self._wakeup.set()

    async def _give_up_late_writes(self) -> None:
        """Answer StoreUnavailable to each caller of :meth:`submit` whose deadline has come.

        One task for all, not a cancel scope per submit: a scope costs 6-8 µs of trio's
        thread per write (measured), a tenth of what a MeterValues costs in all. The
        waiting writes are in submission order, so the oldest has the nearest deadline.
        """
        while True:
            if not self._waiting:
                # one submitted meanwhile still has 3/4 of its deadline ahead when seen
                await trio.sleep(self._deadline / 4)
                continue
            oldest = next(iter(self._waiting))
            if oldest.deadline > trio.current_time():
                await trio.sleep_until(oldest.deadline)
                continue
            del self._waiting[oldest]
            if not oldest.done.is_set():  # (answered, its caller not yet resumed)
                self._give_up(oldest)

    def _give_up(self, pending: _Pending) -> None:
        """The caller's deadline passed: a write not in a batch yet is never written."""
        with self._take_lock:
            pending.gave_up = True
            taken = pending.taken
        deadline = self._deadline
        self._refused(1, f"no commit within {deadline:g} s", waited=deadline)
        label = pending.write.label
        if taken:
            error = StoreUnavailable(
                f"{label}: not committed within {deadline:g} s; it may or may not be saved"
            )
        else:
            error = StoreUnavailable(
                f"{label}: not written, the database took nothing within {deadline:g} s"
            )
        pending.finish(error=error)

    def post(self, write: Write[Any]) -> None:
        """Queue ``write`` without waiting: it goes into the next batch. Never blocks."""
        self._posted.append(write)
        self._posted_count += 1
        self._posted_in_bytes += write.size
        self._wakeup.set()
        self._drop_oldest()

    def _over_bounds(self) -> bool:
        return (
            len(self._posted) > self._max_posted
            or self.queued_posted_bytes > self._max_posted_bytes
        )

    def _drop_oldest(self) -> None:
        """Drop the oldest posted writes while the queue is over a bound (trio's thread)."""
        if not self._over_bounds():
            return
        dropped_before = self.dropped_posted
        while self._over_bounds():
            try:  # the writer's thread may have emptied the queue meanwhile
                oldest = self._posted.popleft()
            except IndexError:
                break
            self.dropped_posted += 1
            self.dropped_posted_bytes += oldest.size
        if self._outage is None and self._overflow is None:
            self._overflow = (time.monotonic(), dropped_before)
            log.warning(
                "write queue full (%d background writes): dropping the oldest until the"
                " database catches up",
                len(self._posted),
            )

    async def flush(self) -> None:
        """Return once everything posted before the call is committed (tests, shutdown)."""
        await self.submit(Write(label="flush"))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer loop; runs until cancelled."""
        self._running = True
        self._token = trio.lowlevel.current_trio_token()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._give_up_late_writes)
                task_status.started()
                await self._write_batches()
        finally:
            self._running = False
            # The interrupted batch may or may not have committed: its callers are told it
            # failed (their chargers retry). What was only queued gets one last chance.
            stopped = StoreUnavailable("the store's writer stopped")
            for pending in self._in_flight:
                pending.finish(error=stopped)
            with trio.CancelScope(shield=True), trio.move_on_after(FINAL_FLUSH_SECONDS):
                await self._final_flush()
            for pending in [*self._in_flight, *self._submitted]:
                pending.finish(error=stopped)
            self._submitted.clear()
            unsaved = len(self._posted) + len(self._in_flight_posted)
            if unsaved:
                log.warning("writer stopped with %d queued writes unsaved", unsaved)

    async def _write_batches(self) -> None:
        backoff = MIN_BACKOFF
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            failure = await self._drain()
            if failure is None:
                backoff = MIN_BACKOFF
                if self._submitted or self._posted:
                    # The drain stopped at its time budget with work left: nothing else
                    # would wake the writer for it until the next write arrives.
                    self._wakeup.set()
                else:
                    self._caught_up()
                continue
            self._batch_failed(*failure)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            self._wakeup.set()  # what is still queued gets the next attempt

    async def _drain(self) -> _Failure | None:
        """Commit batches on the database's side until the queues are empty (or a while has
        passed: then cancellation gets its chance); the failure that stopped it, if any.

        A drain is not abandoned halfway: cancelling the writer lets it finish (bounded: each
        batch's connection is terminated at its deadline), so the outcome of its last batch
        is known.
        """
        failure: _Failure | None
        deadline = self._database.deadline
        with trio.CancelScope(shield=True) as scope:
            # A backstop only: the batches' own deadlines end a drain well before this.
            scope.relative_deadline = self._drain_seconds + 2 * deadline
            try:
                failure = await self._database.cross(self._drain_aio)
            except Exception as exc:  # the crossing itself failed
                failure = (exc, self._in_flight, self._in_flight_posted)
        if scope.cancelled_caught:
            late = StoreUnavailable(f"a batch took over {deadline:g} s")
            failure = (late, self._in_flight, self._in_flight_posted)
        self._in_flight, self._in_flight_posted = [], []
        return failure

    async def _final_flush(self) -> None:
        outcome = await self._database.cross(self._flush_aio)
        if isinstance(outcome, Exception):
            # run() fails the batch's callers and counts its posted writes as unsaved
            log.warning("writer: final flush failed: %s", outcome)
            return
        self._deliver(self._in_flight, self._in_flight_posted, outcome, time.monotonic())
        self._in_flight, self._in_flight_posted = [], []

    def _batch_failed(
        self, exc: Exception, in_flight: list[_Pending], posted: list[Write[Any]]
    ) -> None:
        self.failed_batches += 1
        outage = isinstance(exc, StoreUnavailable) or is_outage(exc)
        if not outage:  # not a database complaint about one write: a bug, keep the traceback
            log.error("batch of %d writes failed", len(in_flight) + len(posted), exc_info=exc)
        refused = 0
        for pending in in_flight:
            refused += not pending.gave_up  # those that gave up were counted then
            error = StoreUnavailable(f"database unavailable, nothing saved: {exc}")
            error.__cause__ = exc
            pending.finish(error=error)
        if outage:
            if self._outage is None:
                self._begin_outage(_reason(exc), caught=len(posted))
            self._refused(refused, _reason(exc))
        else:
            self.refused_writes += refused
        # Keep fire-and-forget writes for the next attempt, oldest first, within the bounds.
        self._posted.extendleft(reversed(posted))
        self._posted_in_bytes += sum(write.size for write in posted)
        self._drop_oldest()

    def _begin_outage(self, reason: str, *, caught: int = 0, waited: float = 0.0) -> None:
        since = time.monotonic() - waited  # a write given up had waited its deadline
        self._outage = _Outage(self._posted_count, self.dropped_posted, caught, since)
        self.outages += 1
        log.warning("database unavailable (%s): refusing writes until it is back", reason)

    def _refused(self, count: int, reason: str, *, waited: float = 0.0) -> None:
        """``count`` submitted writes were answered StoreUnavailable (trio's thread)."""
        self.refused_writes += count
        if self._outage is None:
            self._begin_outage(reason, waited=waited)
        assert self._outage is not None
        self._outage.refused += count
        self._outage.last_refusal = time.monotonic()

    def _committed(self, started: float) -> None:
        """A batch begun at ``started`` (monotonic) committed: the end of an outage if it
        began after the last refusal (an older one proves nothing about now)."""
        outage = self._outage
        if outage is None or started <= outage.last_refusal:
            return
        self._outage = None
        seconds, refused, kept, dropped = outage.summary(self._posted_count, self.dropped_posted)
        log.warning(
            "database available again after %.1f s: %d writes refused, %d background writes"
            " kept, %d dropped",
            seconds,
            refused,
            kept,
            dropped,
        )

    def _caught_up(self) -> None:
        """The queues are empty: the end of a full-queue episode, if one was on."""
        if self._overflow is None:
            return
        since, dropped_before = self._overflow
        self._overflow = None
        log.warning(
            "write queue caught up after %.1f s: %d background writes dropped",
            time.monotonic() - since,
            self.dropped_posted - dropped_before,
        )

    def _deliver(
        self,
        in_flight: list[_Pending],
        posted: list[Write[Any]],
        outcomes: list[_Outcome],
        started: float,
    ) -> None:
        self._committed(started)
        for pending, (ok, value) in zip(in_flight, outcomes, strict=False):
            if ok:
                pending.finish(result=value)
            else:
                self.failed_writes += 1
                error = WriteFailed(f"{pending.write.label} rejected by the database: {value}")
                error.__cause__ = value
                pending.finish(error=error)
        for write, (ok, value) in zip(posted, outcomes[len(in_flight) :], strict=True):
            if not ok:
                self.failed_writes += 1
                log.error("dropped %s rejected by the database: %s", write.label, value)

    # ---- asyncio side: batch after batch, results handed to trio ------------------------

    def _take_submitted(self, limit: int) -> list[_Pending]:
        """Up to ``limit`` submitted writes for a batch, skipping those given up."""
        taken: list[_Pending] = []
        with self._take_lock:
            while self._submitted and len(taken) < limit:
                pending = self._submitted.popleft()
                if not pending.gave_up:
                    pending.taken = True
                    taken.append(pending)
        return taken

    def _take_posted(self, limit: int) -> list[Write[Any]]:
        taken: list[Write[Any]] = []
        size = 0
        while self._posted and len(taken) < limit:
            try:  # trio's thread may drop the oldest meanwhile (queue full)
                write = self._posted.popleft()
            except IndexError:
                break
            taken.append(write)
            size += write.size
        self._posted_out_bytes += size
        return taken

    async def _drain_aio(self) -> _Failure | None:
        """Batch after batch without going back to trio in between: the callers of a batch
        are woken through the trio token while the next batch is already being written (a
        return to trio costs a scheduling round or two, under load several ms per batch).
        The queues are deques: trio's appends and the pops here are atomic under the GIL."""
        token = self._token
        assert token is not None  # set by run()
        until = time.monotonic() + self._drain_seconds
        while self._submitted or self._posted:
            started = time.monotonic()
            in_flight = self._take_submitted(self._max_batch)
            posted = self._take_posted(self._max_batch - len(in_flight))
            if not in_flight and not posted:
                continue  # only writes given up were left
            self._in_flight, self._in_flight_posted = in_flight, posted
            clock = time.perf_counter()
            try:
                outcomes = await self._commit_aio([p.write for p in in_flight] + posted)
            except Exception as exc:
                return exc, in_flight, posted
            self.commits += 1
            self.commit_seconds.observe(time.perf_counter() - clock)
            self.batch_sizes.observe(len(in_flight) + len(posted))
            self._in_flight, self._in_flight_posted = [], []
            with contextlib.suppress(trio.RunFinishedError):  # trio is gone: nobody waits
                token.run_sync_soon(self._deliver, in_flight, posted, outcomes, started)
            if time.monotonic() >= until:  # trio's turn; run() comes back for the rest
                break
        return None

    async def _flush_aio(self) -> list[_Outcome] | Exception:
        """Everything still queued in one last batch (at stop); the batch is left in
        ``_in_flight`` for trio to answer."""
        in_flight = self._take_submitted(len(self._submitted))
        posted = self._take_posted(len(self._posted))
        self._in_flight, self._in_flight_posted = in_flight, posted
        if not in_flight and not posted:
            return []
        try:
            return await self._commit_aio([p.write for p in in_flight] + posted)
        except Exception as exc:
            return exc

    async def _commit_aio(self, writes: list[Write[Any]]) -> list[_Outcome]:
        async with self._database.acquire() as connection:
            try:
                if _one_statement(writes):  # atomic alone: BEGIN and COMMIT are round trips
                    results = await self._apply_together(connection, writes)
                else:
                    async with connection.transaction():
                        results = await self._apply_together(connection, writes)
                return [(True, result) for result in results]
            except Exception as exc:
                if is_outage(exc, connection):
                    raise
                if len(writes) == 1:
                    return [(False, exc)]
                log.info("batch of %d writes had a bad one (%s); isolating", len(writes), exc)
            async with connection.transaction():
                return await self._apply_isolated(connection, writes)

    @staticmethod
    async def _apply_together(connection: Connection, writes: list[Write[Any]]) -> list[Any]:
        results = await _results(connection, writes)
        copies: dict[CopyTarget, list[tuple[Any, ...]]] = {}
        merges: dict[MergedUpdate, list[tuple[Any, ...]]] = {}
        for w in writes:
            for target, rows in w.copies.items():
                copies.setdefault(target, []).extend(rows)
            for merge, rows in w.merges.items():
                merges.setdefault(merge, []).extend(rows)
        await _run_copies_and_merges(connection, copies, merges)
        return results

    @staticmethod
    async def _apply_isolated(connection: Connection, writes: list[Write[Any]]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        for w in writes:
            try:
                async with connection.transaction():  # a savepoint inside the batch
                    (result,) = await _results(connection, [w])
                    await _run_copies_and_merges(connection, w.copies, w.merges)
            except Exception as exc:
                if is_outage(exc, connection):
                    raise
                outcomes.append((False, exc))
            else:
                outcomes.append((True, result))
        return outcomes


def _one_statement(writes: Sequence[Write[Any]]) -> bool:
    """Whether the batch is a single statement (one merged query, copy or update, no
    ``apply``): PostgreSQL commits a statement outside a transaction block atomically."""
    statements: set[object] = set()
    for write in writes:
        if write.apply is not None:
            return False
        if write.query is not None:
            statements.add(write.query[0])
        statements.update(target for target, rows in write.copies.items() if rows)
        statements.update(merge for merge, rows in write.merges.items() if rows)
        if len(statements) > 1:
            return False
    return len(statements) == 1


async def _results(connection: Connection, writes: Sequence[Write[Any]]) -> list[Any]:
    """Each write's result: its ``apply``'s, else its query row's answer. One statement per
    merged query for the whole batch."""
    by_query: dict[MergedQuery, list[tuple[int, tuple[Any, ...]]]] = {}
    for index, write in enumerate(writes):
        if write.query is not None and write.apply is None:
            query, row = write.query
            by_query.setdefault(query, []).append((index, row))
    answers: dict[int, Any] = {}
    for query, rows in by_query.items():
        columns = zip(*(row for _, row in rows), strict=True)
        records = await connection.fetch(
            query.sql, [index for index, _ in rows], *(list(column) for column in columns)
        )
        answers.update((record[0], record[1]) for record in records)
    return [await w.apply(connection) if w.apply else answers.get(i) for i, w in enumerate(writes)]


async def _run_copies_and_merges(
    connection: Connection,
    copies: Mapping[CopyTarget, Sequence[tuple[Any, ...]]],
    merges: Mapping[MergedUpdate, Sequence[tuple[Any, ...]]],
) -> None:
    for target, rows in copies.items():
        if rows:
            await connection.copy_records_to_table(
                target.table, records=rows, columns=list(target.columns)
            )
    for merge, rows in merges.items():
        if rows:
            await connection.execute(
                merge.sql, *(list(column) for column in zip(*rows, strict=True))
            )


def _reason(exc: BaseException) -> str:
    """What an outage's log line says caused it."""
    text = str(exc)
    if isinstance(exc, StoreUnavailable):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
