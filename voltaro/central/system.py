"""The Central System: the application core, wired to the store.

Lifecycle: construct from Settings, then ``await nursery.start(system.run)`` (inside
``trio_asyncio.open_loop()``); or ``async with open_central_system(settings) as system``.
``run`` starts the store (embedded PostgreSQL when no URL is set, migrations, writer, id tag
cache and open-transaction index), records the chargers this instance left online in a
previous run as offline, and runs the housekeeping loop (last-seen flush, presence repair,
overdue heartbeats, deviation counts, message-log bounds and retention, the upkeep of the
charts' tables) until cancelled.

It serves the feature profiles it is given (:mod:`voltaro.central.profiles`): their handlers
through each session's endpoint, their commands through :attr:`CentralSystem.commands`, and
runs their background tasks (:mod:`voltaro.central.profile_tasks`) with a
:class:`~voltaro.central.profile.ProfileContext` from start to stop.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import trio

from voltaro.central import fleet_log
from voltaro.central.admission import (
    OUTAGE_RETRY_AFTER,
    Admission,
    AdmissionDecision,
    Admitter,
)
from voltaro.central.authorization import Authorizer
from voltaro.central.commands import CommandCatalog, Commands
from voltaro.central.datatransfer import DataTransferRegistry
from voltaro.central.domain import Charger, ChargerState, Domain
from voltaro.central.domain_events import BackOnline, WentOffline
from voltaro.central.event_relay import CHANNEL as EVENTS_CHANNEL
from voltaro.central.event_relay import EventRelay
from voltaro.central.events import EventBus
from voltaro.central.evictions import SESSIONS_CHANNEL, Evictions
from voltaro.central.membership import Membership
from voltaro.central.overload import LoadWatch
from voltaro.central.presence import Presence
from voltaro.central.profile import Handler, InboundHandler, Profile, ProfileContext
from voltaro.central.profile_tasks import run_profile_tasks
from voltaro.central.profiles import PROFILES
from voltaro.central.redaction import redacted
from voltaro.central.routing import CommandRouter
from voltaro.central.sessions import SessionParts, SessionRegistry
from voltaro.central.timestamps import utc_now
from voltaro.config import Settings, default_instance_id
from voltaro.episodes import Episode
from voltaro.ocppj.endpoint import RpcHooks
from voltaro.ocppj.errors import ErrorCode, OcppError
from voltaro.ocppj.validation import Deviation, SchemaRegistry
from voltaro.store import Store, StoreError, StoreUnavailable, open_store
from voltaro.store.command_queue import ANSWERS_CHANNEL, COMMANDS_CHANNEL
from voltaro.store.message_log import MessageLogLimits
from voltaro.store.store import collapse_single_exception

log = logging.getLogger(__name__)

HOUSEKEEPING_PERIOD = 5.0  # seconds: last-seen flush and overdue check; shorter if needed
PURGE_PERIOD = 3600.0  # seconds between message-log retention purges
# seconds between folds of the energy per day (the charts show the days still pending
# live, so this bounds the work, not what operators see) and fleet samples (each taken
# once per five minutes, by whichever instance comes first)
STATS_PERIOD = 60.0


class CentralSystem:
    """See the ``voltaro.central`` package docstring for the entry points."""

    def __init__(
        self,
        settings: Settings,
        *,
        data_transfer: DataTransferRegistry | None = None,
        profiles: Sequence[Profile] = PROFILES,
        schemas: SchemaRegistry | None = None,
        observer: RpcHooks | None = None,
        instance_id: str | None = None,
        node_id: str | None = None,
        others_live_events: bool = True,
    ) -> None:
        """``observer``: hooks every session's endpoint also reports to (the metrics);
        ``instance_id``: this instance's name (default: the setting, else host and port);
        ``node_id``: the node whose process it is, with ``--workers`` (default: the instance
        itself): the migration at start counts the node's earlier processes, killed before
        they retired, as its own rather than as older instances running (see
        :mod:`voltaro.store.migrate`);
        ``others_live_events``: whether other instances' live events are published on this
        one's bus too. Only a dashboard needs them: a worker of ``--workers`` serves none,
        and taking in every event of the installation was ~5% of its time (py-spy) at 20,000
        chargers on three workers."""
        self.settings = settings
        self.profiles = tuple(profiles)
        self.schemas = schemas or SchemaRegistry.load()
        self.catalog = CommandCatalog(self.profiles, self.schemas.dialect)
        self.instance_id = (
            instance_id or settings.instance_id or default_instance_id(settings.ocpp_port)
        )
        self._node_id = node_id or self.instance_id
        self.data_transfer = data_transfer or DataTransferRegistry()
        self.events = EventBus()  # what happened, for live views (published after commits)
        self._others_live_events = others_live_events
        self.events.add_listener(fleet_log.FleetLog())  # and for the operator's log
        self.deviations: Counter[str] = Counter()  # lenient-mode deviations per charge point
        self.deviation_kinds: Counter[str] = Counter()
        self._observer = observer or RpcHooks()
        self._unflushed_deviations: Counter[str] = Counter()
        self._inbound: dict[str, InboundHandler] = {}
        self._accepted_only: set[str] = set()
        for profile in self.profiles:
            for action, handler in profile.inbound.items():
                if action in self._inbound:
                    raise ValueError(f"{action} is handled by two profiles")
                self._inbound[action] = handler
            self._accepted_only |= profile.accepted_only
        self._domain: Domain | None = None
        self._admitter: Admitter | None = None
        self._sessions: SessionRegistry | None = None
        self._commands: Commands | None = None
        self._presence: Presence | None = None
        self._membership: Membership | None = None
        self._router: CommandRouter | None = None
        self._load = LoadWatch(lambda: 0.0 if self._domain is None else self.store.writer.lag())

    # ---- lifecycle -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; reports started once every entry point is usable."""
        settings = self.settings
        limits = MessageLogLimits(
            max_payload=settings.message_log_max_payload,
            charger_bytes=settings.message_log_charger_bytes,
            max_bytes=settings.message_log_max_bytes,
        )
        async with open_store(
            settings.database_url,
            settings.data_dir,
            deadline=settings.database_deadline,
            message_log_limits=limits,
            node_id=self._node_id,
        ) as store:
            try:
                await self._start(store)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._housekeeping)
                    nursery.start_soon(self._keep_lease)
                    nursery.start_soon(self._load.run)
                    await nursery.start(self._listen_to_other_instances)
                    await nursery.start(run_profile_tasks, self.profiles, self.profile_context())
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                self._domain = None
                await self._shutdown()

    async def _start(self, store: Store) -> None:
        settings = self.settings
        presence = Presence(store.charge_points, self.instance_id, on_back_online=self._back_online)
        left = await presence.forget_all("server restarted")
        if left:
            log.info("%d charge points left online by a previous run: offline", len(left))
        self._presence = presence
        self._domain = domain = Domain(
            settings=settings,
            store=store,
            events=self.events,
            authorizer=Authorizer(store.id_tag_cache, store.open_transactions),
            open_transactions=store.open_transactions,
            data_transfer=self.data_transfer,
        )
        self._admitter = Admitter(
            store.charge_points,
            store.charge_point_cache,
            settings.unknown_chargers,
            on_failure=self._login_failed,
        )
        self._sessions = SessionRegistry(
            SessionParts(
                schemas=self.schemas,
                handlers=self.handlers,
                presence=presence,
                events=self.events,
                log_frame=self.log_frame,
                count_deviation=self.count_deviation,
                call_timeout=settings.call_timeout,
                observer=self._observer,
            )
        )
        self._membership = Membership(
            store.instances, self.instance_id, settings.instance_lease, self.events
        )
        await self._membership.join()
        self._router = router = CommandRouter(
            store.command_queue,
            store.instances,
            self.instance_id,
            lambda *command: self.commands.send_here(*command),
        )
        self._commands = Commands(
            self.catalog,
            self.schemas,
            self._sessions,
            domain,
            call_timeout=settings.call_timeout,
            log_outcome=self._log_outcome,
            route=router.send_elsewhere,
        )

    def profile_context(self) -> ProfileContext:
        """What the profiles' tasks work with on this instance (once started)."""
        return ProfileContext(
            domain=self.domain,
            send=self.commands.send,
            holds=self._holds,
            instance_id=self.instance_id,
            behind=self.behind,
            busy=self._load.busy,
        )

    def _holds(self, charge_point_id: str) -> bool:
        return self._sessions is not None and charge_point_id in self._sessions

    async def _listen_to_other_instances(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """What other instances (and other writers) announce: commands for chargers held
        here and their answers, charge points removed, sessions moved elsewhere, and (when
        this instance has a dashboard) the live events of their chargers; ours go to them."""
        store, router = self.store, self._router
        assert router is not None
        evictions = Evictions(self.sessions, store.charge_points, self.instance_id)
        cache = store.id_tag_cache
        cache.on_charge_point_removed = evictions.removed
        store.charge_point_cache.on_registration = self.registration_changed
        await cache.subscribe(SESSIONS_CHANNEL, evictions.moved)
        await cache.subscribe(COMMANDS_CHANNEL, router.on_command)
        await cache.subscribe(ANSWERS_CHANNEL, router.on_answer)
        membership = self._membership
        assert membership is not None
        relay = EventRelay(
            self.events, store.database, self.instance_id, lambda: membership.alive - 1
        )
        if self._others_live_events:
            await cache.subscribe(EVENTS_CHANNEL, relay.received)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(evictions.run)
                await nursery.start(router.run)
                nursery.start_soon(relay.run)
                task_status.started()
        finally:
            cache.on_charge_point_removed = None
            store.charge_point_cache.on_registration = None

    async def _shutdown(self) -> None:
        """Best effort on the way out: nobody this instance held is left recorded online,
        and it leaves the installation (its lease is given up, not left to run out)."""
        if self._presence is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await self._presence.forget_all("server stopped")
                if self._membership is not None:
                    await self._membership.leave()
            except StoreError as exc:
                log.warning("could not record charge points offline at shutdown: %s", exc)

    def _back_online(self, charge_point_id: str, reason: str) -> None:
        self.events.publish(BackOnline(charge_point_id=charge_point_id, reason=reason))

    @property
    def overdue_after(self) -> float:
        """Seconds of silence after which a connected charger is recorded offline."""
        return 2 * self.settings.heartbeat_interval + self.settings.heartbeat_grace

    async def _housekeeping(self) -> None:
        presence, sessions = self.presence, self.sessions
        period = min(HOUSEKEEPING_PERIOD, self.overdue_after / 4)
        next_purge = next_stats = trio.current_time()
        postponed = Episode(quiet=0)  # logged when it starts and when a round works again
        while True:
            await trio.sleep(period)
            presence.flush()
            self._flush_deviations()
            try:
                await presence.restore(sessions.__contains__)
                for charge_point_id in await sessions.check_overdue(self.overdue_after):
                    self.events.publish(
                        WentOffline(charge_point_id=charge_point_id, reason="heartbeat overdue")
                    )
                await self.store.message_log.enforce_bounds()  # one crossing when within
                if trio.current_time() >= next_purge:
                    next_purge = trio.current_time() + PURGE_PERIOD
                    await self.purge_message_log()
                if trio.current_time() >= next_stats:
                    next_stats = trio.current_time() + STATS_PERIOD
                    await self.store.fleet_stats.upkeep()
            except StoreError as exc:
                if postponed.event():
                    log.warning("housekeeping postponed until the database answers: %s", exc)
                continue
            over = postponed.end_if_quiet()
            if over is not None:
                log.info("housekeeping resumed after %.0f s", over.seconds)

    async def _keep_lease(self) -> None:
        """Renew this instance's lease in a loop of its own, on a connection of its own:
        nothing slow elsewhere (a long purge, a pool held by a storm's reads) may make this
        instance look dead. Beside it, on the pool: expire dead instances, and record this
        one's chargers online again if a renewal found it expired (see
        :mod:`voltaro.central.membership`)."""
        membership, presence, sessions = self._membership, self.presence, self.sessions
        assert membership is not None
        period = min(HOUSEKEEPING_PERIOD, membership.lease / 3)

        async def renew() -> None:
            failing = Episode(quiet=0)  # its own connection: the store's log does not say it
            while True:
                await trio.sleep(period)
                try:
                    await membership.renew()
                except StoreError as exc:
                    if failing.event():
                        log.warning("lease renewals failing until the database answers: %s", exc)
                    continue
                over = failing.end_if_quiet()
                if over is not None:
                    log.info("lease renewed again after %.0f s", over.seconds)

        async def reclaim() -> None:
            restored = await presence.reclaim(sessions.__contains__)
            log.warning("%d chargers still connected here recorded online again", len(restored))

        async with membership.own_connection(), trio.open_nursery() as nursery:
            nursery.start_soon(renew)
            while True:
                await trio.sleep(period)
                try:
                    await membership.after_expiry(reclaim)
                    await membership.expire_dead()
                except StoreError:
                    continue  # the outage is the store's to log; housekeeping says it too

    async def purge_message_log(self) -> int:
        """Delete message-log entries (and security events, refused id tags) older than the
        retention; returns how many message-log entries."""
        cutoff = utc_now() - timedelta(days=self.settings.message_log_retention_days)
        purged = await self.store.message_log.purge_before(cutoff)
        await self.store.transactions.purge_meter_messages_before(cutoff)
        await self.store.command_queue.purge_before(cutoff)
        await self.store.security_events.purge_before(cutoff)
        await self.store.refused_id_tags.purge_before(cutoff)
        if purged:
            log.info("message log: purged %d entries older than %s", purged, cutoff)
        return purged

    # ---- components (usable once run() has started) ------------------------------------

    @property
    def running(self) -> bool:
        """Whether the entry points are usable (between start and shutdown)."""
        return self._domain is not None

    @property
    def domain(self) -> Domain:
        if self._domain is None:
            raise RuntimeError("the central system is not running")
        return self._domain

    @property
    def store(self) -> Store:
        return self.domain.store

    @property
    def authorizer(self) -> Authorizer:
        return self.domain.authorizer

    @property
    def admitter(self) -> Admitter:
        if self._admitter is None:
            raise RuntimeError("the central system is not running")
        return self._admitter

    @property
    def sessions(self) -> SessionRegistry:
        if self._sessions is None:
            raise RuntimeError("the central system is not running")
        return self._sessions

    @property
    def commands(self) -> Commands:
        if self._commands is None:
            raise RuntimeError("the central system is not running")
        return self._commands

    @property
    def presence(self) -> Presence:
        if self._presence is None:
            raise RuntimeError("the central system is not running")
        return self._presence

    @property
    def refused_for_outage(self) -> int:
        return 0 if self._domain is None else self._domain.counters.refused_for_outage

    @property
    def unexpected_transitions(self) -> int:
        return 0 if self._domain is None else self._domain.counters.unexpected_transitions

    def charger_state(self, charge_point_id: str) -> ChargerState:
        return self.domain.charger_state(charge_point_id)

    # ---- entry points for the transport and the RPC endpoint ------------------------------

    async def admit(
        self, charge_point_id: str, password: str | None, address: str | None = None
    ) -> Admission:
        """Decide a WebSocket handshake (see ``voltaro.central.admission``); ``address`` is
        the client's, for throttling password guesses. A database outage is a refusal
        (503, retry later), not an error: the outage itself is the store's to log, once."""
        try:
            admission = await self.admitter.admit(charge_point_id, password, address)
        except StoreUnavailable:
            log.debug("refused %s: the database is unavailable", charge_point_id)
            return Admission(AdmissionDecision.UNAVAILABLE, retry_after=OUTAGE_RETRY_AFTER)
        if admission.accepted:
            self.charger_state(charge_point_id).registration_status = admission.registration_status
        return admission

    def registration_changed(self, charge_point_id: str, status: str) -> None:
        """An operator set the charge point's registration status: its live session follows
        at once (a charger Rejected mid-session stops being served transactions)."""
        if self._domain is not None:
            state = self._domain.chargers.get(charge_point_id)
            if state is not None:
                state.registration_status = status

    def handlers(self, charge_point_id: str) -> Mapping[str, Handler]:
        """Every profile's charger-initiated handlers bound to ``charge_point_id``, each
        behind :meth:`_served`."""
        domain = self.domain
        charger = Charger(charge_point_id, domain, domain.charger_state(charge_point_id))
        return _BoundHandlers(self, charger)

    def _served(self, charger: Charger, action: str, handler: InboundHandler) -> Handler:
        """``handler`` with the rules every charger-initiated message is answered by:

        - a charge point that is not Accepted gets CALLERROR SecurityError for the actions
          its profile declares ``accepted_only``; nothing is stored or acknowledged, so a
          charger keeps what it queued and sends it again once it is accepted;
        - a database outage is an InternalError telling the charger to send the message
          again later; the outage is the store's to log (once, not per message).
        """
        needs_acceptance = action in self._accepted_only
        counters = charger.domain.counters

        async def served(payload: dict[str, Any]) -> dict[str, Any]:
            if needs_acceptance:
                await self._require_accepted(charger, action)
            try:
                return await handler(charger, payload)
            except StoreUnavailable:
                counters.refused_for_outage += 1
                log.debug("%s: %s refused, database unavailable", charger.id, action)
                raise OcppError(
                    ErrorCode.INTERNAL_ERROR,
                    f"{action} could not be saved now (database unavailable); send it again",
                ) from None

        return served

    async def _require_accepted(self, charger: Charger, action: str) -> None:
        state = charger.state
        if state.registration_status is None:  # served without a handshake (tests, tools)
            record = await charger.store.charge_points.get(charger.id)
            state.registration_status = None if record is None else record.registration_status
        status = state.registration_status
        if status != "Accepted":
            raise OcppError(
                ErrorCode.SECURITY_ERROR,
                f"{action} refused: this charge point is {status or 'not registered'}, not "
                "Accepted; until a BootNotification is answered Accepted it gets no id tag "
                "information and cannot start, stop or meter transactions",
            )

    def behind(self) -> bool:
        """Whether this process is behind on its work (see :mod:`voltaro.central.overload`):
        the OCPP server takes on no new charger meanwhile."""
        return self._load.behind()

    @property
    def load(self) -> LoadWatch:
        """How loaded this process is (see :mod:`voltaro.central.overload`)."""
        return self._load

    def seen(self, charge_point_id: str) -> None:
        """A WebSocket pong arrived from the charge point (frames are seen by the session
        registry itself); cheap."""
        if self._sessions is not None:
            self._sessions.seen(charge_point_id)

    def log_frame(
        self,
        charge_point_id: str,
        direction: str,
        message_id: str | None,
        action: str | None,
        payload: object,
        error_code: str | None = None,
        *,
        size: int | None = None,
    ) -> None:
        """Queue a frame for the message log; never blocks, never raises for the database
        (frames logged while the system is not running are dropped). ``size``: the frame's
        bytes on the wire, when known. Secret configuration values are redacted."""
        if direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        if self._domain is None:
            return
        self._domain.store.message_log.post(
            utc_now(),
            charge_point_id,
            direction,
            message_id,
            action,
            redacted(action, payload) if isinstance(payload, dict) else payload,
            error_code,
            size=size,
        )

    def _log_outcome(self, charge_point_id: str, action: str, outcome: str, detail: str) -> None:
        """Record in the message log how a command ended when no frame of the charger's says
        it (a CALLRESULT or CALLERROR is logged as the frame itself): an entry in the
        direction of the answer that never came, with no message id and the outcome as its
        payload."""
        self.log_frame(
            charge_point_id, "in", None, action, {"outcome": outcome, "description": detail}
        )

    def _login_failed(self, charge_point_id: str, address: str | None, why: str) -> None:
        log.info("login failed for %s from %s: %s", charge_point_id, address or "?", why)
        if self._domain is not None:
            self._domain.store.security_events.post(
                utc_now(), charge_point_id, address, "login failed", why
            )

    def count_deviation(self, charge_point_id: str, deviation: Deviation | object) -> None:
        """A schema deviation that lenient mode let through: counted and logged."""
        kind = getattr(deviation, "kind", None) or type(deviation).__name__
        self.deviations[charge_point_id] += 1
        self.deviation_kinds[str(kind)] += 1
        self._unflushed_deviations[charge_point_id] += 1
        log.info("charge point %s: lenient mode accepted %s", charge_point_id, deviation)

    def _flush_deviations(self) -> None:
        counts, self._unflushed_deviations = self._unflushed_deviations, Counter()
        if counts:
            self.store.charge_points.post_deviations(dict(counts))


@asynccontextmanager
async def open_central_system(
    settings: Settings, *, data_transfer: DataTransferRegistry | None = None
) -> AsyncIterator[CentralSystem]:
    """A running :class:`CentralSystem` for the block (inside ``trio_asyncio.open_loop()``)."""
    system = CentralSystem(settings, data_transfer=data_transfer)
    with collapse_single_exception():
        async with trio.open_nursery() as nursery:
            await nursery.start(system.run)
            try:
                yield system
            finally:
                nursery.cancel_scope.cancel()


class _BoundHandlers(Mapping[str, Handler]):
    """A charger's handlers (:meth:`CentralSystem.handlers`), each bound when first asked
    for: an idle charger has used one or two of them, and binding all at once cost every
    connection ~3.7 KiB (48 objects)."""

    __slots__ = ("_bound", "_charger", "_system")

    def __init__(self, system: CentralSystem, charger: Charger) -> None:
        self._system = system
        self._charger = charger
        self._bound: dict[str, Handler] | None = None

    def __getitem__(self, action: str) -> Handler:
        bound = self._bound
        if bound is None:
            bound = self._bound = {}
        elif action in bound:
            return bound[action]
        handler = self._system._served(self._charger, action, self._system._inbound[action])
        bound[action] = handler
        return handler

    def __contains__(self, action: object) -> bool:
        return action in self._system._inbound

    def __iter__(self) -> Iterator[str]:
        return iter(self._system._inbound)

    def __len__(self) -> int:
        return len(self._system._inbound)
