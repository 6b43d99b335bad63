"""The sign-in counters (migration 0017) under concurrency: sign-ins begun at once on one
account, as from several instances, never get more attempts than its limit."""

import trio

from voltaro.store import Store
from voltaro.store.sign_in_attempts import Begun


async def test_concurrent_sign_ins_cannot_slip_past_the_limit(store: Store) -> None:
    outcomes: list[Begun] = []

    async def attempt(n: int) -> None:
        limits = {"account:ann": 3, f"address:10.0.0.{n}": 20}
        outcomes.append(await store.sign_in_attempts.begin(limits, 600))

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(attempt, n)
    counted = [o for o in outcomes if o.retry_after == 0]
    refused = [o for o in outcomes if o.retry_after > 0]
    assert len(counted) == 3 and len(refused) == 17
    assert sum(1 for o in counted if o.at_limit == ("account:ann",)) == 1
    assert all(o.blocked == ("account:ann",) for o in refused)
    assert sum(o.first_refusal for o in refused) == 1
    assert await store.sign_in_attempts.count("account:ann") == 3
    # the refused ones were not counted against their addresses either
    counts = [await store.sign_in_attempts.count(f"address:10.0.0.{n}") for n in range(20)]
    assert sorted(counts) == [0] * 17 + [1] * 3


async def test_a_limit_of_zero_counts_nothing(store: Store) -> None:
    for _ in range(5):
        begun = await store.sign_in_attempts.begin({"account:ann": 0}, 600)
        assert begun == Begun(0.0)
    assert await store.sign_in_attempts.count("account:ann") == 0
