"""A fleet of simulated charge points: in this process, or spread over worker processes.

One process holds at most ~19,900 connections here (20,000 open files per process), so a big
fleet is split over several workers (``multiprocessing``, spawn), each running its share in
its own trio loop and sending its statistics to the parent once a second. The parent only
merges and prints; it runs no trio loop of its own.

Each charger connects from its own address in 127.0.0.0/8 when the Central System is on a
loopback address, so that tens of thousands of connections are not limited by the ephemeral
port range of one source address (about 28,000 ports).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import multiprocessing
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, TextIO

import trio

from voltaro.ocppj.validation import SchemaRegistry
from voltaro.process_limits import raise_open_file_limit, run_with_short_gc_pauses
from voltaro.sim.charger import ChargerOptions, SimulatedChargePoint
from voltaro.sim.profiles import Profile
from voltaro.sim.stats import FleetStats, summarize

# Chargers per worker process: below the 20,000 open files of a process here, with room.
CHARGERS_PER_WORKER = 10_000


@dataclass(frozen=True)
class FleetOptions:
    url: str
    """Base URL of the Central System, e.g. ``ws://127.0.0.1:9000/ocpp``."""
    chargers: int
    profile: Profile
    connectors: int = 2
    duration: float = 60.0
    id_prefix: str = "SIM-"
    password: str | None = None
    ca_file: str | None = None
    """For ``wss://``: the certificate authority to trust (PEM); None, the system's."""
    id_tags: tuple[str, ...] = ()
    workers: int | None = None
    """None: one per 10,000 chargers."""
    source_addresses: bool | None = None
    """Spread chargers over 127.0.0.0/8; None: on Linux when the URL's host is loopback."""
    call_timeout: float = 30.0
    first_index: int = 1
    measure_after: float = 0.0
    """Latencies and messages/s are measured from this many seconds after the start (the
    steady state after a ramp); errors are counted over the whole run."""
    reconnect_at: float | None = None
    """A reconnect storm: this many seconds after the start every charger drops its
    connection and connects (and boots) again at once."""

    def worker_count(self) -> int:
        if self.workers is not None:
            return max(1, min(self.workers, self.chargers))
        return max(1, math.ceil(self.chargers / CHARGERS_PER_WORKER))

    def spread_addresses(self) -> bool:
        if self.source_addresses is not None:
            return self.source_addresses
        if not sys.platform.startswith("linux"):
            return False  # elsewhere only 127.0.0.1 is configured by default
        host = urllib.parse.urlsplit(self.url).hostname or ""
        try:
            return ipaddress.ip_address(host).is_loopback and host.startswith("127.")
        except ValueError:
            return False


def charger_id(prefix: str, index: int) -> str:
    return f"{prefix}{index:06d}"


def source_address(index: int) -> str:
    """A distinct loopback address per charger (127.1.0.1 and up, never 127.0.0.1)."""
    n = index % (250 * 250 * 250)
    return f"127.{1 + n // 62500}.{n // 250 % 250}.{1 + n % 250}"


def charger_options(options: FleetOptions, index: int) -> ChargerOptions:
    return ChargerOptions(
        charge_point_id=charger_id(options.id_prefix, index),
        url=options.url,
        profile=options.profile,
        connectors=options.connectors,
        password=options.password,
        ca_file=options.ca_file,
        id_tags=options.id_tags,
        source_address=source_address(index) if options.spread_addresses() else None,
        call_timeout=options.call_timeout,
    )


async def run_chargers(
    options: FleetOptions,
    indexes: Sequence[int],
    stats: FleetStats,
    *,
    registry: SchemaRegistry | None = None,
    task_status: trio.TaskStatus[list[SimulatedChargePoint]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the chargers of ``indexes`` until cancelled."""
    registry = registry or SchemaRegistry.load()
    chargers = [
        SimulatedChargePoint(charger_options(options, index), registry, stats) for index in indexes
    ]
    async with trio.open_nursery() as nursery:
        for charger in chargers:
            await nursery.start(charger.run)
        task_status.started(chargers)


@dataclass
class Progress:
    """The live line: connected, messages/s, errors, p50/p99 latency."""

    stream: TextIO | None
    total: int
    started: float = dataclasses.field(default_factory=time.monotonic)
    _last_calls: int = 0
    _last_time: float = dataclasses.field(default_factory=time.monotonic)
    peak_connected: int = 0

    def update(self, stats: FleetStats) -> None:
        now = time.monotonic()
        rate = (stats.calls - self._last_calls) / max(now - self._last_time, 1e-9)
        self._last_calls, self._last_time = stats.calls, now
        self.peak_connected = max(self.peak_connected, stats.connected)
        if self.stream is None:
            return
        latencies = stats.all_latencies()
        p50, p99 = latencies.percentile(0.5), latencies.percentile(0.99)
        line = (
            f"{now - self.started:6.0f}s  connected {stats.connected}/{self.total}"
            f"  accepted {stats.accepted}  {rate:8.0f} msg/s  errors {stats.errors}"
            f"  p50 {_ms(p50)}  p99 {_ms(p99)}"
        )
        if self.stream.isatty():
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.stream is not None and self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


async def _run_measured(
    options: FleetOptions,
    indexes: Sequence[int],
    stats: FleetStats,
    tick: Callable[[], None],
    interval: float,
    stop_signals: Sequence[int] = (),
) -> tuple[FleetStats, float, bool]:
    """Run chargers for ``options.duration`` s calling ``tick`` every ``interval``; return
    the statistics of the measured window (see ``measure_after``), its length, and whether
    one of ``stop_signals`` ended the run early. At the end every charger closes its
    connection (see :func:`_close_all`)."""
    started = trio.current_time()
    baseline = FleetStats()
    measure_from = started
    stopping = trio.Event()
    async with trio.open_nursery() as nursery:
        chargers = await nursery.start(run_chargers, options, indexes, stats)
        if options.reconnect_at is not None:
            nursery.start_soon(_reconnect_all, chargers, started + options.reconnect_at)

        async def mark_window() -> None:
            nonlocal baseline, measure_from
            await trio.sleep(options.measure_after)
            baseline = FleetStats.from_json(stats.to_json())
            measure_from = trio.current_time()

        if options.measure_after > 0:
            nursery.start_soon(mark_window)
        nursery.start_soon(watch_lag, stats)
        with trio.move_on_after(options.duration) as run:
            if stop_signals:
                stopping = await nursery.start(_stop_on_signal, stop_signals, run, nursery)
            while True:
                await trio.sleep(interval)
                tick()
        tick()
        window = stats.window_since(baseline)
        elapsed = trio.current_time() - measure_from
        await _close_all(chargers, stats)
        nursery.cancel_scope.cancel()
    return window, elapsed, stopping.is_set()


LAG_PERIOD = 0.05  # seconds between two looks at the loop's lag
# Survivors frozen more often than in the server: see voltaro.process_limits (a shorter pause
# of a load generator preempted on a busy machine is less of every latency it measures).
GC_FREEZE_INTERVAL = 0.25
_with_short_gc_pauses = functools.partial(
    run_with_short_gc_pauses, freeze_interval=GC_FREEZE_INTERVAL
)


async def watch_lag(stats: FleetStats) -> None:
    """Until cancelled: how much later than asked this loop wakes a sleeping task, into
    ``stats.lag`` (the scheduling delay every answer to the simulated chargers sees too)."""
    while True:
        asked = trio.current_time() + LAG_PERIOD
        await trio.sleep_until(asked)
        stats.lag.add(max(trio.current_time() - asked, 0.0))


async def _stop_on_signal(
    signals: Sequence[int],
    run: trio.CancelScope,
    nursery: trio.Nursery,
    *,
    task_status: trio.TaskStatus[trio.Event] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The first of ``signals`` ends the ``run`` as its duration would (the summary is
    made, the chargers close); a second one stops at once, closing or not."""
    stopping = trio.Event()
    with trio.open_signal_receiver(*signals) as received:
        task_status.started(stopping)
        async for _ in received:
            if stopping.is_set():
                nursery.cancel_scope.cancel()
                return
            stopping.set()
            run.cancel()


# Seconds the chargers have at the end of a run to close their connections: a closing
# handshake is one frame each way, so even 20,000 chargers need a fraction of this.
CLOSE_WAIT = 5.0


async def _close_all(chargers: Sequence[SimulatedChargePoint], stats: FleetStats) -> None:
    """End a run as chargers being switched off would: each closes its connection with 1000
    (Normal Closure) and stays offline, so the Central System records a normal close, not a
    lost connection (1006), when the simulator stops. A charger in the middle of its
    handshake is closed as soon as that is done."""
    with trio.move_on_after(CLOSE_WAIT):
        while True:
            for charger in chargers:
                charger.network_down()  # drops the connection with a closing handshake
            if stats.connected <= 0:
                return
            await trio.sleep(0.05)


async def _reconnect_all(chargers: Sequence[SimulatedChargePoint], at: float) -> None:
    await trio.sleep_until(at)
    for charger in chargers:
        charger.reconnect()


async def run_fleet_in_process(
    options: FleetOptions,
    progress: TextIO | None = None,
    interval: float = 1.0,
    stop_signals: Sequence[int] = (),
) -> dict[str, Any]:
    """Run the whole fleet in this trio loop for ``options.duration`` s (or until one of
    ``stop_signals``); return the summary."""
    stats = FleetStats()
    meter = Progress(progress, options.chargers)
    indexes = range(options.first_index, options.first_index + options.chargers)
    window, elapsed, interrupted = await _run_measured(
        options, indexes, stats, lambda: meter.update(stats), interval, stop_signals
    )
    meter.finish()
    summary = summarize(window, elapsed)
    summary["peak_connected"] = max(meter.peak_connected, window.connected)
    summary["interrupted"] = interrupted
    return summary


def run_fleet(
    options: FleetOptions,
    progress: TextIO | None = None,
    interval: float = 1.0,
    *,
    interruptible: bool = False,
) -> dict[str, Any]:
    """Run the fleet for ``options.duration`` seconds (in worker processes when there are
    more than one) and return its JSON summary.

    ``interruptible`` (the main thread only): Ctrl-C (SIGINT) ends the run early as its
    duration would, with the summary of what ran (``"interrupted": true``); a second Ctrl-C
    stops at once.
    """
    raise_open_file_limit()
    workers = options.worker_count()
    if workers == 1:
        signals = (signal.SIGINT,) if interruptible else ()
        return trio.run(
            _with_short_gc_pauses,
            functools.partial(run_fleet_in_process, stop_signals=signals),
            options,
            progress,
            interval,
        )
    return _run_workers(options, workers, progress, interval, interruptible)


def _shares(options: FleetOptions, workers: int) -> list[list[int]]:
    indexes = list(range(options.first_index, options.first_index + options.chargers))
    return [indexes[n::workers] for n in range(workers)]


def _run_workers(
    options: FleetOptions,
    workers: int,
    progress: TextIO | None,
    interval: float,
    interruptible: bool = False,
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    meter = Progress(progress, options.chargers)
    started = time.monotonic()
    latest: dict[int, FleetStats] = {}
    finals: dict[int, FleetStats] = {}
    pipes: dict[Connection, int] = {}
    processes = []
    interrupted = False
    if interruptible:
        # Ctrl-C reaches the workers too (one process group): they are born ignoring it (an
        # ignored signal stays ignored across exec) and are told by SIGTERM instead, below.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    for number, share in enumerate(_shares(options, workers)):
        parent_end, child_end = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker_main,
            args=(options, share, child_end, interval),
            name=f"voltaro-sim-{number}",
            daemon=True,
        )
        process.start()
        child_end.close()
        pipes[parent_end] = number
        processes.append(process)
    if interruptible:

        def interrupt(signum: int, frame: object) -> None:
            nonlocal interrupted
            if interrupted:
                raise KeyboardInterrupt  # the second Ctrl-C: stop now
            interrupted = True
            for process in processes:
                process.terminate()  # SIGTERM: the worker ends its run and reports

        signal.signal(signal.SIGINT, interrupt)
    last_print = 0.0
    elapsed = 0.0
    try:
        while len(finals) < workers and pipes:
            for ready in wait(list(pipes), timeout=interval):
                assert isinstance(ready, Connection)
                number = pipes[ready]
                try:
                    kind, data, seconds = ready.recv()
                except EOFError:
                    del pipes[ready]
                    continue
                stats = FleetStats.from_json(data)
                if kind == "final":
                    finals[number] = stats
                    elapsed = max(elapsed, seconds)
                else:
                    latest[number] = stats
            if time.monotonic() - last_print >= interval:
                last_print = time.monotonic()
                meter.update(_merged(latest.values()))
    except BaseException:
        for process in processes:  # interrupted: stop the workers now
            process.terminate()
        raise
    finally:
        if interruptible:
            signal.signal(signal.SIGINT, previous)
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
    meter.finish()
    total = _merged((finals or latest).values())
    summary = summarize(total, elapsed or time.monotonic() - started)
    total_now = _merged(latest.values())
    summary["peak_connected"] = max(meter.peak_connected, total_now.connected)
    summary["workers"] = workers
    summary["interrupted"] = interrupted
    lost = workers - len(finals)
    if lost:
        summary["errors"] += lost
        summary["protocol_errors"]["worker-died"] = lost
    return summary


def _merged(parts: Any) -> FleetStats:
    total = FleetStats()
    for part in parts:
        total.merge(part)
    return total


def _worker_main(
    options: FleetOptions, indexes: list[int], pipe: Connection, interval: float
) -> None:
    raise_open_file_limit()
    trio.run(_with_short_gc_pauses, _worker, options, indexes, pipe, interval)
    pipe.close()


async def _worker(
    options: FleetOptions, indexes: list[int], pipe: Connection, interval: float
) -> None:
    stats = FleetStats()
    window, elapsed, _ = await _run_measured(
        options,
        indexes,
        stats,
        lambda: pipe.send(("progress", stats.to_json(), 0.0)),
        interval,
        stop_signals=(signal.SIGTERM,),  # the parent's word to stop early (Ctrl-C there)
    )
    pipe.send(("final", window.to_json(), elapsed))


def summary_table(summary: dict[str, Any]) -> str:
    """The end-of-run table (plain text, aligned)."""
    lines = [
        f"chargers          {summary['chargers']}",
        f"connected         {summary['connected']} (peak {summary.get('peak_connected', '-')})",
        f"accepted (booted) {summary['accepted']}",
        f"duration          {summary['elapsed_s']:.1f} s",
        f"messages          {summary['messages']} ({summary['messages_per_s']:.1f}/s)",
        f"latency           p50 {summary['p50_ms']} ms  p95 {summary['p95_ms']} ms"
        f"  p99 {summary['p99_ms']} ms",
        f"driver's own lag  p50 {summary['driver_lag_p50_ms']} ms"
        f"  p99 {summary['driver_lag_p99_ms']} ms",
        f"sessions          {summary['sessions_started']} started,"
        f" {summary['sessions_completed']} completed, {summary['sessions_refused']} refused",
        f"queued, replayed  {summary['queued_replayed']}",
        f"CS calls answered {summary['central_system_calls_answered']}",
        f"reconnects        {max(0, summary['connects'] - summary['chargers'])},"
        f" failed connects {summary['connect_failures']}",
        f"errors            {summary['errors']}",
    ]
    if summary.get("interrupted"):
        lines.insert(0, "interrupted (Ctrl-C): the summary of what ran")
    for code, count in sorted({**summary["call_errors"], **summary["protocol_errors"]}.items()):
        lines.append(f"  {code:30} {count}")
    lines.append("")
    lines.append(f"{'action':28} {'count':>9} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}")
    for action, row in summary["actions"].items():
        lines.append(
            f"{action:28} {row['count']:>9} {row['p50_ms']!s:>9} {row['p95_ms']!s:>9}"
            f" {row['p99_ms']!s:>9}"
        )
    return "\n".join(lines)
