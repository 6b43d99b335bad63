"""Frames a hostile or broken charger sends: nesting, line breaks meant for our log, ids no
URL can carry. Each gets its answer and the connection and the server carry on."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import trio

from tests.harness import LiveServer, RawCharger, start_test_server
from tests.test_rpc_server import core_handlers, handshake_rejection
from voltaro.logformat import FORMAT, OneLineFormatter, escape_controls
from voltaro.ocppj.endpoint import MAX_QUEUED_BYTES, InvalidResponse
from voltaro.ocppj.errors import ErrorCode
from voltaro.ocppj.frames import MAX_NESTING, FrameError, decode, nested_deeper_than


def nested_text(depth: int, inner: str = "{}") -> str:
    return "[" * depth + inner + "]" * depth


def test_decode_refuses_frames_nested_past_the_limit() -> None:
    # the frame is level 1, its payload 2, the arrays in it 3 and on: this reaches the limit
    within = f'[2,"ok","DataTransfer",{{"vendorId":"v","x":{nested_text(MAX_NESTING - 3)}}}]'
    assert decode(within).message_id == "ok"  # type: ignore[union-attr]
    for depth in (MAX_NESTING - 2, 253, 254, 300):
        text = f'[2,"deep","DataTransfer",{{"vendorId":"v","x":{nested_text(depth)}}}]'
        with pytest.raises(FrameError) as refused:
            decode(text)
        error = refused.value
        assert (error.code, error.message_id, error.answerable) == (
            ErrorCode.FORMATION_VIOLATION,
            "deep",
            True,
        )
        assert f"more than {MAX_NESTING} levels" in error.description
    with pytest.raises(FrameError) as answer:
        decode(f'[3,"deep",{{"x":{nested_text(300)}}}]')
    assert not answer.value.answerable  # never answered, but the id is known


def test_nesting_is_measured_without_recursion() -> None:
    value: object = []
    for _ in range(100_000):
        value = [value, {"a": 1}]
    assert nested_deeper_than(value, 50)
    assert not nested_deeper_than([[{"a": [1, 2]}], {"b": {}}], 4)
    assert nested_deeper_than([[{"a": [1, 2]}]], 3)
    assert not nested_deeper_than("text", 0)


@pytest.fixture
async def server(nursery: trio.Nursery) -> LiveServer:
    return await start_test_server(nursery, core_handlers, max_frame=4096, call_timeout=60.0)


@pytest.mark.parametrize("depth", [40, 254, 300, 1500])
async def test_a_nested_call_is_a_formation_violation_and_the_connection_stays(
    nursery: trio.Nursery, server: LiveServer, depth: int
) -> None:
    charger = await RawCharger.connect(nursery, server.url("NEST"))
    await charger.send_text(f'[2,"n1","DataTransfer",{{"vendorId":"v","x":{nested_text(depth)}}}]')
    answer = await charger.receive()
    # past orjson's own limit (1,024 levels) the frame is not JSON to it: no id to answer to
    assert answer[:3] == [4, "n1" if depth < 1000 else "-1", "FormationViolation"]
    assert (await charger.call("Heartbeat", {}))[0] == 3


async def test_a_nested_answer_to_our_call_fails_it_at_once(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    """Not after the call's 60 s timeout: the answer's id says whose it is."""
    charger = await RawCharger.connect(nursery, server.url("NEST-ANSWER"))
    endpoint = await server.endpoint("NEST-ANSWER")

    async def answer() -> None:
        request = await charger.receive()
        await charger.send_text(f'[3,"{request[1]}",{{"status":{nested_text(254, "1")}}}]')

    nursery.start_soon(answer)
    with trio.fail_after(10), pytest.raises(InvalidResponse, match="levels"):
        await endpoint.call("Reset", {"type": "Soft"})
    assert (await charger.call("Heartbeat", {}))[0] == 3


@pytest.mark.parametrize("path", ["/ocpp/.", "/ocpp/..", "/ocpp/%2E", "/ocpp/%2e%2E"])
async def test_dot_segments_are_no_charge_point_ids(
    nursery: trio.Nursery, server: LiveServer, path: str
) -> None:
    url = f"ws://127.0.0.1:{server.server.port}{path}"
    assert await handshake_rejection(url) == 404


# ---- log forging -----------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the voltaro loggers write through the formatter `voltaro serve` uses."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logger = logging.getLogger("voltaro")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


FORGED = "FORGED-LINE 2026-12-01 00:00:00,000 ERROR   voltaro.admin.server: owned"


async def test_a_frame_cannot_forge_log_lines(
    nursery: trio.Nursery, server: LiveServer, log_lines: io.StringIO
) -> None:
    charger = await RawCharger.connect(nursery, server.url("LOGGER"))
    for evil in (f'[2,"a\n{FORGED}"', f"junk\r\n{FORGED}\x1b[2J", f'{{"x": "\n{FORGED}"}}'):
        await charger.send_text(evil)
        assert (await charger.receive())[0] == 4
    assert (await charger.call("Heartbeat", {}))[0] == 3
    lines = log_lines.getvalue().splitlines()
    assert sum("bad frame" in line for line in lines) == 3
    assert not [line for line in lines if line.startswith("FORGED")]
    assert "\\nFORGED-LINE" in log_lines.getvalue()
    assert "\x1b" not in log_lines.getvalue()


def test_tracebacks_are_indented_under_their_record(log_lines: io.StringIO) -> None:
    log = logging.getLogger("voltaro.test")
    try:
        raise ValueError(f"bad input\n{FORGED}")
    except ValueError:
        log.exception("handler failed for %s", "CP\u2028X")
    first, *rest = log_lines.getvalue().splitlines()
    assert first.endswith("handler failed for CP\\u2028X")
    assert rest and all(line.startswith("  ") for line in rest)


def test_escape_controls_keeps_printable_text() -> None:
    assert escape_controls("Zoë's charger: 42 kWh") == "Zoë's charger: 42 kWh"
    assert escape_controls("a\tb\nc\x00\x7f\x85") == "a\\tb\\nc\\x00\\x7f\\x85"


async def test_calls_queued_beyond_the_byte_bound_are_refused(nursery: trio.Nursery) -> None:
    """OCPP-J allows one outstanding CALL; a peer that pipelines big ones may have at most
    MAX_QUEUED_BYTES of them waiting (besides the first), not 16 frames of any size."""
    server = await start_test_server(nursery, core_handlers, max_frame=65536, call_timeout=30.0)
    charger = await RawCharger.connect(nursery, server.url("PIPELINE"))
    await charger.send([2, "busy", "DataTransfer", {"vendorId": "v"}])
    callback = await charger.receive()  # the handler now waits for our answer to this
    assert callback[:3] == [2, callback[1], "GetConfiguration"]
    junk = "x" * (30 * 1024)
    count = MAX_QUEUED_BYTES // len(junk) + 1
    for n in range(count):
        await charger.send([2, f"big{n}", "Heartbeat", {"junk": junk}])
    refused = await charger.receive()
    assert refused[:3] == [4, f"big{count - 1}", "ProtocolError"]
    await charger.send([3, callback[1], {"configurationKey": []}])
    answers = [await charger.receive() for _ in range(count)]
    assert [a[1] for a in answers] == ["busy"] + [f"big{n}" for n in range(count - 1)]
    assert all(a[2] == "FormationViolation" for a in answers[1:])  # unknown property


def test_frames_logged_at_debug_show_no_authorization_key() -> None:
    from voltaro.central.sessions import _shown
    from voltaro.ocppj.frames import Call, CallResult

    change = Call("c1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "s3cret-key"})
    report = CallResult(
        "c2", {"configurationKey": [{"key": "authorizationkey", "readonly": False, "value": "k"}]}
    )
    other = Call("c3", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"})
    assert "s3cret-key" not in _shown(change, change.action)
    assert "(redacted)" in _shown(change, change.action)
    assert '"value":"k"' not in _shown(report, "GetConfiguration")
    assert '"value":"60"' in _shown(other, other.action)
