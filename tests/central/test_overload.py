"""A process behind on its work says so: its writer's oldest write has waited too long, or
its event loop wakes late (the CPU is the limit). A busy one too, at lower levels: its writes
wait, it uses most of a core, or its event loop wakes late on average; a single pause (the
garbage collector's) does not make it busy."""

from __future__ import annotations

import math
import time

import trio

from voltaro.central.overload import (
    BUSY_LOOP_LAG,
    BUSY_MACHINE_SHARE,
    PROBE_INTERVAL,
    SMOOTHING,
    LoadWatch,
    read_machine_cpu,
)


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


async def test_a_writer_that_lags_a_little_makes_the_process_busy_not_behind() -> None:
    lag = 0.0
    watch = LoadWatch(lambda: lag, max_writer_lag=2.0, busy_writer_lag=0.5)
    assert not watch.busy()
    lag = 0.8
    assert watch.busy()
    assert not watch.behind()
    lag = 2.5
    assert watch.busy() and watch.behind()


def burn(seconds: float) -> None:
    """Take the CPU without yielding, as a charger's work does between checkpoints."""
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


async def test_a_process_using_most_of_a_core_is_busy_until_it_is_not() -> None:
    # the CPU alone (the machine running the tests may have other work: its lag is not
    # what this is about)
    watch = LoadWatch(lambda: 0.0, busy_cpu_share=0.5, busy_loop_lag=math.inf, machine_cpu=None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        with trio.fail_after(10):
            while not watch.busy():  # short slices: the work of many chargers
                burn(0.005)
                await trio.sleep(0)
        assert watch.cpu_share > 0.5
        with trio.fail_after(10):
            while watch.busy():  # idle now: the average falls
                await trio.sleep(PROBE_INTERVAL)
        nursery.cancel_scope.cancel()


async def test_a_machine_whose_cores_are_taken_makes_the_process_busy() -> None:
    """Three workers on two cores each use a third of a core, and the machine is full: the
    machine's share tells. Counters as Linux's /proc/stat gives them (ticks, all cores)."""
    ticks = [0, 0]  # used, total
    used_per_probe = 19  # of 20 ticks a probe (two cores, 100 Hz, 0.1 s)

    def machine() -> tuple[int, int]:
        ticks[0] += used_per_probe
        ticks[1] += 20
        return ticks[0], ticks[1]

    watch = LoadWatch(
        lambda: 0.0, busy_cpu_share=math.inf, busy_loop_lag=math.inf, machine_cpu=machine
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        with trio.fail_after(10):
            while not watch.busy():
                await trio.sleep(PROBE_INTERVAL)
        assert 0.95 * BUSY_MACHINE_SHARE < watch.machine_share <= 0.95
        used_per_probe = 10  # half of the machine
        with trio.fail_after(10):
            while watch.busy():
                await trio.sleep(PROBE_INTERVAL)
        assert watch.machine_share < BUSY_MACHINE_SHARE
        nursery.cancel_scope.cancel()


def test_the_machines_cpu_is_read_where_linux_gives_it() -> None:
    first = read_machine_cpu()
    assert first is not None  # the tests run on Linux
    burn(0.05)
    second = read_machine_cpu()
    assert second is not None
    assert 0 <= first[0] <= first[1] and second[1] > first[1] and second[0] > first[0]


async def test_one_pause_of_the_event_loop_does_not_make_the_process_busy() -> None:
    watch = LoadWatch(lambda: 0.0, busy_cpu_share=math.inf)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        await trio.sleep(PROBE_INTERVAL * 3)
        await trio.sleep(PROBE_INTERVAL / 2)  # the probe is asleep
        before = watch.average_loop_lag
        # Longer than a probe's interval, so that one probe wakes at least 50 ms late: the
        # garbage collector's pause at 15,000 chargers was 20-65 ms.
        burn(PROBE_INTERVAL + 0.05)
        with trio.fail_after(5):
            while watch.loop_lag < 0.05:
                await trio.sleep(0)
        # The late probe counts a tenth, so a pause of up to 0.15 s on an idle loop stays
        # below the busy level.
        assert before < watch.average_loop_lag <= before + SMOOTHING * watch.loop_lag + 1e-9
        assert SMOOTHING * 0.15 < BUSY_LOOP_LAG
        nursery.cancel_scope.cancel()
