"""Metric labels stay bounded whatever chargers send."""

from __future__ import annotations

from voltaro.admin.metrics import VoltaroMetrics


def test_invented_actions_share_one_label() -> None:
    metrics = VoltaroMetrics()
    for action in ("MakeCoffee", "x" * 500, "Heartbeat", "Heartbeat"):
        metrics.frame("in", action, "call", None)
    text = metrics.exposition().decode()
    assert 'voltaro_ocpp_frames_total{action="unknown",direction="in",kind="call"} 2.0' in text
    assert 'voltaro_ocpp_frames_total{action="Heartbeat",direction="in",kind="call"} 2.0' in text
    assert "MakeCoffee" not in text
