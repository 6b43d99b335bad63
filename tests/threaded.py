"""Run a trio server in a thread, so asyncio peers (the `ocpp` package) can talk to it, and
run those peers on a plain asyncio loop (:func:`run_asyncio`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import trio

T = TypeVar("T")


@contextmanager
def trio_in_thread(start: Callable[[trio.Nursery], Awaitable[T]]) -> Iterator[T]:
    """Start ``start(nursery)`` in a trio run on a thread; yield its result; cancel on exit."""
    ready = threading.Event()
    box: dict[str, object] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            try:
                box["value"] = await start(nursery)
            except BaseException as error:
                box["error"] = error
                ready.set()
                raise
            box["token"] = trio.lowlevel.current_trio_token()
            box["scope"] = nursery.cancel_scope
            ready.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    if not ready.wait(60):
        raise TimeoutError("the server thread did not start within 60 s")
    if "error" in box:
        raise RuntimeError("the server thread failed to start") from box["error"]  # type: ignore[arg-type]
    try:
        yield box["value"]  # type: ignore[misc]
    finally:
        scope = box["scope"]
        trio.from_thread.run_sync(scope.cancel, trio_token=box["token"])  # type: ignore[attr-defined,arg-type]
        thread.join(30)


def run_asyncio(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on a plain asyncio event loop.

    Why not ``asyncio.run``: importing trio_asyncio (Voltaro does) installs its event loop
    policy for the whole process, and from then on ``asyncio.run`` runs on trio-asyncio's
    ``SyncTrioEventLoop`` (a trio run in a greenlet behind an asyncio face). On it, a wakeup
    the peers scheduled was at times not run until unrelated I/O or a timer woke the loop:
    the `ocpp` package charger's listener, cancelled when a test's block ended, sat
    "cancelling" in websockets' ``recv()`` for minutes, the test with it (a local list test
    hung 15+ minutes in a full run; here 2 of 29 runs of one test stuck for 2-4 minutes on
    that loop, 0 of 40 on this one). The peers are ordinary asyncio code: they get an
    ordinary loop."""
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(main)
