"""Fleet statistics: percentiles within a bucket's width, merging, the measured window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from voltaro.sim.fleet import source_address, summary_table
from voltaro.sim.stats import FleetStats, Histogram, summarize


@given(st.lists(st.floats(min_value=1e-5, max_value=10.0), min_size=1, max_size=200))
def test_percentiles_are_within_three_percent_on_the_slow_side(samples: list[float]) -> None:
    histogram = Histogram()
    for sample in samples:
        histogram.add(sample)
    ordered = sorted(samples)
    for fraction in (0.5, 0.95, 0.99):
        exact = ordered[max(0, -(-int(fraction * 1000) * len(ordered) // 1000) - 1)]
        value = histogram.percentile(fraction)
        assert value is not None
        assert exact * 0.999 <= value <= max(exact, 1e-6) * 1.031 + 1e-9


def test_merge_window_and_json_round_trip() -> None:
    first, second = FleetStats(chargers=1), FleetStats(chargers=2)
    first.record_latency("Heartbeat", 0.002)
    second.record_latency("Heartbeat", 0.004)
    second.call_errors["MeterValues:InternalError"] += 1
    first.merge(second)
    assert first.chargers == 3 and first.calls_of("Heartbeat") == 2 and first.errors == 1
    snapshot = FleetStats.from_json(first.to_json())
    first.record_latency("MeterValues", 0.010)
    window = first.window_since(snapshot)
    assert window.calls == 1 and set(window.latency) == {"MeterValues"}
    assert window.errors == 1  # errors are never windowed away
    summary = summarize(window, 2.0)
    assert summary["messages_per_s"] == 0.5
    summary["peak_connected"] = 0
    assert "MeterValues" in summary_table(summary)


def test_source_addresses_are_distinct_loopback_addresses_but_not_127_0_0_1() -> None:
    addresses = {source_address(i) for i in range(1, 70_000)}
    assert len(addresses) == 69_999
    assert all(a.startswith("127.") and a != "127.0.0.1" for a in addresses)
