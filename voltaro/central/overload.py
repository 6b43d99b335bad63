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

from collections.abc import Callable

import trio

WRITER_LAG = 2.0  # seconds the oldest waiting write may have waited
LOOP_LAG = 0.5  # seconds late the event loop may wake
PROBE_INTERVAL = 0.1  # seconds between the event loop's probes


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

    def behind(self) -> bool:
        return self.loop_lag > self._max_loop_lag or self._writer_lag() > self._max_writer_lag

    async def run(self) -> None:
        """Probe the event loop until cancelled."""
        while True:
            asked = trio.current_time()
            await trio.sleep(PROBE_INTERVAL)
            self.loop_lag = max(0.0, trio.current_time() - asked - PROBE_INTERVAL)
