"""Run a trio server in a thread, so asyncio peers (the `ocpp` package) can talk to it."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

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
