"""The process settings for many connections: open-file limit, garbage-collector policy."""

import gc
import resource
import weakref

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
