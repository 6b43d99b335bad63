"""The running Voltaro: the central system, the OCPP WebSocket server, and signal handling.

One trio nursery at the top holds them all (inside one trio-asyncio loop for the database).
SIGINT/SIGTERM close every charger connection with 1001 (going away), so that chargers
reconnect elsewhere or later, then stop the central system, which records them offline.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
import trio_asyncio

from voltaro.admin.metrics import VoltaroMetrics
from voltaro.central import CentralSystem
from voltaro.central.redaction import redacted
from voltaro.config import Settings
from voltaro.ocppj.endpoint import FrameDirection, RpcEndpoint, RpcHooks
from voltaro.ocppj.frames import Call, CallError, CallResult, Frame, encode
from voltaro.ocppj.validation import Deviation, SchemaRegistry
from voltaro.process_limits import freeze_long_lived_objects, raise_open_file_limit
from voltaro.store import StoreUnavailable
from voltaro.transport.server import (
    Admission,
    ChargePointConnection,
    OcppServer,
    ServerOptions,
    Verdict,
)

log = logging.getLogger("voltaro")
frame_log = logging.getLogger("voltaro.ocppj.frames")  # every frame, at DEBUG
_ARROWS = {"in": "<-", "out": "->"}

SERVICE_UNAVAILABLE = Admission(http_status=503, retry_after=10)
REMOVALS_QUEUED = 10_000  # removed charge points waiting for their connection to be closed


@dataclass
class Voltaro:
    """The parts of a running server, for the admin surface and for tests."""

    settings: Settings
    central: CentralSystem
    registry: SchemaRegistry
    server: OcppServer | None = None
    endpoints: dict[str, RpcEndpoint] = field(default_factory=dict)
    metrics: VoltaroMetrics = field(default_factory=VoltaroMetrics)
    admin_url: str | None = None
    """``http://host:port`` of the admin HTTP API once it listens."""

    def writer(self) -> object | None:
        """The store's group-commit writer while the central system runs (for metrics)."""
        try:
            return self.central.store.writer
        except RuntimeError:
            return None

    async def admit(self, charge_point_id: str, password: str | None, address: str) -> Verdict:
        try:
            return await self.central.admit(charge_point_id, password, address)
        except StoreUnavailable:
            # one line per refusal comes from the transport (HTTP 503); the outage itself
            # is logged once by the store
            log.debug("refused %s: the database is unavailable", charge_point_id)
            return SERVICE_UNAVAILABLE

    async def session(self, connection: ChargePointConnection) -> None:
        """One charger's connection: the RPC endpoint, bound to the central system."""
        charge_point_id = connection.charge_point_id
        endpoint = RpcEndpoint(
            connection.websocket,
            self.registry,
            self.central.handlers(charge_point_id),
            name=charge_point_id,
            call_timeout=self.settings.call_timeout,
            lenient=connection.lenient,
            hooks=self._hooks(charge_point_id),
        )
        self.endpoints[charge_point_id] = endpoint
        await self.central.connected(charge_point_id)
        try:
            await endpoint.serve()
        finally:
            if self.endpoints.get(charge_point_id) is endpoint:
                del self.endpoints[charge_point_id]
            with trio.CancelScope(shield=True):
                await self.central.disconnected(charge_point_id, "disconnected")

    async def close_removed_connections(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Close the live connection of each charge point removed anywhere (the CLI, SQL by
        hand, another process), as the store's LISTEN connection reports them."""
        send, receive = trio.open_memory_channel[str](REMOVALS_QUEUED)

        def removed(charge_point_id: str) -> None:
            try:
                send.send_nowait(charge_point_id)
            except trio.WouldBlock:
                log.warning("%s was removed; its connection stays open", charge_point_id)

        cache = self.central.store.id_tag_cache
        cache.on_charge_point_removed = removed
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                async for charge_point_id in receive:
                    nursery.start_soon(self._close_if_still_removed, charge_point_id)
        finally:
            cache.on_charge_point_removed = None

    async def _close_if_still_removed(self, charge_point_id: str) -> None:
        if self.server is None or charge_point_id not in self.endpoints:
            return
        try:
            if await self.central.store.charge_points.get(charge_point_id) is not None:
                return  # added again meanwhile: the charger may stay
        except StoreUnavailable:
            pass  # its removal is the last thing known about it
        log.info("charge point %s was removed: closing its connection", charge_point_id)
        await self.server.disconnect(charge_point_id, reason="charge point removed")

    def _hooks(self, charge_point_id: str) -> RpcHooks:
        central = self.central
        metrics = self.metrics

        def on_frame(
            direction: FrameDirection, frame: Frame, action: str | None, size: int
        ) -> None:
            if direction == "in":
                central.seen(charge_point_id)
            if frame_log.isEnabledFor(logging.DEBUG):
                shown = _shown(frame, action)
                frame_log.debug("%s %s %s", charge_point_id, _ARROWS[direction], shown)
            if isinstance(frame, CallError):
                metrics.frame(direction, action, "error", str(frame.error_code))
                payload = {"errorDescription": frame.description, "errorDetails": frame.details}
                central.log_frame(
                    charge_point_id,
                    direction,
                    frame.message_id,
                    action,
                    payload,
                    frame.error_code,
                    size=size,
                )
                central.events.publish(
                    "error",
                    charge_point_id,
                    direction=direction,
                    action=action,
                    code=str(frame.error_code),
                    description=frame.description,
                )
            elif isinstance(frame, Call | CallResult):
                metrics.frame(
                    direction, action, "call" if isinstance(frame, Call) else "result", None
                )
                central.log_frame(
                    charge_point_id, direction, frame.message_id, action, frame.payload, size=size
                )

        def on_deviation(action: str, deviation: Deviation) -> None:
            central.count_deviation(charge_point_id, deviation)

        return RpcHooks(
            on_frame=on_frame,
            on_deviation=on_deviation,
            on_handled=metrics.inbound_handled,
            on_call=metrics.outbound_call,
        )


def _shown(frame: Frame, action: str | None) -> str:
    """A frame as logged at DEBUG: its wire form, secret configuration values of its
    ``action`` (an answer's is the call's) redacted."""
    if isinstance(frame, Call):
        frame = Call(frame.message_id, frame.action, redacted(action, frame.payload))
    elif isinstance(frame, CallResult):
        frame = CallResult(frame.message_id, redacted(action, frame.payload))
    return encode(frame)


async def serve_admin(
    voltaro: Voltaro, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    from voltaro.admin.server import run_admin_server  # the admin imports this module

    await run_admin_server(voltaro, task_status=task_status)


def _watch_counters(voltaro: Voltaro) -> None:
    """The counters the parts keep, as Prometheus counters (read at each scrape)."""
    central = voltaro.central

    def running(read: Callable[[], int]) -> Callable[[], int | None]:
        def value() -> int | None:
            try:
                return read()
            except RuntimeError:  # the central system is not running (yet, or any more)
                return None

        return value

    for name, documentation, read in (
        (
            "voltaro_ocpp_login_failures",
            "Handshakes refused for a wrong or missing Basic-auth password",
            lambda: central.admitter.failed_logins,
        ),
        (
            "voltaro_ocpp_logins_throttled",
            "Handshakes refused with 429 after repeated failed logins (no password checked)",
            lambda: central.admitter.throttled_logins,
        ),
        (
            "voltaro_ocpp_logins_busy",
            "Handshakes refused with 503: too many passwords waiting to be checked",
            lambda: central.admitter.busy_refusals,
        ),
        (
            "voltaro_ocpp_refused_database_unavailable",
            "Charger messages answered InternalError because the database was unavailable",
            lambda: central.refused_for_outage,
        ),
        (
            "voltaro_db_dropped_writes",
            "Background writes (message log, last-seen) dropped for a full write queue",
            lambda: central.store.writer.dropped_posted,
        ),
        (
            "voltaro_db_dropped_write_bytes",
            "Bytes of the background writes dropped for a full write queue",
            lambda: central.store.writer.dropped_posted_bytes,
        ),
        (
            "voltaro_db_refused_writes",
            "Writes answered 'database unavailable': their batch failed or their deadline passed",
            lambda: central.store.writer.refused_writes,
        ),
        (
            "voltaro_db_outages",
            "Database outages begun (writes refused until a batch commits again)",
            lambda: central.store.writer.outages,
        ),
        (
            "voltaro_message_log_truncated_payloads",
            "Message-log payloads over VOLTARO_MESSAGE_LOG_MAX_PAYLOAD stored as size and digest",
            lambda: central.store.message_log.truncated_payloads,
        ),
        (
            "voltaro_message_log_purged_over_charger_bound",
            "Message-log entries deleted to keep a charge point within its bound",
            lambda: central.store.message_log.purged_over_charger_bound,
        ),
        (
            "voltaro_message_log_purged_over_total_bound",
            "Message-log entries deleted to keep the whole log within its bound",
            lambda: central.store.message_log.purged_over_total_bound,
        ),
    ):
        voltaro.metrics.watch_count(name, documentation, running(read))
    voltaro.metrics.watch_level(
        "voltaro_db_queued_background_bytes",
        "Bytes of background writes (message log, last-seen) waiting for a commit",
        running(lambda: central.store.writer.queued_posted_bytes),
    )


def server_options(settings: Settings) -> ServerOptions:
    """Raises SettingsError when the TLS certificate cannot be loaded."""
    return ServerOptions(
        host=settings.ocpp_host,
        port=settings.ocpp_port,
        max_frame=settings.max_frame,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        tls=settings.tls_context(),
        max_pending_handshakes=settings.max_pending_handshakes,
        max_handshakes_per_address=settings.max_handshakes_per_address,
        reserved_files=settings.reserved_files,
        inbound_rate=settings.inbound_rate,
        inbound_burst=settings.inbound_burst,
    )


async def start_voltaro(
    settings: Settings, *, task_status: trio.TaskStatus[Voltaro] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the central system and the OCPP server until cancelled (inside a trio-asyncio loop).

    ``await nursery.start(start_voltaro, settings)`` returns the :class:`Voltaro` once
    chargers can connect.
    """
    registry = SchemaRegistry.load()
    central = CentralSystem(settings)
    voltaro = Voltaro(settings, central, registry)
    voltaro.metrics.watch_connected(lambda: len(voltaro.endpoints))
    voltaro.metrics.watch_writer(voltaro.writer)
    voltaro.metrics.watch_transport(
        lambda: None if voltaro.server is None else voltaro.server.stats()
    )
    _watch_counters(voltaro)
    async with trio.open_nursery() as nursery:
        await nursery.start(central.run)
        voltaro.server = OcppServer(
            server_options(settings), voltaro.admit, voltaro.session, on_pong=central.seen
        )
        try:
            await nursery.start(voltaro.server.run)
            await nursery.start(voltaro.close_removed_connections)
            voltaro.admin_url = await nursery.start(serve_admin, voltaro)
            task_status.started(voltaro)
            await trio.sleep_forever()
        finally:
            # Chargers first, so their disconnections are recorded while the store is up.
            with trio.CancelScope(shield=True):
                await voltaro.server.close_all()


async def run_server(settings: Settings) -> None:
    """``voltaro serve``: run until SIGINT or SIGTERM, then shut down cleanly."""
    limit = raise_open_file_limit()
    log.info("open-file limit: %d (about that many chargers per process)", limit)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            voltaro: Voltaro = await nursery.start(start_voltaro, settings)
            nursery.start_soon(freeze_long_lived_objects)
            assert voltaro.server is not None
            log.info(
                "Voltaro is ready: chargers connect to %s://%s:%d/ocpp/{chargePointId}",
                "ws" if settings.tls_cert is None else "wss",
                settings.ocpp_host,
                voltaro.server.port,
            )
            async for signum in signals:
                log.info(
                    "%s received: closing connections and stopping", signal.Signals(signum).name
                )
                nursery.cancel_scope.cancel()
                break
    log.info("Voltaro stopped")
