"""``voltaro serve --workers N``: the parent process and the N worker processes it keeps
running.

The parent:

1. holds the OCPP port (:func:`voltaro.transport.server.reserve_shared_port`: the port
   must be free, and port 0 is picked here, once, for all workers) before anything else,
   so an installation started by mistake on a port in use fails before it touches the
   database;
2. starts the embedded PostgreSQL when no ``VOLTARO_DATABASE_URL`` is set (it owns it; the
   workers are handed its URL);
3. runs the admin instance (:func:`voltaro.app.start_admin_instance`): its central system
   migrates the database, once, before any worker starts; its admin API is the one of the
   installation;
4. starts the workers (``python -m voltaro serve --internal-worker INDEX:FD``, the whole
   configuration in their environment, :func:`voltaro.config.settings_env`), each its own
   trio loop and listening socket on the shared port (``SO_REUSEPORT``); waits until every
   one accepts chargers, then lets go of the port and says it is ready.

The parent's ``/metrics`` covers the workers: each scrape asks every ready worker for its
metrics over its line (:mod:`voltaro.worker_link`) and labels each sample with its process
(:mod:`voltaro.admin.metrics_merge`).

Afterwards a worker that exits (killed, crashed, failed) is started again after a pause that
doubles from 1 s to 30 s while it keeps failing (back to 1 s once one ran a minute); the log
says which worker, its pid and how it ended. Its chargers reconnect meanwhile, and the
kernel gives their new connections to the workers still listening.

SIGINT/SIGTERM: each worker is sent SIGTERM (it closes its chargers with 1001 and records
them offline) and waited for, at most :data:`SHUTDOWN_GRACE` seconds before SIGKILL; then the
admin API, the parent's central system and the embedded PostgreSQL stop.

A worker that cannot start at all (its port, the database) fails the whole start: its error
is on stderr and the parent exits 2 with one line naming the worker.

A worker outlives no parent: see :mod:`voltaro.worker_link`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable

import trio
import trio_asyncio

from voltaro.admin.metrics import WORKER_ANSWER_SECONDS
from voltaro.app import Voltaro, ready_line, start_admin_instance
from voltaro.config import CannotStart, Settings, settings_env
from voltaro.process_limits import raise_open_file_limit
from voltaro.store.store import database_url
from voltaro.transport.server import reserve_shared_port
from voltaro.worker_link import WORKER_FLAG, WorkerLink, link_argument

log = logging.getLogger("voltaro.supervisor")

SHUTDOWN_GRACE = 30.0  # seconds a worker may take to close its chargers before SIGKILL
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
HEALTHY_RUN = 60.0  # seconds a worker must have run for its next restart to be quick again


def exit_description(returncode: int) -> str:
    """How a process ended, for the log: ``exit code 2``, ``killed by SIGKILL``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class RestartDelays:
    """The pauses before restarting one worker: 1 s, doubling up to 30 s while it keeps
    failing, 1 s again after a run of at least a minute. A worker that cannot start (the
    database away, say) is retried without spinning, one that crashed once after hours is
    back at once."""

    def __init__(self) -> None:
        self._next = FIRST_RESTART_DELAY

    def after_run(self, seconds: float) -> float:
        """The pause before the next start of a worker whose last process ran ``seconds``."""
        if seconds >= HEALTHY_RUN:
            self._next = FIRST_RESTART_DELAY
        delay = self._next
        self._next = min(2 * delay, MAX_RESTART_DELAY)
        return delay


class WorkerPool:
    """N worker processes on one OCPP port, each kept running until :meth:`stop`."""

    def __init__(self, settings: Settings, count: int) -> None:
        """``settings``: complete (the database URL and the chosen OCPP port set)."""
        self._count = count
        self._env = {**os.environ, **settings_env(settings)}
        self._stopping = trio.Event()
        self._ready: dict[int, WorkerLink] = {}  # the lines of the workers that are ready

    async def metrics(self) -> dict[str, bytes | None]:
        """Each worker's ``/metrics`` text by its name (``w0``, ...), asked of all at once;
        None for one that is not ready (restarting) or did not answer in time."""
        answers: dict[str, bytes | None] = {f"w{index}": None for index in range(self._count)}

        async def ask(index: int, link: WorkerLink) -> None:
            answers[f"w{index}"] = await link.ask_metrics(WORKER_ANSWER_SECONDS)

        async with trio.open_nursery() as nursery:
            for index, link in list(self._ready.items()):
                nursery.start_soon(ask, index, link)
        return answers

    def stop(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after the grace); :meth:`run` returns
        once all have exited."""
        self._stopping.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the workers, report started once every one accepts chargers, keep them
        running until :meth:`stop`. Raises CannotStart when a worker fails at its first
        start (the others are stopped)."""
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as starting:
                for index in range(self._count):
                    starting.start_soon(nursery.start, self._keep_running, index)
            task_status.started()
            await self._stopping.wait()

    async def _keep_running(
        self, index: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        delays = RestartDelays()
        first = True

        def ready(pid: int) -> None:
            nonlocal first
            log.info("worker %d ready (pid %d)", index, pid)
            if first:
                first = False
                task_status.started()

        while not self._stopping.is_set():
            started_at = trio.current_time()
            was_ready, returncode, pid = await self._run_once(index, ready)
            if first:
                raise CannotStart(
                    f"worker {index} could not start ({exit_description(returncode)}); "
                    "its error is above"
                )
            if self._stopping.is_set():
                log.info("worker %d (pid %d) stopped: %s", index, pid, exit_description(returncode))
                return
            delay = delays.after_run(trio.current_time() - started_at)
            log.warning(
                "worker %d (pid %d) %s: %s; restarting it in %g s",
                index,
                pid,
                "exited" if was_ready else "failed to start",
                exit_description(returncode),
                delay,
            )
            with trio.move_on_after(delay):
                await self._stopping.wait()

    async def _run_once(self, index: int, ready: Callable[[int], None]) -> tuple[bool, int, int]:
        """One process of worker ``index``, from start to exit: (whether it became ready,
        its return code, its pid); ``ready(pid)`` is called once it accepts chargers."""
        link = WorkerLink()
        try:
            process = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-m",
                    "voltaro",
                    "serve",
                    WORKER_FLAG,
                    link_argument(index, link.child_fd),
                ],
                env=self._env,
                pass_fds=(link.child_fd,),
            )
            link.handed_over()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._terminate_when_stopping, process)
                    was_ready = await link.wait_ready()
                    if was_ready:
                        self._ready[index] = link
                        ready(process.pid)
                    returncode = await process.wait()
                    nursery.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True):
                    await _reap(process)
        finally:
            self._ready.pop(index, None)
            with trio.CancelScope(shield=True):
                await link.aclose()
        return was_ready, returncode, process.pid

    async def _terminate_when_stopping(self, process: trio.Process) -> None:
        await self._stopping.wait()
        await _reap(process)


async def _reap(process: trio.Process) -> None:
    """SIGTERM ``process`` if it still runs; SIGKILL it after the grace; wait for it."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(SHUTDOWN_GRACE):
            await process.wait()
    if process.returncode is None:
        log.warning(
            "process %d still running %g s after SIGTERM: killed", process.pid, SHUTDOWN_GRACE
        )
        process.kill()
        await process.wait()


async def run_supervisor(settings: Settings) -> None:
    """``voltaro serve --workers N`` with N > 1: run until SIGINT or SIGTERM (see the
    module docstring)."""
    limit = raise_open_file_limit()
    log.info("open-file limit: %d per process, %d worker processes", limit, settings.workers)
    holders, port = reserve_shared_port(settings.ocpp_host, settings.ocpp_port)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with (
                trio_asyncio.open_loop(),
                database_url(settings.database_url, settings.data_dir) as url,
                trio.open_nursery() as nursery,
            ):
                settings = dataclasses.replace(settings, database_url=url, ocpp_port=port)
                admin: Voltaro = await nursery.start(start_admin_instance, settings, port)
                pool = WorkerPool(settings, settings.workers)
                admin.metrics.include_workers(pool.metrics)
                async with trio.open_nursery() as workers:
                    await workers.start(pool.run)
                    for holder in holders:
                        holder.close()
                    workers_note = f" ({settings.workers} workers; admin API {admin.admin_url})"
                    log.info(
                        "Voltaro is ready: %s", ready_line(settings, port, admin, workers_note)
                    )
                    async for signum in signals:
                        log.info(
                            "%s received: stopping the workers, then the admin API",
                            signal.Signals(signum).name,
                        )
                        break
                    pool.stop()
                nursery.cancel_scope.cancel()  # every worker has exited: now the rest
    finally:
        for holder in holders:
            holder.close()
    log.info("Voltaro stopped")
