"""The line between the parent of ``voltaro serve --workers N`` and a worker
(:mod:`voltaro.worker_link`), both ends in one process over a real socket pair."""

from __future__ import annotations

import os

import trio

from voltaro.worker_link import ParentLink, WorkerLink


async def test_metrics_are_asked_over_the_line_and_a_late_answer_is_dropped() -> None:
    parent = WorkerLink()
    worker = ParentLink(os.dup(parent.child_fd))  # what the worker inherits
    parent.handed_over()  # and our copy of its end is closed
    asked = 0

    async def metrics() -> bytes:
        nonlocal asked
        asked += 1
        if asked == 1:
            await trio.sleep(0.5)  # slower than the parent waits
        return b"answer %d\n" % asked + b"x" * 100_000  # longer than one read

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.wait_parent_gone, metrics)
        await worker.report_ready()
        assert await parent.wait_ready()
        assert await parent.ask_metrics(timeout=0.1) is None  # given up on
        second = await parent.ask_metrics(timeout=10)
        assert second is not None and second.startswith(b"answer 2\n"), second[:20]
        assert len(second) == len(b"answer 2\n") + 100_000
        await parent.aclose()  # the parent goes: the worker hears it
        with trio.fail_after(10):
            while nursery.child_tasks:
                await trio.sleep(0.01)
    await worker.aclose()
    assert await parent.ask_metrics(timeout=1) is None  # a closed line answers nothing
