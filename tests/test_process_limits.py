"""The process settings for many connections: open-file limit, garbage-collector policy."""

import ctypes
import gc
import resource
import weakref
from pathlib import Path

import pytest
import trio

from voltaro.process_limits import (
    GC_THRESHOLDS,
    freeze_long_lived_objects,
    raise_open_file_limit,
)


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft = raise_open_file_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert soft == hard or hard == resource.RLIM_INFINITY


async def test_survivors_are_frozen_and_thawed_cycles_are_freed() -> None:
    node = Node()
    gone = weakref.ref(node)
    thresholds = gc.get_threshold()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(freeze_long_lived_objects, 0.05, 0.5)
        await trio.sleep(0.02)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
        del node  # garbage now, but frozen: a full collection does not look at it
        gc.collect()
        assert gone() is not None
        await trio.sleep(0.6)  # the thaw: everything is collected once
        assert gone() is None
        nursery.cancel_scope.cancel()
    assert gc.get_freeze_count() == 0  # stopping the policy leaves nothing frozen
    assert gc.get_threshold() == thresholds


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def _glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "malloc_trim")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc(), reason="giving memory back is glibc's malloc_trim")
async def test_memory_freed_inside_the_heap_is_given_back() -> None:
    # 64 KiB blocks come from the heap (below glibc's 128 KiB mmap threshold); every other
    # one freed leaves 128 MiB free between live blocks, which the heap cannot give back by
    # shrinking from its top: what a flood of 64 KiB frames left behind
    blocks = [b"x" * 65536 for _ in range(4096)]  # written: every page resident
    full = _rss()
    del blocks[::2]
    freed = _rss()
    assert freed > full - 32 * 2**20  # still resident: nothing gave it back yet
    async with trio.open_nursery() as nursery:
        nursery.start_soon(freeze_long_lived_objects, 0.05, 3600.0)
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert _rss() < freed - 96 * 2**20
    del blocks
