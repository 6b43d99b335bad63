"""The feature profiles' background tasks, kept running for as long as the central system
runs (see "Tasks and events" in :mod:`voltaro.central.profile`).

Error handling
--------------
A task that raises is logged with its traceback and started again after a back-off that
doubles from :data:`FIRST_BACKOFF` up to :data:`MAX_BACKOFF` seconds (a task that ran for
longer than :data:`MAX_BACKOFF` before it failed starts over from the first back-off): a
bug or a database outage in one profile's task never takes the server down, and never
spins. A task that returns is done and is not started again. Cancellation (the central
system stopping) ends every task.
"""

from __future__ import annotations

import logging

import trio

from voltaro.central.profile import Profile, ProfileContext, ProfileTask

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0  # seconds before a failed task is started again
MAX_BACKOFF = 60.0  # seconds: the longest wait between restarts


async def run_profile_tasks(
    profiles: tuple[Profile, ...],
    context: ProfileContext,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run every profile's tasks with ``context`` until cancelled (reports started at once)."""
    async with trio.open_nursery() as nursery:
        for profile in profiles:
            for task in profile.tasks:
                name = f"{profile.name}.{getattr(task, '__name__', 'task')}"
                nursery.start_soon(supervised, name, task, context, name=name)
        task_status.started()


async def supervised(name: str, task: ProfileTask, context: ProfileContext) -> None:
    """Run ``task`` until it returns; restart it after a back-off whenever it raises."""
    backoff = FIRST_BACKOFF
    while True:
        started = trio.current_time()
        try:
            await task(context)
        except Exception:
            if trio.current_time() - started > MAX_BACKOFF:
                backoff = FIRST_BACKOFF
            log.exception("profile task %s failed; starting it again in %.0f s", name, backoff)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
        else:
            log.debug("profile task %s finished", name)
            return
