"""Minimal in-process counters and histograms, shaped so a Prometheus exporter can read them.

Kept dependency-free on purpose: the store measures itself (batch sizes, commit latency)
and a later exporter turns these objects into metrics without the store knowing about it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

# Buckets for commit latency in seconds: a durable commit costs ~3-4 ms here.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Buckets for batch sizes (writes per commit).
SIZE_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass
class Histogram:
    """Cumulative-bucket histogram: ``counts[i]`` observations were <= ``buckets[i]``."""

    buckets: Sequence[float]
    counts: list[int] = field(init=False)
    count: int = 0
    total: float = 0.0
    maximum: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)  # last slot: +Inf

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.count += 1
        self.total += value
        self.maximum = max(self.maximum, value)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) pairs, ending with (inf, count)."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip([*self.buckets, float("inf")], self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0
