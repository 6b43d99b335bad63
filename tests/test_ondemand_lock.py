"""OnDemandLock: one holder at a time, waiters served in arrival order, a cancelled waiter
leaves the queue, and nothing kept while nobody waits."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from voltaro.ondemand import OnDemandLock


async def test_waiters_get_the_lock_in_arrival_order() -> None:
    lock = OnDemandLock()
    order: list[int] = []

    async def take(n: int) -> None:
        async with lock:
            order.append(n)
            await trio.sleep(0.01)

    lock.acquire_nowait()
    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(take, n)
            await trio.testing.wait_all_tasks_blocked()
        assert order == []  # all wait for the holder
        lock.release()
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked() and lock._waiters is None


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    lock = OnDemandLock()
    lock.acquire_nowait()
    with trio.move_on_after(0.05) as waited:
        await lock.acquire()
    assert waited.cancelled_caught
    lock.release()  # nobody to hand it to
    assert not lock.locked()
    with pytest.raises(trio.WouldBlock):
        lock.acquire_nowait()
        lock.acquire_nowait()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
