"""Settings for a process that holds thousands of connections: its open-file limit, and a
garbage-collector policy that keeps pauses short.

Why the collector needs a policy: every connection keeps a few hundred container objects
alive (tasks, channels, the WebSocket state), and CPython's full collection walks all of
them. Measured with 2,500 chargers: ~500,000 objects and a 340-460 ms stop of the whole
process at every full collection, which came every few seconds while the fleet was growing
(and it grows linearly: ~1.4 s at 10,000). Long-lived objects are therefore moved into the
collector's permanent generation (``gc.freeze``) every second, so a collection only walks
what was created since. The price: reference cycles that became garbage before a freeze are
only freed at the next thaw, a full collection over everything run once an hour.

Why every second: before each freeze the young generations are collected, and they hold
every connection that did anything since the last freeze (its new coroutines, cancel scopes
and calls). With 15,000 chargers on the stress profile that was ~180,000 objects after 5 s
(52,000 of them coroutines), and walking them stopped the process for 150-280 ms every 5 s,
which was the p99 of the whole fleet (189-286 ms). Freezing every second walks a fifth as
many at a time: 20-65 ms, and the same fleet's p99 fell to 73 ms (the simulator, which uses
this policy too, changed alike, so part of that is the load generator's). The simulator
freezes every quarter of a second: with 20,000 chargers over four processes sharing two
cores with the server, its young collection took 15-22 ms of CPU but 35-140 ms of wall time
(the process was preempted in it). In an A/B with the server freezing as often too, the
simulator's own loop lag (p99) fell from 129-163 to 36-47 ms at the same server CPU; with
only the simulator's interval changed, 41-80 ms in the runs whose window held no ramp.

The youngest generation is also collected less often: every 50,000 allocations instead of
CPython's 700. At a few thousand messages a second the default ran hundreds of collections a
second, each walking the in-flight frames, payloads and tasks again. Under workload (a)
(200 chargers flooding, seven runs each way on a noisy machine) the larger threshold took the
server from 0.248 to 0.225 ms of CPU per message on average, and 3,380 to 3,640 msg/s. A
young collection then walks at most ~50,000 objects: ~1-3 ms.

The same loop gives memory back after a burst (:func:`release_free_memory`). Measured after
200 connections flooded the server with 64 KiB frames for 30 s (``benchmarks/flood.py``):
RSS 1,127 MiB, of which glibc's malloc held 1,030 MiB free and 12 MiB in use. The frames'
strings had come from the heap (64 KiB is below glibc's 128 KiB mmap threshold) and were
freed, but a heap only shrinks from its top, and the top was held by something small. One
``malloc_trim(0)``, which also releases free pages inside the heap, took RSS to 95-99 MiB in
43-127 ms. A fixed ``M_MMAP_THRESHOLD`` of 64 KiB (no dynamic threshold) was tried instead
and did little: RSS stayed at 969 MiB after the same flood, as most allocations were smaller.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

log = logging.getLogger(__name__)

T = TypeVar("T")

FREEZE_INTERVAL = 1.0  # seconds between moving survivors into the permanent generation
THAW_INTERVAL = 3600.0  # seconds between full collections over everything
GC_THRESHOLDS = (50_000, 20, 100)  # allocations per young collection, then per older one
# Free heap memory worth giving back: below it a trim is not worth the page faults of using
# the memory again. A trim with nothing to release costs ~0.2 ms; asking malloc how much is
# free (mallinfo2) 0.05 ms idle, up to 2.6 ms in a heap fragmented by a flood.
TRIM_FREE_BYTES = 32 * 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc 2.33 or newer (mallinfo2 and malloc_trim); else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "mallinfo2") and hasattr(libc, "malloc_trim")):
        return None
    libc.mallinfo2.restype = _MallInfo2
    libc.mallinfo2.argtypes = []
    libc.malloc_trim.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


_LIBC = _glibc()


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (every charger holds a socket);
    returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.warning("could not raise the open-file limit from %d: %s", soft, error)
    return soft


def release_free_memory() -> int:
    """Give the memory malloc holds free back to the system when there is at least
    :data:`TRIM_FREE_BYTES` of it (see the module docstring); returns the bytes it held free
    (0 when nothing was released, or the C library is not glibc: a no-op there)."""
    if _LIBC is None:
        return 0
    free = int(_LIBC.mallinfo2().fordblks)
    if free < TRIM_FREE_BYTES:
        return 0
    started = time.perf_counter()
    _LIBC.malloc_trim(0)
    log.debug(
        "gave back free memory: malloc held %.0f MiB free; trimmed in %.1f ms",
        free / 2**20,
        (time.perf_counter() - started) * 1000,
    )
    return free


async def freeze_long_lived_objects(
    freeze_interval: float = FREEZE_INTERVAL, thaw_interval: float = THAW_INTERVAL
) -> None:
    """Run until cancelled: the collector policy of the module docstring (the thresholds
    and the frozen objects are given back when it stops), and free memory given back to the
    system every ``freeze_interval`` when there is much of it."""
    last_thaw = time.monotonic()
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        while True:
            gc.collect(1)  # young garbage is freed, not frozen
            gc.freeze()
            release_free_memory()
            await trio.sleep(freeze_interval)
            if time.monotonic() - last_thaw >= thaw_interval:
                started = time.perf_counter()
                gc.unfreeze()
                freed = gc.collect()
                last_thaw = time.monotonic()
                log.info(
                    "full garbage collection: %d objects freed in %.0f ms",
                    freed,
                    (time.perf_counter() - started) * 1000,
                )
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def run_with_short_gc_pauses(
    fn: Callable[..., Awaitable[T]], *args: Any, freeze_interval: float = FREEZE_INTERVAL
) -> T:
    """``await fn(*args)`` with :func:`freeze_long_lived_objects` running alongside (the
    entry point of a process, for ``trio.run``)."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(freeze_long_lived_objects, freeze_interval)
        result = await fn(*args)
        nursery.cancel_scope.cancel()
    return result
