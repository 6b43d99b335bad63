"""Whether this process is behind on its work: while it is, the OCPP server takes on no new
connection (:class:`voltaro.transport.accepting.Acceptor`'s ``busy``).

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
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from voltaro.episodes import Episode

log = logging.getLogger(__name__)

WRITER_LAG = 2.0  # seconds the oldest waiting write may have waited
LOOP_LAG = 0.5  # seconds late the event loop may wake
PROBE_INTERVAL = 0.1  # seconds between the event loop's probes
QUIET_SECONDS = 10.0  # caught up for this long: the episode is over (and logged)


class LoadWatch:
    """Is this process behind? Run :meth:`run` in a nursery; ask :meth:`behind`.

    ``writer_lag``: seconds the writer's oldest waiting write has waited (see
    :meth:`voltaro.store.writer.GroupCommitWriter.lag`). Gauge (read it): ``loop_lag``,
    seconds the last probe of the event loop woke late.
    """

    def __init__(
        self,
        writer_lag: Callable[[], float],
        *,
        max_writer_lag: float = WRITER_LAG,
        max_loop_lag: float = LOOP_LAG,
    ) -> None:
        self._writer_lag = writer_lag
        self._max_writer_lag = max_writer_lag
        self._max_loop_lag = max_loop_lag
        self.loop_lag = 0.0
        self._episode = Episode(QUIET_SECONDS, clock=trio.current_time)
        self._worst = (0.0, 0.0)  # the episode's largest loop and writer lags

    def behind(self) -> bool:
        return self.loop_lag > self._max_loop_lag or self._writer_lag() > self._max_writer_lag

    async def run(self) -> None:
        """Probe the event loop until cancelled; log when the process falls behind (once per
        episode) and when it has caught up."""
        while True:
            asked = trio.current_time()
            await trio.sleep(PROBE_INTERVAL)
            self.loop_lag = max(0.0, trio.current_time() - asked - PROBE_INTERVAL)
            self._note()

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
