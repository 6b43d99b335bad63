"""The WebSocket connection (voltaro.transport.websocket) over real sockets: our client against
our server, a hand-driven wsproto peer for what well-behaved clients never send."""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Event, Request, TextMessage

from voltaro.ocppj.endpoint import ChannelClosed
from voltaro.transport.websocket import (
    HandshakeFailed,
    UpgradeRequest,
    WebSocket,
    open_client,
    read_upgrade_request,
)

Answer = Callable[[UpgradeRequest], Awaitable[None]]
E = TypeVar("E", bound=Event)


async def serve(nursery: trio.Nursery, answer: Answer, *, max_message: int = 65536) -> int:
    """A listener whose every connection is read up to its upgrade request and ``answer``ed."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            request = await read_upgrade_request(stream, max_message=max_message)
            if request is not None:
                await answer(request)

    listeners = await nursery.start(trio.serve_tcp, handle, 0)
    return int(listeners[0].socket.getsockname()[1])


async def echo(request: UpgradeRequest) -> None:
    websocket = await request.accept("ocpp1.6")
    try:
        while True:
            await websocket.send(await websocket.receive())
    except ChannelClosed:
        return


async def client(port: int, path: str = "/ocpp/CP1") -> tuple[WebSocket, trio.SocketStream]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    websocket = await open_client(stream, f"127.0.0.1:{port}", path, subprotocols=["ocpp1.6"])
    return websocket, stream


async def test_messages_go_both_ways_and_the_close_handshake_completes(
    nursery: trio.Nursery,
) -> None:
    port = await serve(nursery, echo)
    websocket, stream = await client(port)
    assert websocket.subprotocol == "ocpp1.6"
    for text in ['[2,"1","Heartbeat",{}]', "ü" * 30000]:
        await websocket.send(text)
        assert await websocket.receive() == text
    with trio.fail_after(5):
        await websocket.aclose(1000, "bye")
    assert websocket.closed is not None and websocket.closed.code == 1000
    with pytest.raises(ChannelClosed):
        await websocket.send("after the close")
    await stream.aclose()


async def test_ping_returns_when_the_pong_arrives(nursery: trio.Nursery) -> None:
    port = await serve(nursery, echo)
    websocket, stream = await client(port)
    async with trio.open_nursery() as reading:
        reading.start_soon(websocket.receive)  # pongs are read by whoever receives
        with trio.fail_after(5):
            await websocket.ping()
        reading.cancel_scope.cancel()
    await stream.aclose()


@pytest.mark.parametrize("sent", ["with the connect", "once the server waits"])
async def test_the_upgrade_request_is_read_when_it_came_before_or_after_the_server_looked(
    nursery: trio.Nursery, sent: str
) -> None:
    """The server takes a request already there without waiting for the socket, and waits
    for one that is not."""
    port = await serve(nursery, echo)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    peer = WSConnection(ConnectionType.CLIENT)
    request = peer.send(Request(host="127.0.0.1", target="/ocpp/CP1", subprotocols=["ocpp1.6"]))
    if sent == "once the server waits":
        await trio.testing.wait_all_tasks_blocked()
    await stream.send_all(request)
    accepted = await _next_event(peer, stream, AcceptConnection)
    assert accepted.subprotocol == "ocpp1.6"
    await stream.send_all(peer.send(TextMessage('[2,"1","Heartbeat",{}]')))
    assert await _next_text(peer, stream) == '[2,"1","Heartbeat",{}]'
    await stream.aclose()


async def test_a_refused_handshake_gives_the_status_and_body(nursery: trio.Nursery) -> None:
    async def refuse(request: UpgradeRequest) -> None:
        await request.reject(404, [], b"Not Found: unknown charge point\n")

    port = await serve(nursery, refuse)
    with pytest.raises(HandshakeFailed) as refused:
        await client(port)
    assert refused.value.status_code == 404
    assert refused.value.body == b"Not Found: unknown charge point\n"


async def test_plain_http_is_answered_400_and_raises(nursery: trio.Nursery) -> None:
    failures: list[BaseException] = []

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await read_upgrade_request(stream, max_message=1024)
        except HandshakeFailed as error:
            failures.append(error)
        await stream.aclose()

    listeners = await nursery.start(trio.serve_tcp, handle, 0)
    port = listeners[0].socket.getsockname()[1]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"GET /ocpp/CP1 HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some():
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(
        b"Bad Request: expected a WebSocket upgrade (Missing header, 'Connection: Upgrade')\n"
    )
    assert len(failures) == 1 and "Connection: Upgrade" in str(failures[0])


async def test_a_fragmented_message_is_put_together(nursery: trio.Nursery) -> None:
    port = await serve(nursery, echo)
    peer, stream = await _raw_client(port)
    await stream.send_all(
        peer.send(TextMessage('[2,"7","Heart', message_finished=False))
        + peer.send(TextMessage('beat",{}]', message_finished=True))
    )
    assert await _next_text(peer, stream) == '[2,"7","Heartbeat",{}]'
    await stream.aclose()


async def test_a_message_over_the_limit_closes_with_1009(nursery: trio.Nursery) -> None:
    port = await serve(nursery, echo, max_message=100)
    peer, stream = await _raw_client(port)
    for _ in range(3):  # fragments: the limit is on the whole message
        await stream.send_all(peer.send(TextMessage("x" * 40, message_finished=False)))
    assert (await _close_of(peer, stream)).code == 1009


async def test_an_unmasked_client_frame_closes_with_1002(nursery: trio.Nursery) -> None:
    port = await serve(nursery, echo)
    peer, stream = await _raw_client(port)
    await stream.send_all(b"\x81\x02hi")  # a text frame without the mask clients must set
    assert (await _close_of(peer, stream)).code == 1002


async def test_no_write_reaches_a_socket_once_its_owner_closed_it(
    nursery: trio.Nursery,
) -> None:
    """The descriptor number may already belong to a newer connection."""
    port = await serve(nursery, echo)
    websocket, stream = await client(port)
    fd = stream.socket.fileno()
    await stream.aclose()
    newer, _ = await client(port)
    os.fstat(fd)  # reused (lowest free number) by one end of the newer connection
    with pytest.raises(ChannelClosed):
        await websocket.send("too late")
    await newer.send("mine")
    assert await newer.receive() == "mine"  # the echo of "too late" would come first
    with trio.fail_after(5):
        await websocket.aclose()  # nothing to close any more: returns, does not raise
    with pytest.raises(ChannelClosed):
        await websocket.receive()


async def test_the_peer_vanishing_ends_receive_with_1006(nursery: trio.Nursery) -> None:
    accepted: list[WebSocket] = []
    done = trio.Event()

    async def hold(request: UpgradeRequest) -> None:
        accepted.append(await request.accept("ocpp1.6"))
        with pytest.raises(ChannelClosed):
            await accepted[0].receive()
        done.set()

    port = await serve(nursery, hold)
    _, stream = await _raw_client(port)
    await stream.aclose()  # no close frame
    with trio.fail_after(5):
        await done.wait()
    assert accepted[0].closed is not None and accepted[0].closed.code == 1006


async def test_an_open_connection_keeps_no_deque_for_wsprotos_rare_events(
    nursery: trio.Nursery,
) -> None:
    """wsproto queues one kind of event outside frames, a lost connection's 1006 (the test
    above), and its deque for it was ~0.6 KiB on every connection: both ends keep a small
    list instead."""
    accepted: list[WebSocket] = []
    opened = trio.Event()

    async def hold(request: UpgradeRequest) -> None:
        accepted.append(await request.accept("ocpp1.6"))
        opened.set()
        await trio.sleep_forever()

    port = await serve(nursery, hold)
    websocket, stream = await client(port)
    with trio.fail_after(5):
        await opened.wait()
    for end in (websocket, accepted[0]):
        events = end._protocol._events  # type: ignore[attr-defined]
        assert not isinstance(events, deque)
        assert sys.getsizeof(events) < 100
    await stream.aclose()


async def test_a_peer_that_never_answers_our_close_is_dropped(nursery: trio.Nursery) -> None:
    """A dead TCP connection, say: the reader waiting on it must end, not wait forever."""
    accepted: list[WebSocket] = []
    reader_ended = trio.Event()

    async def close_unanswered(request: UpgradeRequest) -> None:
        websocket = await request.accept("ocpp1.6")
        accepted.append(websocket)

        async def read() -> None:
            with pytest.raises(ChannelClosed):
                await websocket.receive()
            reader_ended.set()

        async with trio.open_nursery() as inner:
            inner.start_soon(read)
            await trio.sleep(0.05)  # the reader is waiting on the socket
            with trio.move_on_after(0.3):
                await websocket.aclose(1008, "replaced")

    port = await serve(nursery, close_unanswered)
    peer, stream = await _raw_client(port)
    assert (await _close_of(peer, stream)).code == 1008  # received, never answered
    with trio.fail_after(5):
        await reader_ended.wait()
        assert await stream.receive_some() == b""  # and the TCP connection is gone
    closed = accepted[0].closed
    assert closed is not None and closed.code == 1006


async def test_a_send_cancelled_while_queued_leaves_the_connection_usable(
    nursery: trio.Nursery,
) -> None:
    """Only a frame cut off halfway breaks the stream; one that never started does not."""
    start_reading = trio.Event()
    received: list[str | bytes] = []

    async def read_later(request: UpgradeRequest) -> None:
        websocket = await request.accept("ocpp1.6")
        await start_reading.wait()
        for _ in range(2):
            received.append(await websocket.receive())

    port = await serve(nursery, read_later, max_message=8 << 20)
    websocket, stream = await client(port)
    big = "x" * (4 << 20)  # more than the socket buffers hold: the send has to wait
    nursery.start_soon(websocket.send, big)
    await trio.sleep(0.1)
    with trio.move_on_after(0.1) as queued:
        await websocket.send("cancelled while waiting its turn")
    assert queued.cancelled_caught
    start_reading.set()
    with trio.fail_after(10):
        await websocket.send("after")
        while len(received) < 2:
            await trio.sleep(0.01)
    assert received == [big, "after"]
    await stream.aclose()


async def _raw_client(port: int) -> tuple[WSConnection, trio.SocketStream]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    peer = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(
        peer.send(Request(host="127.0.0.1", target="/ocpp/RAW", subprotocols=["ocpp1.6"]))
    )
    await _next_event(peer, stream, AcceptConnection)
    return peer, stream


async def _next_text(peer: WSConnection, stream: trio.SocketStream) -> str:
    event = await _next_event(peer, stream, TextMessage)
    assert event.message_finished
    return str(event.data)


async def _close_of(peer: WSConnection, stream: trio.SocketStream) -> CloseConnection:
    return await _next_event(peer, stream, CloseConnection)


async def _next_event(peer: WSConnection, stream: trio.SocketStream, kind: type[E]) -> E:
    """Read until the hand-driven peer sees an event of ``kind`` (others are skipped)."""
    with trio.fail_after(5):
        while True:
            peer.receive_data(await stream.receive_some())
            for event in peer.events():
                if isinstance(event, kind):
                    return event
