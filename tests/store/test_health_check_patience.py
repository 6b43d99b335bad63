"""The id tag cache's health check: a ping unanswered within its timeout is a loss, unless
notifications kept arriving on the connection meanwhile (its answer is queued behind a storm
of them), up to a limit."""

from __future__ import annotations

import trio

from voltaro.store.id_tags import answered_or_alive

TIMEOUT = 0.2
PATIENCE = 2.0


async def test_an_answer_in_time_is_alive() -> None:
    answered = trio.Event()
    answered.set()
    assert await answered_or_alive(answered, lambda: 0, TIMEOUT, PATIENCE)


async def test_no_answer_and_nothing_heard_is_a_loss(autojump_clock: trio.abc.Clock) -> None:
    assert not await answered_or_alive(trio.Event(), lambda: 0, TIMEOUT, PATIENCE)
    assert trio.current_time() == TIMEOUT  # given up at the first timeout


async def test_a_late_answer_behind_notifications_is_alive(
    autojump_clock: trio.abc.Clock,
) -> None:
    answered = trio.Event()
    heard = 0

    async def notifications_then_the_answer() -> None:
        nonlocal heard
        for _ in range(10):  # 1 s of notifications, five timeouts' worth
            await trio.sleep(TIMEOUT / 2)
            heard += 1
        answered.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(notifications_then_the_answer)
        assert await answered_or_alive(answered, lambda: heard, TIMEOUT, PATIENCE)


async def test_notifications_do_not_keep_it_alive_past_the_patience(
    autojump_clock: trio.abc.Clock,
) -> None:
    heard = 0

    async def notifications_for_ever() -> None:
        nonlocal heard
        while True:
            await trio.sleep(TIMEOUT / 2)
            heard += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(notifications_for_ever)
        assert not await answered_or_alive(trio.Event(), lambda: heard, TIMEOUT, PATIENCE)
        assert trio.current_time() == PATIENCE
        nursery.cancel_scope.cancel()
