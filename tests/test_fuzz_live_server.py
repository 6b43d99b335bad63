"""Arbitrary text and bytes sent to a live server get a CALLERROR or nothing, never a crash,
and the same connection then still answers a valid Heartbeat."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import RawCharger, start_test_server
from tests.test_rpc_server import core_handlers

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
actions = st.sampled_from(
    ["Heartbeat", "BootNotification", "Authorize", "MeterValues", "Reset", "Nope", ""]
)
# Frames that look like OCPP: the right shape with random parts, so the decoder's deeper
# branches are reached, not only "not JSON".
ocpp_like = st.one_of(
    st.tuples(st.just(2), st.text(max_size=40), actions, json_values).map(list),
    st.tuples(st.integers(-1, 6), json_values, json_values).map(list),
    st.lists(json_values, max_size=6),
).map(lambda frame: orjson.dumps(frame).decode())
messages = st.one_of(st.text(max_size=300), st.binary(max_size=300), ocpp_like)
probe_ids = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, min_size=1, max_size=40))
def test_random_frames_never_break_the_connection(batch: list[str | bytes]) -> None:
    trio.run(_send_batch_then_heartbeat, batch)


async def _send_batch_then_heartbeat(batch: list[str | bytes]) -> None:
    async with trio.open_nursery() as nursery:
        server = await start_test_server(nursery, core_handlers, max_frame=65536)
        charger = await RawCharger.connect(nursery, server.url("FUZZ"))
        for message in batch:
            await charger.send_text(message)
        probe = f"probe-{next(probe_ids)}"
        await charger.send([2, probe, "Heartbeat", {}])
        while True:
            frame: list[Any] = await charger.receive()
            if frame[1] == probe:
                assert frame[0] == 3, frame
                break
            # Anything before the probe's answer answers one of the random frames.
            assert frame[0] in (3, 4), frame
            if frame[0] == 4:
                assert isinstance(frame[2], str) and frame[3], frame
        await charger.close()
        nursery.cancel_scope.cancel()
