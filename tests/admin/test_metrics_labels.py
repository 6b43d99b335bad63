"""Metric labels stay bounded whatever chargers send."""

from __future__ import annotations

import threading

from voltaro.admin.metrics import VoltaroMetrics


def test_invented_actions_share_one_label() -> None:
    metrics = VoltaroMetrics()
    for action in ("MakeCoffee", "x" * 500, "Heartbeat", "Heartbeat"):
        metrics.frame("in", action, "call", None)
    text = metrics.exposition().decode()
    assert 'voltaro_ocpp_frames_total{action="unknown",direction="in",kind="call"} 2.0' in text
    assert 'voltaro_ocpp_frames_total{action="Heartbeat",direction="in",kind="call"} 2.0' in text
    assert "MakeCoffee" not in text


def test_callerror_codes_come_from_a_closed_set() -> None:
    metrics = VoltaroMetrics()
    for code in ("JunkCode", "x" * 50, "FormatViolation", "FormationViolation", "InternalError"):
        metrics.frame("in", None, "error", code)
    text = metrics.exposition().decode()
    assert 'voltaro_ocpp_callerrors_total{code="unknown",direction="in"} 2.0' in text
    assert 'voltaro_ocpp_callerrors_total{code="FormationViolation",direction="in"} 2.0' in text
    assert "Junk" not in text and "xxx" not in text


async def test_a_scrape_is_rendered_off_the_event_loop() -> None:
    metrics = VoltaroMetrics()
    threads: list[str] = []

    def read() -> int:
        threads.append(threading.current_thread().name)
        return 7

    metrics.watch_count("voltaro_test_reads", "reads", read)
    text = (await metrics.render()).decode()
    assert "voltaro_test_reads_total 7.0" in text
    assert threads and threads[0] != threading.main_thread().name
