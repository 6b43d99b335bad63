"""An asyncio loop on a thread of its own, reached from trio: where the writer's database
connection lives, and the batched reads' (:mod:`voltaro.store.read_batch`).

Why not trio-asyncio for the writer too: under trio-asyncio an asyncpg round trip completes
only when the trio scheduler next runs the asyncio loop, i.e. after every other runnable
task has had its turn. Under load (200 chargers flooding) that was ~5 ms per round trip, so a
batch of eight round trips (BEGIN, claim, two COPYs, merges, COMMIT) took ~30 ms and the
writer, not the CPU, capped throughput. On its own thread the loop answers each round trip
as soon as PostgreSQL does: the thread waits in epoll without the GIL and takes it at the
trio thread's next system call.

The batched reads for the same reason seen from the other side: in a storm of 30,000
chargers connecting across three workers the trio thread was busy for seconds at a time,
and a batch of a thousand chargers' connector statuses waited that long for a pooled
connection, then failed at once ("no connection to the database within 10 s"). The other
reads stay on trio-asyncio: with the whole pool on a thread of its own the storm had no
error, but in the scale tier a single process's p99 went from 114 to 458 ms. What the pool
then ran (the local-list sync's transactions compute a list's digest inside them) took the
GIL from the trio thread in 5 ms slices instead of taking its turn among the tasks. The
LISTEN connection (the id tag cache's) stays on trio-asyncio: its callbacks change
trio-side state.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")


class LoopThread:
    """A started asyncio loop on a daemon thread. :meth:`cross` runs a coroutine there and
    awaits it from trio; :meth:`stop` ends the loop and joins the thread."""

    def __init__(self, name: str) -> None:
        # A plain selector loop, not asyncio.new_event_loop(): trio-asyncio's event loop
        # policy refuses to make one from inside trio.
        self._loop = asyncio.SelectorEventLoop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def cross(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the thread's loop; the caller's trio task waits without
        blocking its loop. Cancelling the caller cancels the coroutine (without waiting)."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def wake(_: object) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        future = asyncio.run_coroutine_threadsafe(_awaited(fn, *args), self._loop)
        future.add_done_callback(wake)
        try:
            await done.wait()
        except trio.Cancelled:
            future.cancel()
            raise
        return future.result()

    async def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        await trio.to_thread.run_sync(self._thread.join)
        self._loop.close()


async def _awaited(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return await fn(*args)
