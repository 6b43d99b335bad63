"""A lock that costs almost nothing while nobody waits for it.

Every connection has a few locks (one reader at a time, writes in order, one outstanding
CALL), and they are almost never contended. A ``trio.Lock`` is a parking lot with an
ordered dict, ~0.4 KiB, and 20,000 idle chargers held 100,000 of them. This one is a flag,
and a parking lot made only while a task waits (handed to the waiters in arrival order).
"""

from __future__ import annotations

import trio


class OnDemandLock:
    """A FIFO lock: :meth:`acquire` (a checkpoint), :meth:`acquire_nowait` when
    :meth:`locked` is False (no checkpoint), :meth:`release`; ``async with`` acquires."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: trio.lowlevel.ParkingLot | None = None

    def locked(self) -> bool:
        return self._held

    def acquire_nowait(self) -> None:
        if self._held:
            raise trio.WouldBlock
        self._held = True

    async def acquire(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if not self._held:
            self._held = True
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        if self._waiters is None:
            self._waiters = trio.lowlevel.ParkingLot()
        await self._waiters.park()  # woken by release(), which hands the lock over

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("release of an unlocked lock")
        waiters = self._waiters
        if waiters is not None and waiters.unpark(count=1):
            return  # still held: by the task woken
        self._held = False
        self._waiters = None

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
