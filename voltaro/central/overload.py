"""How loaded this process is, at two levels. **Behind** on its work: the OCPP server takes
on no new connection (:class:`voltaro.transport.accepting.Acceptor`'s ``busy``). **Busy**:
background work that can wait (keeping the chargers' local lists in sync) gives way to the
chargers' own messages.

Why: in a storm (tens of thousands of chargers connecting at once, after a power cut or a
restart of Voltaro) each new connection brings a handshake, a registration, a boot, a
status per connector and a check of its local list. Taken on as fast as they came, that
work outran the CPU: writes waited past the database's deadline (the charger answered
InternalError), handshakes past theirs (HTTP 503), and the chargers' retries added more.
A charger not yet accepted costs the process nothing: it waits in the kernel's listen
queue, and is taken on once the work in hand is done. So the accept loop pauses while

- the writer's oldest waiting write has waited :data:`WRITER_LAG` seconds (a fifth of the
  default database deadline: room for the work already taken on), or
- the event loop woke :data:`LOOP_LAG` seconds late (every task waits that long for its
  turn: the CPU is the limit).

Connections already accepted are served as before; only the intake waits.

Busy is the level below: this process used more than :data:`BUSY_CPU_SHARE` of a core on
average over about the last second (one event loop, and the GIL: near one core it has no
room left for the chargers' bursts), or the machine's cores were more than
:data:`BUSY_MACHINE_SHARE` used on the same average (several workers, the database and
others share them: each worker's own share stays low while together they take every core),
or its event loop woke :data:`BUSY_LOOP_LAG` late on average (the machine's cores are taken
by others), or the oldest waiting write has waited :data:`BUSY_WRITER_LAG` (the database is
the limit). Why: a new fleet's first local-list sync (ten SendLocalList of a hundred tags
each per charger, every answer recorded) took a third of the machine's CPU while 10,000
stress-profile chargers were served, and more than doubled their latency
(benchmarks/README.md, session 15); with three workers on two cores,
20,000 such chargers were served at p99 195 ms without the sync and 630-990 ms with it
(session 16), none of the workers above 0.35 of a core. Not the chargers' answer times
themselves: those include the database's commit, which on slow storage is long on an idle
server too. Averages, not the last probe: the garbage collector's pause once a second makes
single probes late on an otherwise idle loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import trio

from voltaro.episodes import Episode

log = logging.getLogger(__name__)

WRITER_LAG = 2.0  # seconds the oldest waiting write may have waited
LOOP_LAG = 0.5  # seconds late the event loop may wake
PROBE_INTERVAL = 0.1  # seconds between the event loop's probes
BUSY_CPU_SHARE = 0.7  # of one core, on average, this process may use for background work
BUSY_MACHINE_SHARE = 0.9  # of all the machine's cores, on average, used for background work
BUSY_LOOP_LAG = 0.02  # seconds late the event loop may wake on average for background work
BUSY_WRITER_LAG = 0.5  # seconds the oldest waiting write may have waited for background work
SMOOTHING = 0.1  # each probe's weight in the averages (~the last second's ten probes)
QUIET_SECONDS = 10.0  # caught up for this long: the episode is over (and logged)


MachineCpu = Callable[[], tuple[int, int] | None]
"""The machine's CPU time so far, ``(used, total)`` in clock ticks over all its cores; None
where it cannot be read."""

PROC_STAT = Path("/proc/stat")


def read_machine_cpu() -> tuple[int, int] | None:
    """:data:`MachineCpu` from Linux's ``/proc/stat`` (the first line, every core summed:
    user, nice, system, idle, iowait, irq, softirq, steal; idle and iowait are not used).
    In a container it counts the host's cores, not the container's CPU quota: there the
    process's own share and its event loop's lag are what tell."""
    try:
        with PROC_STAT.open("rb") as stat:
            fields = [int(field) for field in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    total = sum(fields)
    return total - fields[3] - fields[4], total


class LoadWatch:
    """Is this process behind, or busy? Run :meth:`run` in a nursery; ask :meth:`behind`
    and :meth:`busy`.

    ``writer_lag``: seconds the writer's oldest waiting write has waited (see
    :meth:`voltaro.store.writer.GroupCommitWriter.lag`). Gauges (read them): ``loop_lag``,
    seconds the last probe of the event loop woke late, ``average_loop_lag``, the probes'
    exponentially weighted average, ``cpu_share``, the same average of the share of one
    core this process used between probes (all its threads), and ``machine_share``, the
    same average of the share of all the machine's cores used (``machine_cpu``: where it
    is read; None: not at all).
    """

    def __init__(
        self,
        writer_lag: Callable[[], float],
        *,
        max_writer_lag: float = WRITER_LAG,
        max_loop_lag: float = LOOP_LAG,
        busy_writer_lag: float = BUSY_WRITER_LAG,
        busy_loop_lag: float = BUSY_LOOP_LAG,
        busy_cpu_share: float = BUSY_CPU_SHARE,
        busy_machine_share: float = BUSY_MACHINE_SHARE,
        machine_cpu: MachineCpu | None = read_machine_cpu,
    ) -> None:
        self._writer_lag = writer_lag
        self._max_writer_lag = max_writer_lag
        self._max_loop_lag = max_loop_lag
        self.busy_writer_lag = busy_writer_lag
        self.busy_loop_lag = busy_loop_lag
        self.busy_cpu_share = busy_cpu_share
        self.busy_machine_share = busy_machine_share
        self._machine_cpu = machine_cpu
        self._machine_last = None if machine_cpu is None else machine_cpu()
        self.machine_share = 0.0
        self.loop_lag = 0.0
        self.average_loop_lag = 0.0
        self.cpu_share = 0.0
        self._episode = Episode(QUIET_SECONDS, clock=trio.current_time)
        self._worst = (0.0, 0.0)  # the episode's largest loop and writer lags

    def behind(self) -> bool:
        return self.loop_lag > self._max_loop_lag or self._writer_lag() > self._max_writer_lag

    def busy(self) -> bool:
        """Whether background work should wait (behind implies busy)."""
        return (
            self.cpu_share > self.busy_cpu_share
            or self.machine_share > self.busy_machine_share
            or self.average_loop_lag > self.busy_loop_lag
            or self._writer_lag() > self.busy_writer_lag
            or self.behind()
        )

    async def run(self) -> None:
        """Probe the event loop (and the CPU used since the last probe, the process's and
        the machine's) until cancelled; log when the process falls behind (once per
        episode) and when it has caught up."""
        while True:
            asked, cpu = trio.current_time(), time.process_time()
            await trio.sleep(PROBE_INTERVAL)
            woke = trio.current_time()
            self.loop_lag = max(0.0, woke - asked - PROBE_INTERVAL)
            self.average_loop_lag += SMOOTHING * (self.loop_lag - self.average_loop_lag)
            share = (time.process_time() - cpu) / max(woke - asked, PROBE_INTERVAL)
            self.cpu_share += SMOOTHING * (share - self.cpu_share)
            self._probe_machine()
            self._note()

    def _probe_machine(self) -> None:
        if self._machine_cpu is None:
            return
        now, last = self._machine_cpu(), self._machine_last
        self._machine_last = now
        if now is None or last is None or now[1] <= last[1]:
            return  # not read, or no tick since (10 ms a core: a probe may see none)
        share = (now[0] - last[0]) / (now[1] - last[1])
        self.machine_share += SMOOTHING * (share - self.machine_share)

    def _note(self) -> None:
        writer_lag = self._writer_lag()
        if self.loop_lag > self._max_loop_lag or writer_lag > self._max_writer_lag:
            worst_loop, worst_writer = self._worst
            self._worst = (max(worst_loop, self.loop_lag), max(worst_writer, writer_lag))
            if self._episode.event():
                log.warning(
                    "behind on the chargers' work (event loop %.1f s late, oldest write waiting"
                    " %.1f s): taking on no new connection until caught up",
                    self.loop_lag,
                    writer_lag,
                )
            return
        over = self._episode.end_if_quiet()
        if over is not None:
            worst_loop, worst_writer = self._worst
            self._worst = (0.0, 0.0)
            log.info(
                "caught up: behind at %d probes over %.0f s (event loop up to %.1f s late, writes"
                " waiting up to %.1f s)",
                over.events,
                over.seconds,
                worst_loop,
                worst_writer,
            )
