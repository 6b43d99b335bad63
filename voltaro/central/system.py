"""The Central System: the charging domain's one object, wired to the store.

Lifecycle: construct from Settings, then ``await nursery.start(system.run)`` (inside
``trio_asyncio.open_loop()``); or ``async with open_central_system(settings) as system``.
``run`` starts the store (embedded PostgreSQL when no URL is set, migrations, writer, id tag
cache), loads the open transactions, records chargers left online by a previous run as
offline, and runs the housekeeping loop (last-seen flush, overdue heartbeats, deviation
counts, message-log retention) until cancelled.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import trio

from voltaro.central.admission import POLICY_STATUS, Admission, Admitter
from voltaro.central.authorization import Authorizer, OpenTransactions
from voltaro.central.core import ACCEPTED_ONLY, ChargerState, CoreHandlers, Handler
from voltaro.central.datatransfer import DataTransferRegistry
from voltaro.central.events import EventBus
from voltaro.central.passwords import hash_password
from voltaro.central.presence import PresenceTracker
from voltaro.central.redaction import redacted
from voltaro.central.timestamps import utc_now
from voltaro.config import Settings
from voltaro.episodes import Episode
from voltaro.ocppj.errors import ErrorCode, OcppError
from voltaro.store import Store, StoreError, StoreUnavailable, open_store
from voltaro.store.message_log import MessageLogLimits
from voltaro.store.store import collapse_single_exception

log = logging.getLogger(__name__)

HOUSEKEEPING_PERIOD = 5.0  # seconds: last-seen flush and overdue check; shorter if needed
PURGE_PERIOD = 3600.0  # seconds between message-log retention purges


class CentralSystem:
    """See the ``voltaro.central`` package docstring for the entry points."""

    def __init__(
        self, settings: Settings, *, data_transfer: DataTransferRegistry | None = None
    ) -> None:
        self.settings = settings
        self.data_transfer = data_transfer or DataTransferRegistry()
        self.open_transactions = OpenTransactions()
        self.events = EventBus()  # what happened, for live views (published after commits)
        self.unexpected_transitions = 0
        self.refused_for_outage = 0  # charger messages answered InternalError: no database
        self.deviations: Counter[str] = Counter()  # lenient-mode deviations per charge point
        self.deviation_kinds: Counter[str] = Counter()
        self._unflushed_deviations: Counter[str] = Counter()
        self._chargers: dict[str, ChargerState] = {}
        self._store: Store | None = None
        self._admitter: Admitter | None = None
        self._authorizer: Authorizer | None = None
        self._presence: PresenceTracker | None = None

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
        ) as store:
            try:
                self._store = store
                self.open_transactions.load(await store.transactions.open_transactions())
                left = await store.charge_points.mark_all_offline("server restarted", utc_now())
                if left:
                    log.info("%d charge points left online by a previous run: offline", len(left))
                self._admitter = Admitter(
                    store.charge_points, settings.unknown_chargers, on_failure=self._login_failed
                )
                self._authorizer = Authorizer(store.id_tag_cache, self.open_transactions)
                self._presence = PresenceTracker(
                    store.charge_points,
                    2 * settings.heartbeat_interval + settings.heartbeat_grace,
                )
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._housekeeping)
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                self._store = None
                await self._shutdown(store)

    async def _shutdown(self, store: Store) -> None:
        """Best effort on the way out: last-seen times, and nobody left recorded online."""
        if self._presence is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await store.charge_points.mark_all_offline("server stopped", utc_now())
            except StoreError as exc:
                log.warning("could not record charge points offline at shutdown: %s", exc)

    async def _housekeeping(self) -> None:
        presence = self.presence
        period = min(HOUSEKEEPING_PERIOD, presence.overdue_after / 4)
        next_purge = trio.current_time()
        postponed = Episode(quiet=0)  # logged when it starts and when a round works again
        while True:
            await trio.sleep(period)
            presence.flush()
            self._flush_deviations()
            try:
                for charge_point_id in await presence.check_overdue():
                    self.events.publish("offline", charge_point_id, reason="heartbeat overdue")
                await self.store.message_log.enforce_bounds()  # one crossing when within
                if trio.current_time() >= next_purge:
                    next_purge = trio.current_time() + PURGE_PERIOD
                    await self.purge_message_log()
            except StoreError as exc:
                if postponed.event():
                    log.warning("housekeeping postponed until the database answers: %s", exc)
                continue
            over = postponed.end_if_quiet()
            if over is not None:
                log.info("housekeeping resumed after %.0f s", over.seconds)

    async def purge_message_log(self) -> int:
        """Delete message-log entries (and security events) older than the retention; returns
        how many message-log entries."""
        cutoff = utc_now() - timedelta(days=self.settings.message_log_retention_days)
        purged = await self.store.message_log.purge_before(cutoff)
        await self.store.transactions.purge_meter_messages_before(cutoff)
        await self.store.security_events.purge_before(cutoff)
        if purged:
            log.info("message log: purged %d entries older than %s", purged, cutoff)
        return purged

    # ---- components (usable once run() has started) ------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the central system is not running")
        return self._store

    @property
    def authorizer(self) -> Authorizer:
        if self._authorizer is None:
            raise RuntimeError("the central system is not running")
        return self._authorizer

    @property
    def admitter(self) -> Admitter:
        if self._admitter is None:
            raise RuntimeError("the central system is not running")
        return self._admitter

    @property
    def presence(self) -> PresenceTracker:
        if self._presence is None:
            raise RuntimeError("the central system is not running")
        return self._presence

    @property
    def status_for_new_charge_points(self) -> str:
        """Registration status an unknown charge point gets under the current policy."""
        return POLICY_STATUS[self.settings.unknown_chargers]

    def charger_state(self, charge_point_id: str) -> ChargerState:
        state = self._chargers.get(charge_point_id)
        if state is None:
            state = self._chargers[charge_point_id] = ChargerState()
        return state

    # ---- entry points for the transport and the RPC endpoint ------------------------------

    async def admit(
        self, charge_point_id: str, password: str | None, address: str | None = None
    ) -> Admission:
        """Decide a WebSocket handshake (see ``voltaro.central.admission``); ``address`` is
        the client's, for throttling password guesses."""
        admission = await self.admitter.admit(charge_point_id, password, address)
        if admission.accepted:
            self.charger_state(charge_point_id).registration_status = admission.registration_status
        return admission

    def registration_changed(self, charge_point_id: str, status: str) -> None:
        """An operator set the charge point's registration status: its live session follows
        at once (a charger Rejected mid-session stops being served transactions)."""
        state = self._chargers.get(charge_point_id)
        if state is not None:
            state.registration_status = status

    def handlers(self, charge_point_id: str) -> Mapping[str, Handler]:
        """The charger-initiated Core Profile handlers bound to ``charge_point_id``, each
        behind :meth:`_served`."""
        core = CoreHandlers(self, charge_point_id).as_mapping()
        return {
            action: self._served(charge_point_id, action, handler)
            for action, handler in core.items()
        }

    def _served(self, charge_point_id: str, action: str, handler: Handler) -> Handler:
        """``handler`` with the rules every charger-initiated message is answered by:

        - a charge point that is not Accepted gets CALLERROR SecurityError for the actions
          of ``ACCEPTED_ONLY``; nothing is stored or acknowledged, so a charger keeps what
          it queued and sends it again once it is accepted;
        - a database outage is an InternalError telling the charger to send the message
          again later; the outage is the store's to log (once, not per message).
        """
        state = self.charger_state(charge_point_id)
        needs_acceptance = action in ACCEPTED_ONLY

        async def served(payload: dict[str, Any]) -> dict[str, Any]:
            if needs_acceptance:
                await self._require_accepted(charge_point_id, action, state)
            try:
                return await handler(payload)
            except StoreUnavailable:
                self.refused_for_outage += 1
                log.debug("%s: %s refused, database unavailable", charge_point_id, action)
                raise OcppError(
                    ErrorCode.INTERNAL_ERROR,
                    f"{action} could not be saved now (database unavailable); send it again",
                ) from None

        return served

    async def _require_accepted(
        self, charge_point_id: str, action: str, state: ChargerState
    ) -> None:
        if state.registration_status is None:  # served without a handshake (tests, tools)
            record = await self.store.charge_points.get(charge_point_id)
            state.registration_status = None if record is None else record.registration_status
        status = state.registration_status
        if status != "Accepted":
            raise OcppError(
                ErrorCode.SECURITY_ERROR,
                f"{action} refused: this charge point is {status or 'not registered'}, not "
                "Accepted; until a BootNotification is answered Accepted it gets no id tag "
                "information and cannot start, stop or meter transactions",
            )

    async def connected(self, charge_point_id: str) -> None:
        await self.presence.connected(charge_point_id)
        self.events.publish("connected", charge_point_id)

    async def disconnected(self, charge_point_id: str, reason: str) -> None:
        await self.presence.disconnected(charge_point_id, reason)
        self.events.publish("disconnected", charge_point_id, reason=reason)

    def seen(self, charge_point_id: str) -> None:
        """A frame (or a WebSocket pong) arrived from the charge point; cheap."""
        if self._presence is not None:
            self._presence.seen(charge_point_id)

    def log_frame(
        self,
        charge_point_id: str,
        direction: str,
        message_id: str | None,
        action: str | None,
        payload: Any,
        error_code: str | None = None,
        *,
        size: int | None = None,
    ) -> None:
        """Queue a frame for the message log; never blocks, never raises for the database
        (frames logged while the system is not running are dropped). ``size``: the frame's
        bytes on the wire, when known. Secret configuration values are redacted."""
        if direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        if self._store is None:
            return
        self._store.message_log.post(
            utc_now(),
            charge_point_id,
            direction,
            message_id,
            action,
            redacted(action, payload) if isinstance(payload, dict) else payload,
            error_code,
            size=size,
        )

    async def authorization_key_changed(self, charge_point_id: str, key: str) -> None:
        """The charger accepted a new AuthorizationKey: from now on it is its Basic-auth
        password (only its hash is kept; scrypt runs off the event loop)."""
        password_hash = await trio.to_thread.run_sync(hash_password, key)
        await self.store.charge_points.upsert(charge_point_id, password_hash=password_hash)
        log.info(
            "charge point %s: new AuthorizationKey accepted, password updated", charge_point_id
        )

    def _login_failed(self, charge_point_id: str, address: str | None, why: str) -> None:
        log.info("login failed for %s from %s: %s", charge_point_id, address or "?", why)
        if self._store is not None:
            self._store.security_events.post(
                utc_now(), charge_point_id, address, "login failed", why
            )

    def count_deviation(self, charge_point_id: str, deviation: object) -> None:
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
