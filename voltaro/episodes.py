"""Something that goes on for a while, logged as an episode: one line when it starts and one
when it is over, with what happened in between; never a line per event.

Why: a flood or an outage repeats the same event thousands of times a second, and a line
each (36,140 lines in 15 s, once) buries everything else in the log and costs the server
time it needs. The counters say how many; the log says when it began and ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class EpisodeSummary:
    """An episode that is over: how long it lasted, its events and their total amount."""

    seconds: float
    events: int
    amount: int


class Episode:
    """Over once ``quiet`` seconds have passed without an event (checked by
    :meth:`end_if_quiet`, which the owner calls from some periodic task, or from a task
    that sleeps until :attr:`quiet_at`). ``clock``: monotonic seconds (trio's, in a task
    that sleeps on trio's clock)."""

    def __init__(self, quiet: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._quiet = quiet
        self._clock = clock
        self._started: float | None = None
        self._last = 0.0
        self._events = 0
        self._amount = 0

    @property
    def active(self) -> bool:
        return self._started is not None

    @property
    def quiet_at(self) -> float:
        """When the episode is over if no event comes before (on ``clock``)."""
        return self._last + self._quiet

    def event(self, amount: int = 0) -> bool:
        """Count one event; True when it starts an episode (the caller logs that line)."""
        now = self._clock()
        starts = self._started is None
        if starts:
            self._started, self._events, self._amount = now, 0, 0
        self._last = now
        self._events += 1
        self._amount += amount
        return starts

    def end_if_quiet(self) -> EpisodeSummary | None:
        """The summary of an episode quiet for long enough, which is then over; else None."""
        if self._started is None or self._clock() < self.quiet_at:
            return None
        summary = EpisodeSummary(self._last - self._started, self._events, self._amount)
        self._started = None
        return summary
