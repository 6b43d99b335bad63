"""Load profiles of a simulated charge point: how often it talks, and how it charges.

Every interval is in simulated seconds; :attr:`Profile.time_scale` compresses them (60 makes
one simulated minute last one real second). That includes the intervals the Central System
sets (the BootNotification ``interval``, ``HeartbeatInterval``, ``MeterValueSampleInterval``):
the whole life of the charger runs faster, so registration and heartbeat scenarios are quick
to test. Only the connect window is in real seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

DAY = 86_400.0


@dataclass(frozen=True)
class Profile:
    name: str
    heartbeat_interval: float | None
    """Seconds between Heartbeats; None follows the interval of the BootNotification answer."""
    meter_interval: float
    """MeterValueSampleInterval: seconds between MeterValues during a session."""
    sessions_per_day: float
    """Sessions per connector per simulated day (Poisson arrivals)."""
    session_seconds: float
    """Mean length of a session (exponential, at least a minute)."""
    connect_window: float
    """Chargers connect at random moments within this many real seconds of the start."""
    time_scale: float = 1.0
    flood: bool = False
    """Benchmark mode: MeterValues and Heartbeats back to back, one outstanding call."""
    power_kw: tuple[float, float] = (3.7, 22.0)
    """Charging power is drawn per session from this range (kW)."""

    def scaled(self, seconds: float) -> float:
        """Real seconds for ``seconds`` of simulated time."""
        return seconds / self.time_scale

    def with_changes(self, **changes: object) -> Profile:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


PROFILES: dict[str, Profile] = {
    # A charger at a workplace: the server's heartbeat (300 s by default), meter values every
    # minute, about four half-hour sessions per connector per day.
    "realistic": Profile(
        "realistic",
        heartbeat_interval=None,
        meter_interval=60.0,
        sessions_per_day=4.0,
        session_seconds=1800.0,
        connect_window=60.0,
    ),
    # A busy public charger reporting often.
    "stress": Profile(
        "stress",
        heartbeat_interval=60.0,
        meter_interval=10.0,
        sessions_per_day=12.0,
        session_seconds=1800.0,
        connect_window=60.0,
    ),
    # Every charger connects and boots at once (after a power cut, or a server restart).
    "storm": Profile(
        "storm",
        heartbeat_interval=None,
        meter_interval=60.0,
        sessions_per_day=4.0,
        session_seconds=1800.0,
        connect_window=0.0,
    ),
    # Benchmark workload (a): MeterValues with ten sampled values and Heartbeats, as fast as
    # one outstanding call allows.
    "throughput": Profile(
        "throughput",
        heartbeat_interval=None,
        meter_interval=0.0,
        sessions_per_day=0.0,
        session_seconds=0.0,
        connect_window=5.0,
        flood=True,
    ),
}


def profile(name: str, *, time_scale: float = 1.0, connect_window: float | None = None) -> Profile:
    base = PROFILES[name]
    window = base.connect_window if connect_window is None else connect_window
    return dataclasses.replace(base, time_scale=time_scale, connect_window=window)
