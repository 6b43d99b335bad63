"""Keeping every charger's Local Authorization List in sync with the id tag table: the Local
Auth List Management profile's background task (:func:`keep_local_lists_in_sync`).

Each instance looks after the chargers whose sessions it holds (``ctx.holds``), so exactly
one instance updates a charger. A charger is looked at ("marked") when

- it comes online (its session began, or it booted and was Accepted): Voltaro first asks it
  for its list version (GetLocalListVersion) and its list size limits (GetConfiguration of
  ``SendLocalListMaxLength`` and ``LocalAuthListMaxLength``, when the known configuration
  lacks them), then sends what it lacks;
- an id tag changes anywhere (the id tag table's NOTIFY, which every instance hears), or an
  expiry date passes (a tag turns Expired on the list);
- an operator's GetLocalListVersion or SendLocalList was answered (the task acts on the
  answers to its own commands at once: after a VersionMismatch it asks for the version,
  then sends a Full list);
- a failed update's back-off ran out, or the retry of a charger the database failed.

Updates give way to the chargers' own messages. While the instance is behind on them
(``ctx.behind``: in a storm of connections every charger that comes online is marked, and
their lists can wait; their boots and statuses cannot) they wait. While it is merely busy
(``ctx.busy``: most of a core or of the machine used, its event loop late, its writes
waiting; see :mod:`voltaro.central.overload`) each command of an update waits too, but
:data:`BUSY_WAIT_LIMIT` at most, so that lists still reach the chargers of an instance that
is busy all day (at least :data:`CONCURRENT_UPDATES` commands per limit). A new fleet's
first sync is ten SendLocalList per charger (a list of 1,000 tags in messages of 100), each
answer recorded: about 3.5 ms of CPU each, server and database together, and without giving
way it took a third of the machine while 10,000 stress-profile chargers were served
(benchmarks/README.md, sessions 15 and 16).

Marks are debounced: the first mark starts a wait of ``VOLTARO_LOCAL_LIST_DEBOUNCE`` seconds
and every charger marked by then is looked at once, so many tag changes made together give
each charger one Differential update, not one per change. Looking at a charger whose list is
already right sends nothing.

Error handling
--------------
The charger's answers are recorded by the commands' effects (see
:mod:`voltaro.central.profiles.local_list`): ``NotSupported`` (or a GetLocalListVersion of
-1, or a CALLERROR NotImplemented / NotSupported) stops all updates to that charger until an
operator's command finds it supports lists again; ``Failed`` is retried after a back-off
that doubles from the debounce up to :data:`MAX_RETRY_BACKOFF`, with a Full list. No answer in
time, or an invalid one, counts as Failed. A charger that went away is left until it comes
back. The database failing while one charger is looked at (away, or late under a storm of
connections) leaves that charger to be looked at again after the debounce (at least a
second), as it was marked; the round goes on with the others. The database failing a
round's own reads fails the round (logged); the task is restarted by the profile tasks'
supervisor and looks at every charger it holds again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import trio

from voltaro.central.commands import (
    CallErrorAnswer,
    CommandFailed,
    Disconnected,
    InvalidAnswer,
    InvalidCommand,
    NoAnswer,
    NotConnected,
    UnknownChargePoint,
    UnknownCommand,
)
from voltaro.central.domain_events import Booted, CommandAnswered, Connected, DomainEvent
from voltaro.central.local_list_entries import (
    LocalList,
    differential_update,
    full_update,
    next_change,
    wanted_list,
)
from voltaro.central.profile import Payload, ProfileContext
from voltaro.central.timestamps import utc_now
from voltaro.store import id_tags
from voltaro.store.errors import StoreError
from voltaro.store.list_digests import digest
from voltaro.store.local_lists import (
    MAX_LENGTH_KEY,
    SEND_MAX_KEY,
    LocalListRecord,
    LocalListRepository,
)
from voltaro.store.records import IdTagRecord

log = logging.getLogger(__name__)

LIST_ACTIONS = frozenset({"SendLocalList", "GetLocalListVersion"})
DEFAULT_SEND_MAX = 100  # entries per SendLocalList when the charger does not say (~12 KB)
MAX_RETRY_BACKOFF = 3600.0  # seconds: the longest wait before a failed update is retried
# Chargers updated at once (each waits for its answers). Fewer than the database pool's
# connections (10), so that the chargers' own reads always find one.
CONCURRENT_UPDATES = 8
LOAD_RECHECK = 0.5  # seconds between asking whether the instance is still behind or busy
BUSY_WAIT_LIMIT = 10.0  # seconds an update waits at most while the instance is busy
REFUSED = frozenset({"NotImplemented", "NotSupported"})  # CALLERRORs meaning "no lists here"


def retry_backoff(failures: int, first: float) -> float:
    """Seconds before the next try after ``failures`` failures in a row."""
    doublings = min(max(failures - 1, 0), 32)
    return min(max(first, 1.0) * float(2**doublings), MAX_RETRY_BACKOFF)


def failure_changes(why: str, first_backoff: float) -> Callable[[LocalListRecord], Payload]:
    """The row's changes after a failed update (``why``: the answer, or what went wrong):
    one failure more, a retry after the back-off, with a Full list."""

    def changes(record: LocalListRecord) -> Payload:
        failures = record.failures + 1
        wait = retry_backoff(failures, first_backoff)
        return {
            "state": "failed",
            "failures": failures,
            "retry_at": utc_now() + timedelta(seconds=wait),
            "needs_full": True,
            "last_status": why,
        }

    return changes


@dataclass(frozen=True, slots=True)
class Seen:
    """What a round read about one charger at its start: its row (None: it had none) and its
    list size limits. Looking at the charger then need not read them again: in a storm of
    new chargers those reads, several per charger, took the pool."""

    row: LocalListRecord | None
    limits: tuple[int | None, int | None]


class WantedLists:
    """The wanted list for each length limit, computed once per round."""

    def __init__(self, records: list[IdTagRecord], now: datetime) -> None:
        self._records = records
        self._now = now
        self._lists: dict[int | None, tuple[LocalList, str]] = {}

    def _get(self, max_length: int | None) -> tuple[LocalList, str]:
        found = self._lists.get(max_length)
        if found is None:
            entries = wanted_list(self._records, self._now, max_length)
            found = self._lists[max_length] = (entries, digest(entries))
        return found

    def entries(self, max_length: int | None) -> LocalList:
        return self._get(max_length)[0]

    def digest(self, max_length: int | None) -> str:
        return self._get(max_length)[1]


class LocalListSync:
    """The task's state on one instance: which chargers are marked, when to look again."""

    def __init__(self, ctx: ProfileContext) -> None:
        self._ctx = ctx
        self._lists = LocalListRepository(ctx.domain.store.database)
        self._debounce = ctx.domain.settings.local_list_debounce
        self._marked: dict[str, bool] = {}  # charge point -> ask its version first
        self._all_marked = False  # every charger held here (expanded when a round starts)
        self._wake = trio.Event()
        self._retries: dict[str, float] = {}  # charge point -> trio time of its retry
        self._recheck: set[str] = set()  # retries that ask the version first
        self._next_change: float = math.inf  # trio time the wanted list changes by itself
        self._running = False  # the listener acts while run() runs
        self._limits_asked: set[str] = set()  # asked for their limits since they came online
        self._own: dict[str, int] = {}  # answer events to come of the task's own commands
        self.rounds = 0

    # ---- marking -------------------------------------------------------------------------

    def held(self) -> list[str]:
        """The charge points whose sessions this instance holds."""
        return [cp for cp in list(self._ctx.domain.chargers) if self._ctx.holds(cp)]

    def mark(self, charge_points: Iterable[str], *, check: bool = False) -> None:
        for charge_point_id in charge_points:
            self._marked[charge_point_id] = self._marked.get(charge_point_id, False) or check
        if self._marked:
            self._wake.set()

    def mark_all(self) -> None:
        """Mark every charger held here (cheaply: a bulk import of tags calls this once per
        tag, and the chargers are listed once, when the round starts)."""
        self._all_marked = True
        self._wake.set()

    def tags_changed(self, payload: str = "") -> None:
        """An id tag changed somewhere (the NOTIFY's payload does not matter: every list is
        computed from the whole table)."""
        self.mark_all()

    def came_online(self, charge_point_id: str) -> None:
        self._limits_asked.discard(charge_point_id)
        self._retries.pop(charge_point_id, None)
        self._recheck.discard(charge_point_id)
        self.mark([charge_point_id], check=True)

    def on_event(self, event: DomainEvent) -> None:
        """The event bus's listener (called by every publish, so it only looks at the event;
        it must never raise into the publisher, a charger's handler)."""
        if not self._running or event.origin is not None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("local lists: marking on %r failed", event)

    def _on_event(self, event: DomainEvent) -> None:
        charge_point_id = event.charge_point_id
        online = isinstance(event, Connected) and self._accepted(charge_point_id)
        if online or (isinstance(event, Booted) and event.status == "Accepted"):
            self.came_online(charge_point_id)
            return
        answered = isinstance(event, CommandAnswered) and event.action in LIST_ACTIONS
        if answered and not self._own_answer(charge_point_id):  # an operator's: look again
            self.mark([charge_point_id])

    def _accepted(self, charge_point_id: str) -> bool:
        state = self._ctx.domain.chargers.get(charge_point_id)
        return state is not None and state.registration_status == "Accepted"

    # ---- the rounds ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Look at the marked chargers, round after round, until cancelled."""
        cache = self._ctx.domain.store.id_tag_cache
        await cache.subscribe(id_tags.CHANNEL, self.tags_changed)
        reloads = cache.reloads
        # A listener rather than a subscription: no task switch per event (every MeterValues
        # publishes one), and never dropped. A bus has no removal: a failed run's listener
        # stays, inert.
        self._ctx.domain.events.add_listener(self.on_event)
        self._running = True
        self.mark(self.held(), check=True)  # a restarted task trusts nothing it knew
        task_status.started()
        try:
            while True:
                with trio.move_on_at(min(self._next_change, *self._retries.values(), math.inf)):
                    await self._wake.wait()
                self._wake = trio.Event()
                if cache.reloads != reloads:  # its LISTEN connection was lost: changes missed
                    reloads = cache.reloads
                    self.mark_all()
                self._due()
                if not self._marked and not self._all_marked:
                    continue
                await trio.sleep(self._debounce)
                if self._all_marked:
                    self._all_marked = False
                    self.mark(self.held())
                marked, self._marked = self._marked, {}
                self._wake = trio.Event()  # what was marked while it waited is in this round
                await self.round(marked)
        finally:
            self._running = False

    def _due(self) -> None:
        now = trio.current_time()
        if now >= self._next_change:
            self._next_change = math.inf
            self.mark_all()
        for charge_point_id, at in list(self._retries.items()):
            if now >= at:
                del self._retries[charge_point_id]
                check = charge_point_id in self._recheck
                self._recheck.discard(charge_point_id)
                self.mark([charge_point_id], check=check)

    async def round(self, marked: dict[str, bool]) -> None:
        """Bring every charger of ``marked`` up to date (a few at a time). What is needed to
        see that a charger's list is right is read for all of them at once, so a round over
        many chargers whose lists are right costs two queries (the tags come from the id tag
        cache while it is valid: reading a table of 40,000 tags was ~1% of a worker's time
        while a fleet of 20,000 came online)."""
        self.rounds += 1
        store = self._ctx.domain.store
        records = store.id_tag_cache.records()
        if records is None:
            records = await store.id_tags.list_all()
        now = utc_now()
        upcoming = next_change(records, now)
        if upcoming is not None:
            wait = (upcoming - now).total_seconds()
            self._next_change = min(self._next_change, trio.current_time() + max(wait, 0.0))
        rows = await self._lists.get_many(list(marked))
        limits = await self._lists.limits_many(list(marked))
        wanted = WantedLists(records, now)
        limiter = trio.CapacityLimiter(CONCURRENT_UPDATES)

        async def one(charge_point_id: str, check: bool) -> None:
            async with limiter:
                while self._ctx.behind():  # a storm: not even the reads (busy: see _send)
                    await trio.sleep(LOAD_RECHECK)
                seen = Seen(rows.get(charge_point_id), limits.get(charge_point_id, (None, None)))
                if not check and self._in_sync(charge_point_id, seen, wanted, now):
                    return
                await self.update(charge_point_id, check, wanted, now, seen)

        async with trio.open_nursery() as nursery:
            for charge_point_id, check in marked.items():
                nursery.start_soon(one, charge_point_id, check)

    async def _give_way(self) -> None:
        """Wait while the instance is behind, or busy (for :data:`BUSY_WAIT_LIMIT` at most):
        the chargers' own messages come first. Before every command the task sends: an
        update of ten messages that went out at once when the instance was no longer busy
        made it busy again (three workers on two cores, benchmarks/README.md, session 16)."""
        waited = 0.0
        while self._ctx.behind() or (self._ctx.busy() and waited < BUSY_WAIT_LIMIT):
            await trio.sleep(LOAD_RECHECK)
            waited += LOAD_RECHECK

    def _in_sync(
        self, charge_point_id: str, seen: Seen, wanted: WantedLists, now: datetime
    ) -> bool:
        """Whether nothing need be sent to the charger (without reading its list): its
        list is the wanted one, or it supports none, or its retry is not due yet."""
        row = seen.row
        if row is None:
            return False
        if row.state == "not_supported":
            return True
        if row.retry_at is not None and row.retry_at > now:
            self._retry_at(charge_point_id, row.retry_at, now)
            return True
        send_max, max_length = seen.limits
        if (send_max is None or max_length is None) and charge_point_id not in self._limits_asked:
            return False
        return (
            row.state == "synced"
            and not row.needs_full
            and not row.check_version
            and row.max_length == max_length
            and row.digest == wanted.digest(max_length)
        )

    # ---- one charger ---------------------------------------------------------------------

    async def update(
        self,
        charge_point_id: str,
        check: bool,
        wanted: WantedLists,
        now: datetime,
        seen: Seen | None = None,
    ) -> None:
        """Bring one charger's list up to date: ask its version when asked to (or when it is
        not known), then send a Full list or the Differential it lacks, or nothing. A
        VersionMismatch is resynced at once: its version asked, then a Full list. ``seen``:
        what the round read of it, if it did."""
        if not self._ctx.holds(charge_point_id) or not self._accepted(charge_point_id):
            return
        try:
            await self._update_recording(charge_point_id, check, wanted, now, seen)
        except StoreError as error:
            # the outage is the store's to log; a storm would make this a line per charger
            log.debug("charge point %s: local list looked at later: %s", charge_point_id, error)
            self._retries[charge_point_id] = trio.current_time() + retry_backoff(1, self._debounce)
            if check:
                self._recheck.add(charge_point_id)
            self._wake.set()

    async def _update_recording(
        self,
        charge_point_id: str,
        check: bool,
        wanted: WantedLists,
        now: datetime,
        seen: Seen | None,
    ) -> None:
        """:meth:`update`'s passes, the charger's failures recorded (StoreError: the
        database failed meanwhile)."""
        try:
            if await self._update(charge_point_id, check, wanted, now, seen) == "VersionMismatch":
                await self._update(charge_point_id, True, wanted, now)
        except (Disconnected, NotConnected, UnknownChargePoint):
            return  # looked at again when it comes back
        except CallErrorAnswer as error:
            if error.code in REFUSED:
                await self._lists.update(
                    charge_point_id, state="not_supported", last_status=f"CALLERROR {error.code}"
                )
                return
            await self._failed(charge_point_id, f"CALLERROR {error.code}")
        except (NoAnswer, InvalidAnswer) as failure:
            await self._failed(charge_point_id, failure.outcome)
        except CommandFailed as failure:
            log.warning("charge point %s: local list not updated: %s", charge_point_id, failure)

    async def _update(
        self,
        charge_point_id: str,
        check: bool,
        wanted_lists: WantedLists,
        now: datetime,
        seen: Seen | None = None,
    ) -> str | None:
        """One pass of :meth:`update`; the answer that ended it early, if one did."""
        if seen is not None and seen.row is None:
            # No row at the round's start: the defaults, which ask the version first (and
            # read the row then), whatever may have been written since.
            record = LocalListRecord(charge_point_id)
        else:
            record = await self._lists.get(charge_point_id)
        if record.state == "not_supported":
            return None
        if record.retry_at is not None and record.retry_at > now and not check:
            self._retry_at(charge_point_id, record.retry_at, now)
            return None
        if check or record.check_version or record.version is None:
            answer = await self._send(charge_point_id, "GetLocalListVersion", {})
            if answer["listVersion"] < 0:
                return None  # not supported: recorded by the command's effect
            record = await self._lists.get(charge_point_id)
        send_max, max_length = await self._limits(charge_point_id, seen)
        wanted = wanted_lists.entries(max_length)
        version = record.version or 0
        held = None if record.needs_full else await self._lists.held_entries(record.digest)
        if held is None:  # not known: the whole list
            base = max(version, record.reported_version or 0)
            update = full_update(wanted, base, send_max)
        else:
            update = differential_update(held, wanted, version, send_max)
        if record.max_length != max_length:
            await self._lists.update(charge_point_id, max_length=max_length)
        for message in update.messages:
            answer = await self._send(charge_point_id, "SendLocalList", message)
            status: str = answer["status"]
            if status == "Accepted":
                continue
            log.info(
                "charge point %s: SendLocalList %s version %d answered %s",
                charge_point_id,
                message["updateType"],
                message["listVersion"],
                status,
            )
            if status == "Failed":
                record = await self._lists.get(charge_point_id)
                if record.retry_at is not None:
                    self._retry_at(charge_point_id, record.retry_at, utc_now())
            return status
        return None

    async def _send(self, charge_point_id: str, action: str, payload: Payload) -> Payload:
        """``ctx.send``, noting that the answer event to come is the task's own (it marks
        nothing: the task has acted on the answer already)."""
        await self._give_way()
        if action in LIST_ACTIONS:
            self._own[charge_point_id] = self._own.get(charge_point_id, 0) + 1
        try:
            return await self._ctx.send(charge_point_id, action, payload)
        except (UnknownChargePoint, UnknownCommand, InvalidCommand):  # no answer event
            if action in LIST_ACTIONS:
                self._own_answer(charge_point_id)
            raise

    def _own_answer(self, charge_point_id: str) -> bool:
        """Whether the next answer event of the charger is the task's own (it is counted)."""
        count = self._own.get(charge_point_id, 0)
        if count <= 1:
            self._own.pop(charge_point_id, None)
        else:
            self._own[charge_point_id] = count - 1
        return count > 0

    async def _limits(self, charge_point_id: str, seen: Seen | None) -> tuple[int, int | None]:
        """``(entries per message, entries in all)``, asking the charger once per session
        when its known configuration lacks them (as the round saw it, if it did)."""
        if seen is not None:
            send_max, max_length = seen.limits
        else:
            send_max, max_length = await self._lists.limits(charge_point_id)
        if (send_max is None or max_length is None) and charge_point_id not in self._limits_asked:
            self._limits_asked.add(charge_point_id)
            payload = {"key": [SEND_MAX_KEY, MAX_LENGTH_KEY]}
            try:
                await self._send(charge_point_id, "GetConfiguration", payload)
            except CallErrorAnswer as error:  # about its configuration, not its list
                log.info("charge point %s: GetConfiguration refused: %s", charge_point_id, error)
            send_max, max_length = await self._lists.limits(charge_point_id)
        return send_max or DEFAULT_SEND_MAX, max_length

    async def _failed(self, charge_point_id: str, why: str) -> None:
        await self._lists.change(charge_point_id, failure_changes(why, self._debounce))
        record = await self._lists.get(charge_point_id)
        if record.retry_at is not None:
            self._retry_at(charge_point_id, record.retry_at, utc_now())

    def _retry_at(self, charge_point_id: str, at: datetime, now: datetime) -> None:
        wait = max((at - now).total_seconds(), 0.0)
        self._retries[charge_point_id] = trio.current_time() + wait
        self._wake.set()


async def keep_local_lists_in_sync(ctx: ProfileContext) -> None:
    """The profile's task: keep the lists of the chargers held here in sync (unless
    ``VOLTARO_LOCAL_LISTS`` is ``off``)."""
    if ctx.domain.settings.local_lists == "off":
        return
    await LocalListSync(ctx).run()
