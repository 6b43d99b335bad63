"""A process behind on its work says so: its writer's oldest write has waited too long, or
its event loop wakes late (the CPU is the limit)."""

from __future__ import annotations

import time

import trio

from voltaro.central.overload import PROBE_INTERVAL, LoadWatch


async def test_a_writer_that_lags_makes_the_process_behind() -> None:
    lag = 0.0
    watch = LoadWatch(lambda: lag, max_writer_lag=2.0)
    assert not watch.behind()
    lag = 2.5
    assert watch.behind()
    lag = 0.1
    assert not watch.behind()


async def test_an_event_loop_that_wakes_late_makes_the_process_behind() -> None:
    watch = LoadWatch(lambda: 0.0, max_loop_lag=0.2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        await trio.sleep(PROBE_INTERVAL / 2)  # the probe is asleep
        time.sleep(0.5)  # the CPU taken by work that does not yield: the probe wakes late
        with trio.fail_after(5):
            while watch.loop_lag < 0.3:
                await trio.sleep(0)
        assert watch.behind()
        with trio.fail_after(5):
            while watch.behind():  # caught up: the next probe is on time
                await trio.sleep(PROBE_INTERVAL)
        nursery.cancel_scope.cancel()
