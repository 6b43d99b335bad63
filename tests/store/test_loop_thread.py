"""The writer's asyncio loop on its own thread, reached from trio."""

import asyncio
import threading

import pytest
import trio

from voltaro.store.loop_thread import LoopThread


async def test_runs_the_coroutine_on_its_thread_and_returns_its_result() -> None:
    loop_thread = LoopThread("test-loop")
    try:

        async def where(x: int) -> tuple[str, int]:
            await asyncio.sleep(0.01)
            return threading.current_thread().name, x * 2

        assert await loop_thread.cross(where, 21) == ("test-loop", 42)
    finally:
        await loop_thread.stop()


async def test_an_exception_reaches_the_trio_caller() -> None:
    loop_thread = LoopThread("test-loop")
    try:

        async def fail() -> None:
            raise LookupError("no such row")

        with pytest.raises(LookupError, match="no such row"):
            await loop_thread.cross(fail)
    finally:
        await loop_thread.stop()


async def test_cancelling_the_caller_cancels_the_coroutine() -> None:
    loop_thread = LoopThread("test-loop")
    cancelled = threading.Event()
    try:

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        with trio.move_on_after(0.1) as scope:
            await loop_thread.cross(forever)
        assert scope.cancelled_caught
        assert await trio.to_thread.run_sync(cancelled.wait, 5)
    finally:
        await loop_thread.stop()


async def test_the_trio_loop_keeps_running_while_the_thread_works() -> None:
    loop_thread = LoopThread("test-loop")
    ticks = 0
    try:

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(tick)
            await loop_thread.cross(asyncio.sleep, 0.2)
            nursery.cancel_scope.cancel()
        assert ticks >= 5
    finally:
        await loop_thread.stop()
