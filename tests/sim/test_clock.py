"""The simulator's timestamps: OCPP text in UTC with milliseconds, and the right time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import trio

from voltaro.sim.charger import _now


async def test_timestamps_are_utc_with_milliseconds_and_current() -> None:
    seen = []
    for _ in range(5):  # across a second boundary, where the cached part changes
        before = datetime.now(UTC) - timedelta(milliseconds=1)
        text = _now()
        after = datetime.now(UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
        assert before <= datetime.fromisoformat(text) <= after
        seen.append(text[:19])
        await trio.sleep(0.3)
    assert len(set(seen)) > 1
