"""Counters and latency histograms of a simulated fleet, cheap to update and to merge.

Latencies go into log-spaced buckets (3 % wide), so a worker process can ship its whole
histogram to the parent once a second and percentiles stay within 3 % whatever the run length.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_BUCKET_BASE = math.log(1.03)


def _bucket(seconds: float) -> int:
    micros = max(seconds * 1e6, 1.0)
    return int(math.log(micros) / _BUCKET_BASE)


def _bucket_seconds(bucket: int) -> float:
    # the upper edge of the bucket: percentiles err on the slow side
    return math.exp((bucket + 1) * _BUCKET_BASE) / 1e6


@dataclass
class Histogram:
    buckets: Counter[int] = field(default_factory=Counter)
    count: int = 0

    def add(self, seconds: float) -> None:
        self.buckets[_bucket(seconds)] += 1
        self.count += 1

    def merge(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)
        self.count += other.count

    def percentile(self, fraction: float) -> float | None:
        """The ``fraction`` quantile in seconds (None when empty)."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return _bucket_seconds(bucket)
        return _bucket_seconds(max(self.buckets))

    def minus(self, earlier: Histogram) -> Histogram:
        """What was added since ``earlier`` (a snapshot of this histogram)."""
        buckets = Counter(self.buckets)
        buckets.subtract(earlier.buckets)
        return Histogram(+buckets, self.count - earlier.count)

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "buckets": {str(k): v for k, v in self.buckets.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        buckets = Counter({int(k): int(v) for k, v in data["buckets"].items()})
        return cls(buckets, int(data["count"]))


# FleetStats' plain counters: summed across workers, and carried through JSON as they are.
COUNTERS = (
    "chargers",
    "connected",
    "accepted",
    "connects",
    "connect_failures",
    "disconnects",
    "calls",
    "answered_calls",
    "sessions_started",
    "sessions_refused",
    "sessions_completed",
    "queued_replayed",
)


@dataclass
class FleetStats:
    """What a fleet (or one worker's share of it) did so far."""

    chargers: int = 0
    connected: int = 0
    accepted: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    calls: int = 0
    answered_calls: int = 0
    """CALLs the Central System made to the simulated chargers."""
    call_errors: Counter[str] = field(default_factory=Counter)
    """CALLERRORs received, by ``action:code``."""
    protocol_errors: Counter[str] = field(default_factory=Counter)
    """Timeouts, invalid answers, and other breaches, by kind."""
    sessions_started: int = 0
    sessions_refused: int = 0
    sessions_completed: int = 0
    queued_replayed: int = 0
    latency: dict[str, Histogram] = field(default_factory=dict)
    lag: Histogram = field(default_factory=Histogram)
    """How late the simulator's own loop woke a task that slept
    (:func:`voltaro.sim.fleet.watch_lag`). An answer waits as long before its latency is
    taken, so a long lag says a latency is the load generator's, not the server's."""

    def record_latency(self, action: str, seconds: float) -> None:
        histogram = self.latency.get(action)
        if histogram is None:
            histogram = self.latency[action] = Histogram()
        histogram.add(seconds)
        self.calls += 1

    def calls_of(self, action: str) -> int:
        """How many CALLs of ``action`` were answered with a CALLRESULT."""
        histogram = self.latency.get(action)
        return 0 if histogram is None else histogram.count

    @property
    def errors(self) -> int:
        return sum(self.call_errors.values()) + sum(self.protocol_errors.values())

    def all_latencies(self) -> Histogram:
        total = Histogram()
        for histogram in self.latency.values():
            total.merge(histogram)
        return total

    def merge(self, other: FleetStats) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.call_errors.update(other.call_errors)
        self.protocol_errors.update(other.protocol_errors)
        for action, histogram in other.latency.items():
            self.latency.setdefault(action, Histogram()).merge(histogram)
        self.lag.merge(other.lag)

    def window_since(self, earlier: FleetStats) -> FleetStats:
        """Latencies and message counts since the snapshot ``earlier``; the gauges (connected,
        accepted) and every error counter are kept whole: an error during a ramp still counts."""
        window = FleetStats.from_json(self.to_json())
        window.calls -= earlier.calls
        window.latency = {
            action: histogram.minus(earlier.latency.get(action, Histogram()))
            for action, histogram in self.latency.items()
        }
        window.latency = {a: h for a, h in window.latency.items() if h.count}
        window.lag = self.lag.minus(earlier.lag)
        return window

    def to_json(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in COUNTERS},
            "call_errors": dict(self.call_errors),
            "protocol_errors": dict(self.protocol_errors),
            "latency": {action: h.to_json() for action, h in self.latency.items()},
            "lag": self.lag.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FleetStats:
        stats = cls()
        for name in COUNTERS:
            setattr(stats, name, int(data[name]))
        stats.call_errors = Counter(data["call_errors"])
        stats.protocol_errors = Counter(data["protocol_errors"])
        stats.latency = {a: Histogram.from_json(h) for a, h in data["latency"].items()}
        stats.lag = Histogram.from_json(data["lag"])
        return stats


def summarize(stats: FleetStats, elapsed: float) -> dict[str, Any]:
    """The JSON summary of a run: counts, rates and per-action percentiles in milliseconds."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    actions = {}
    for action, histogram in sorted(stats.latency.items()):
        actions[action] = {
            "count": histogram.count,
            "p50_ms": ms(histogram.percentile(0.50)),
            "p95_ms": ms(histogram.percentile(0.95)),
            "p99_ms": ms(histogram.percentile(0.99)),
        }
    total = stats.all_latencies()
    return {
        "elapsed_s": round(elapsed, 3),
        "chargers": stats.chargers,
        "connected": stats.connected,
        "accepted": stats.accepted,
        "connects": stats.connects,
        "connect_failures": stats.connect_failures,
        "disconnects": stats.disconnects,
        "messages": stats.calls,
        "messages_per_s": round(stats.calls / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": ms(total.percentile(0.50)),
        "p95_ms": ms(total.percentile(0.95)),
        "p99_ms": ms(total.percentile(0.99)),
        "errors": stats.errors,
        "call_errors": dict(stats.call_errors),
        "protocol_errors": dict(stats.protocol_errors),
        "central_system_calls_answered": stats.answered_calls,
        "sessions_started": stats.sessions_started,
        "sessions_refused": stats.sessions_refused,
        "sessions_completed": stats.sessions_completed,
        "queued_replayed": stats.queued_replayed,
        "driver_lag_p50_ms": ms(stats.lag.percentile(0.50)),
        "driver_lag_p99_ms": ms(stats.lag.percentile(0.99)),
        "actions": actions,
    }
