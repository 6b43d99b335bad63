"""The running Voltaro: the central system, the OCPP WebSocket server and the admin API,
wired together, and signal handling. Nothing here decides anything: the parts do.

One trio nursery at the top holds them all (inside one trio-asyncio loop for the database).
SIGINT/SIGTERM close every charger connection with 1001 (going away), so that chargers
reconnect elsewhere or later, then stop the central system, which records them offline.

Roles: :func:`start_voltaro` is the whole of ``voltaro serve`` in one process (the default,
``--workers 1``); with ``--workers N`` each worker process runs :func:`start_ocpp_worker`
(chargers, no admin API) and the parent runs :func:`start_admin_instance` (the admin API, no
chargers) and supervises them (:mod:`voltaro.supervisor`).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio
import trio_asyncio

from voltaro.admin.metrics import VoltaroMetrics
from voltaro.admin.server import run_admin_server
from voltaro.central import CentralSystem
from voltaro.central.operations import Operations
from voltaro.central.overload import BUSY_CPU_SHARE, BUSY_LOOP_LAG, BUSY_MACHINE_SHARE
from voltaro.central.profile import Profile
from voltaro.central.profiles import PROFILES
from voltaro.central.sessions import CLOSE_GOING_AWAY, SessionRegistry
from voltaro.client_address import parse_networks
from voltaro.config import Settings, default_instance_id
from voltaro.process_limits import freeze_long_lived_objects, raise_open_file_limit
from voltaro.transport.server import (
    OcppServer,
    ServerOptions,
)
from voltaro.urls import charger_urls, reachable
from voltaro.worker_link import ParentLink

log = logging.getLogger("voltaro")


@dataclass
class Voltaro:
    """The parts of a running server, wired together (for the command line and for tests)."""

    settings: Settings
    central: CentralSystem
    server: OcppServer | None
    """The OCPP server; None in the admin-only parent of ``voltaro serve --workers N``."""
    operations: Operations
    metrics: VoltaroMetrics
    admin_url: str | None = None
    """``http://host:port`` of the admin HTTP API once it listens."""

    @property
    def sessions(self) -> SessionRegistry:
        """The live sessions (the central system's registry)."""
        return self.central.sessions


def _watch_counters(voltaro: Voltaro) -> None:
    """The counters the parts keep, as Prometheus counters (read at each scrape)."""
    central = voltaro.central

    def running(read: Callable[[], float]) -> Callable[[], float | None]:
        def value() -> float | None:
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
    levels: tuple[tuple[str, str, Callable[[], float]], ...] = (
        (
            "voltaro_db_queued_background_bytes",
            "Bytes of background writes (message log, last-seen) waiting for a commit",
            lambda: central.store.writer.queued_posted_bytes,
        ),
        (
            "voltaro_db_oldest_write_seconds",
            "Seconds the oldest write waiting for a commit has waited",
            lambda: central.store.writer.lag(),
        ),
        (
            "voltaro_event_loop_lag_seconds",
            "Seconds the event loop woke late, averaged over about the last second (background"
            f" work waits while it is over {BUSY_LOOP_LAG})",
            lambda: central.load.average_loop_lag,
        ),
        (
            "voltaro_process_cpu_share",
            "Share of one core this process used, averaged over about the last second"
            f" (background work waits while it is over {BUSY_CPU_SHARE})",
            lambda: central.load.cpu_share,
        ),
        (
            "voltaro_machine_cpu_share",
            "Share of all the machine's cores used (by every process), averaged over about the"
            f" last second (background work waits while it is over {BUSY_MACHINE_SHARE})",
            lambda: central.load.machine_share,
        ),
    )
    for name, documentation, level in levels:
        voltaro.metrics.watch_level(name, documentation, running(level))


def server_options(settings: Settings, *, reuse_port: bool = False) -> ServerOptions:
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
        reuse_port=reuse_port,
        trusted_proxies=parse_networks(settings.trusted_proxies),
    )


def role_instance_id(settings: Settings, port: int, role: str) -> str:
    """The instance id of one process of ``voltaro serve --workers N``: the installation's
    (``VOLTARO_INSTANCE_ID``, else host and OCPP port) and the role, ``w0``, ``w1``, ... for
    the workers and ``admin`` for the parent; the same again after a restart."""
    return f"{settings.instance_id or default_instance_id(port)}/{role}"


async def start_voltaro(
    settings: Settings,
    profiles: Sequence[Profile] = PROFILES,
    *,
    task_status: trio.TaskStatus[Voltaro] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the central system, the OCPP server and the admin API until cancelled (inside a
    trio-asyncio loop). ``await nursery.start(start_voltaro, settings)`` returns the
    :class:`Voltaro` once chargers can connect.

    Order: the OCPP port is bound first, so that a second instance started by mistake on
    the same port fails before it touches anything shared; then the central system starts
    (the store; the chargers this instance left online are recorded offline), then the
    admin API, then chargers are accepted. On the way out, chargers are closed first (1001),
    so their disconnections are recorded while the store is up.
    """
    await _run_instance(
        settings, profiles, ocpp=server_options(settings), admin=True, task_status=task_status
    )


async def start_ocpp_worker(
    settings: Settings,
    index: int,
    profiles: Sequence[Profile] = PROFILES,
    *,
    task_status: trio.TaskStatus[Voltaro] = trio.TASK_STATUS_IGNORED,
) -> None:
    """What worker ``index`` of ``voltaro serve --workers N`` runs: the central system and
    the OCPP server on the shared port (``SO_REUSEPORT``), no admin API; instance
    ``<installation>/w<index>``. Otherwise as :func:`start_voltaro` (the port is bound
    first: a worker that cannot bind fails before it touches the database)."""
    await _run_instance(
        settings,
        profiles,
        ocpp=server_options(settings, reuse_port=True),
        admin=False,
        role=f"w{index}",
        task_status=task_status,
    )


async def start_admin_instance(
    settings: Settings,
    ocpp_port: int,
    profiles: Sequence[Profile] = PROFILES,
    *,
    task_status: trio.TaskStatus[Voltaro] = trio.TASK_STATUS_IGNORED,
) -> None:
    """What the parent of ``voltaro serve --workers N`` runs: the central system (which
    migrates the database before any worker starts) and the admin API, no OCPP port;
    instance ``<installation>/admin`` (``ocpp_port``: the workers' port, for its name). It
    holds no sessions: a command it is asked for reaches a charger on a worker only through
    the database."""
    await _run_instance(
        settings,
        profiles,
        ocpp=None,
        admin=True,
        role="admin",
        ocpp_port=ocpp_port,
        task_status=task_status,
    )


async def _run_instance(
    settings: Settings,
    profiles: Sequence[Profile],
    *,
    ocpp: ServerOptions | None,
    admin: bool,
    role: str | None = None,
    ocpp_port: int | None = None,
    task_status: trio.TaskStatus[Voltaro],
) -> None:
    """One Voltaro instance: the central system with the OCPP server (``ocpp``), the admin
    API (``admin``), or both; instance id from the settings and the port, with ``/role``
    when it is one process of several."""
    metrics = VoltaroMetrics()
    server = None
    if ocpp is not None:
        server = OcppServer(
            ocpp,
            lambda *args: central.admit(*args),
            lambda connection: central.sessions.serve(connection),
            on_pong=lambda charge_point_id: central.seen(charge_point_id),
            busy=lambda: central.behind(),  # False until the store runs: nothing waits
        )
        await server.listen()
        ocpp_port = server.port
    assert ocpp_port is not None, "an instance without an OCPP server is told the port"
    central = CentralSystem(
        settings,
        profiles=profiles,
        observer=metrics.rpc_hooks(),
        instance_id=(
            settings.instance_id or default_instance_id(ocpp_port)
            if role is None
            else role_instance_id(settings, ocpp_port, role)
        ),
        node_id=settings.instance_id or default_instance_id(ocpp_port),
        others_live_events=admin,
    )
    voltaro = Voltaro(settings, central, server, Operations(central), metrics)
    metrics.watch_connected(lambda: len(central.sessions) if central.running else 0)
    metrics.watch_writer(lambda: central.store.writer if central.running else None)
    if server is not None:
        metrics.watch_transport(server.stats)
    _watch_counters(voltaro)
    # On the way out (Ctrl-C, SIGTERM: a cancellation), in order: the chargers are closed
    # (1001) while the OCPP server still runs their sessions, then the server stops, then
    # the central system (its store, the writer): each disconnection is committed, with how
    # it ended, rather than cut short or left queued (issue 18: a normal Ctrl-C logged them
    # as unsaved writes). Both scopes are shielded only once started: a Ctrl-C while they
    # start (a database that does not answer) stops them at once.
    central_scope = trio.CancelScope()
    ocpp_scope = trio.CancelScope()
    async with trio.open_nursery() as outer:
        await outer.start(_run_in_scope, central_scope, central.run)
        central_scope.shield = True
        try:
            async with trio.open_nursery() as nursery:
                if admin:
                    voltaro.admin_url = await nursery.start(
                        run_admin_server, voltaro.operations, metrics, settings
                    )
                if server is not None:
                    await nursery.start(_run_in_scope, ocpp_scope, server.run)
                    ocpp_scope.shield = True
                task_status.started(voltaro)
                try:
                    await trio.sleep_forever()
                finally:
                    with trio.CancelScope(shield=True):
                        await central.sessions.close_all(CLOSE_GOING_AWAY, "server shutting down")
                    ocpp_scope.cancel()
        finally:
            central_scope.cancel()


async def _run_in_scope(
    scope: trio.CancelScope,
    run: Callable[..., Awaitable[None]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``run(task_status=...)`` inside ``scope`` (its caller cancels it when it is time)."""
    with scope:
        await run(task_status=task_status)


async def run_server(settings: Settings) -> None:
    """``voltaro serve``: run until SIGINT or SIGTERM, then shut down cleanly."""
    limit = raise_open_file_limit()
    log.info("open-file limit: %d (about that many chargers per process)", limit)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            voltaro: Voltaro = await nursery.start(start_voltaro, settings)
            assert voltaro.server is not None
            nursery.start_soon(freeze_long_lived_objects)
            log.info("Voltaro is ready: %s", ready_line(settings, voltaro.server.port, voltaro))
            await _stop_at_signal(signals, nursery.cancel_scope)
    log.info("Voltaro stopped")


def ready_line(settings: Settings, port: int, voltaro: Voltaro, workers: str = "") -> str:
    """What ``voltaro serve`` says once it is ready: the URL to give a charger (not the bind
    address: ``0.0.0.0`` is no address to connect to) and the dashboard's. ``workers``:
    ``" (N workers; admin API URL)"`` from the parent of several workers."""
    here, elsewhere = charger_urls(settings.ocpp_host, port, tls=settings.tls_cert is not None)
    line = f"chargers connect to {here}{workers}"
    if elsewhere is not None:
        line += f"; from other machines {elsewhere}"
    if voltaro.admin_url is not None:
        line += f"; dashboard {reachable(voltaro.admin_url)}/"
    return line


async def run_worker(settings: Settings, index: int, link_fd: int) -> None:
    """Worker ``index`` of ``voltaro serve --workers N`` (started by the parent, see
    :mod:`voltaro.supervisor`): serve chargers on the shared port until SIGINT or SIGTERM,
    or until the parent is gone (``link_fd``: this worker's end of
    :mod:`voltaro.worker_link`), then shut down as ``voltaro serve`` does (1001 to every
    charger, its chargers recorded offline)."""
    link = ParentLink(link_fd)
    limit = raise_open_file_limit()
    # A worker often hears two: Ctrl-C reaches the whole process group, and the parent
    # forwards it as SIGTERM. The receiver below takes them while the worker runs and stops;
    # once it has stopped, it restores these, so a late one cannot kill it on its way out.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            voltaro: Voltaro = await nursery.start(start_ocpp_worker, settings, index)
            nursery.start_soon(freeze_long_lived_objects)
            nursery.start_soon(_stop_when_parent_gone, link, voltaro, nursery.cancel_scope)
            log.info(
                "worker %d ready: instance %s, pid %d, open-file limit %d",
                index,
                voltaro.central.instance_id,
                os.getpid(),
                limit,
            )
            await link.report_ready()
            await _stop_at_signal(signals, nursery.cancel_scope)
    await link.aclose()
    log.info("worker %d stopped", index)


async def _stop_at_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.info("%s received: closing connections and stopping", signal.Signals(signum).name)
        scope.cancel()
        return


async def _stop_when_parent_gone(
    link: ParentLink, voltaro: Voltaro, scope: trio.CancelScope
) -> None:
    await link.wait_parent_gone(voltaro.metrics.render)  # the parent's /metrics asks for them
    log.warning("the parent process is gone: closing connections and stopping")
    scope.cancel()
