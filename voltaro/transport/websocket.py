"""A WebSocket connection on wsproto, read and written straight off the socket.

Used by both ends: the server's charge point connections and the simulator's chargers.

Why not trio-websocket, which DESIGN starts from (it stays as a test peer and in the echo
benchmark): it runs a reader task per connection that hands each message on through a
channel, and goes through trio's ``SocketStream``. Per OCPP message that cost the server
0.11-0.18 ms of CPU; reading and writing the socket here costs 0.055-0.065 ms (an echo server
each way, driven by ``voltaro simulate --profile throughput``). So there is no reader task: the
task that wants the next message waits for the socket to be readable, reads what is there
and feeds wsproto. Writes go out at once with ``os.write`` while the socket takes them; only a
write that would block waits, and while it does, later writes queue behind it in order.

Every read and write asks the socket for its descriptor first: once the connection's owner
has closed the socket the answer is -1, and the number can never reach a newer connection
that the kernel gave the same descriptor.

Over TLS (``wss://``) the bytes go through ``trio.SSLStream`` instead (:class:`_StreamIO`):
the encryption needs trio's stream layer, and costs its price.

A server's connection may pace what its peer sends (:class:`InboundLimit`, a token bucket):
while the bucket is empty its reader does not read the socket, so the kernel's buffers fill,
TCP tells the sender to wait, and the server holds nothing more than one read. A flood is
slowed down at its source, never buffered, and nothing that was sent is dropped.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import (
    LocalProtocolError,
    RemoteProtocolError,
    generate_accept_token,
    split_comma_header,
)

from voltaro.ocppj.endpoint import ChannelClosed, wire_size
from voltaro.ondemand import OnDemandLock

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_ABNORMAL = 1006  # never sent: the peer vanished without a close frame
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009

READ_SIZE = 65536
# What a frame costs in the inbound token bucket besides its bytes: a frame's handling has a
# fixed price (parsing, a task switch, a log row), so a flood of tiny frames is paced too.
# About the size of a small OCPP message with its frame; a MeterValues of ~1.7 KB costs ~2.7 KB.
FRAME_COST = 1024
# The server's inbound limit by default: 256 KiB/s a connection, far above any real charger's
# traffic and ~3.5 times what a charger of benchmark (a) sends (~26 MeterValues/s of ~2.7 KB
# with their frame cost, one outstanding call); 4 MiB at once, a charger's replay of a few
# thousand queued transaction messages after a reconnect (README, Configuration).
INBOUND_RATE = 262_144
INBOUND_BURST = 4_194_304


@dataclass(frozen=True, slots=True)
class InboundLimit:
    """How fast a peer may send: ``rate`` bytes a second on average and up to ``burst`` bytes
    at once, each frame costing :data:`FRAME_COST` bytes more than its length."""

    rate: float
    burst: float


class PacingTotals:
    """Counted across connections (the server's): reads that waited for tokens."""

    def __init__(self) -> None:
        self.paced_reads = 0


class ReadPacer:
    """One connection's token bucket (:class:`InboundLimit`). The bucket may go into debt by
    one read (the reader cannot know a read's size before it is made); the next read waits
    until the debt is paid back."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens", "_totals", "paced_reads")

    def __init__(self, limit: InboundLimit, totals: PacingTotals | None = None) -> None:
        self._rate = limit.rate
        self._burst = limit.burst
        self._tokens = limit.burst
        self._stamp = trio.current_time()
        self._totals = totals
        self.paced_reads = 0

    def spend(self, amount: int) -> None:
        self._tokens -= amount

    async def wait_for_tokens(self) -> None:
        """Return once the bucket is out of debt (at once, without a checkpoint, when it is)."""
        now = trio.current_time()
        tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens = tokens
        if tokens >= 0:
            return
        self.paced_reads += 1
        if self._totals is not None:
            self._totals.paced_reads += 1
        await trio.sleep(-tokens / self._rate)  # the next call counts the time slept


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """How a connection ended: the close frame's code and reason (1006: no close frame)."""

    code: int
    reason: str


class HandshakeFailed(Exception):
    """The opening handshake did not complete: refused with HTTP ``status_code``, or broken
    (``status_code`` None)."""

    def __init__(self, reason: str, status_code: int | None = None, body: bytes = b"") -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.body = body


class _SocketIO:
    """Reads and writes of one connected socket for trio, without trio's stream layer."""

    __slots__ = ("_send_lock", "_socket", "broken")

    def __init__(self, stream: trio.SocketStream) -> None:
        self._socket = stream.socket
        self._send_lock = OnDemandLock()
        self.broken = False  # a write was cut off mid-frame: nothing more may be written

    async def read(self) -> bytes:
        """The next bytes from the peer; b"" when it has closed or reset the connection."""
        while True:
            fd = self._socket.fileno()
            if fd < 0:
                return b""
            try:
                await trio.lowlevel.wait_readable(fd)
            except trio.ClosedResourceError:
                return b""
            try:
                return os.read(self._socket.fileno(), READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                return b""

    def read_now(self) -> bytes | None:
        """What the peer sent already, without waiting: None when nothing is there yet, b""
        when it has closed or reset the connection."""
        fd = self._socket.fileno()
        if fd < 0:
            return b""
        try:
            return os.read(fd, READ_SIZE)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` after every earlier write; ChannelClosed if it cannot be."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.broken:
            raise ChannelClosed
        remaining = data
        try:
            if not self._send_lock.locked():
                remaining = self._write_now(data)
                if not remaining:
                    return
            async with self._send_lock:
                while remaining:
                    await trio.lowlevel.wait_writable(self._fd())
                    remaining = self._write_now(remaining)
        except BaseException:
            # cancelled (say) with part of the frame sent: the stream is cut mid-frame
            self.broken = self.broken or 0 < len(remaining) < len(data)
            raise

    def abort(self) -> None:
        """Close the socket now (its owner's later close does nothing more); a task waiting
        to read or write on it wakes up."""
        self._socket.close()

    def _write_now(self, data: bytes) -> bytes:
        try:
            written = os.write(self._fd(), data)
        except BlockingIOError:
            return data
        except OSError:
            self.broken = True
            raise ChannelClosed from None
        return data[written:]

    def _fd(self) -> int:
        fd = self._socket.fileno()
        if fd < 0:
            raise ChannelClosed
        return fd


class _StreamIO:
    """Reads and writes of any trio stream (a TLS one: ``trio.SSLStream``), with the same
    meaning as :class:`_SocketIO`'s."""

    def __init__(self, stream: trio.abc.Stream, socket: trio.socket.SocketType) -> None:
        self._stream = stream
        self._socket = socket  # underneath: what abort() closes
        self._send_lock = OnDemandLock()
        self.broken = False

    async def read(self) -> bytes:
        try:
            return bytes(await self._stream.receive_some(READ_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    @staticmethod
    def read_now() -> bytes | None:
        return None  # TLS records are read through the stream, never around it

    async def write(self, data: bytes) -> None:
        if self.broken:
            raise ChannelClosed
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.broken = True
                raise ChannelClosed from None
            except BaseException:
                self.broken = True  # cancelled mid-record: a TLS stream cannot go on
                raise

    def abort(self) -> None:
        self._socket.close()


_ByteIO = _SocketIO | _StreamIO


def _io_for(stream: trio.abc.Stream) -> _ByteIO:
    if isinstance(stream, trio.SocketStream):
        return _SocketIO(stream)
    if isinstance(stream, trio.SSLStream) and isinstance(
        stream.transport_stream, trio.SocketStream
    ):
        return _StreamIO(stream, stream.transport_stream.socket)
    raise TypeError(f"a WebSocket needs a socket or TLS-over-socket stream, not {stream!r}")


class WebSocket:
    """An open WebSocket connection; a :class:`voltaro.ocppj.endpoint.MessageChannel`.

    One task at a time receives (the RPC endpoint's reader); any task may send, ping or
    close. The owner of the socket closes it when the connection's work is over.
    """

    __slots__ = (
        "_inbox",
        "_io",
        "_max_message",
        "_pacer",
        "_parts",
        "_pong_waiters",
        "_protocol",
        "_read_lock",
        "_size",
        "closed",
        "messages_received",
        "on_pong",
        "pongs",
        "subprotocol",
    )

    def __init__(
        self,
        io: _ByteIO,
        protocol: Connection,
        *,
        max_message: int,
        subprotocol: str | None,
        pacer: ReadPacer | None = None,
    ) -> None:
        self._io = io
        self._protocol = protocol
        self._max_message = max_message
        self._pacer = pacer
        self.subprotocol = subprotocol
        self.closed: CloseInfo | None = None
        # Made when needed and dropped when empty: an idle connection holds none of them
        # (each deque is ~0.7 KiB).
        self._inbox: deque[str | bytes] | None = None
        self._parts: list[str | bytes] | None = None  # of a fragmented message
        self._size = 0
        self._read_lock = OnDemandLock()
        self._pong_waiters: deque[trio.Event] | None = None
        self.pongs = 0  # pongs received
        self.messages_received = 0  # text and binary messages (the keepalive's sign of life)
        self.on_pong: Callable[[], None] | None = None
        """Called at each pong received."""

    @property
    def paced_reads(self) -> int:
        """Reads that waited for the inbound limit's tokens (0 without a limit)."""
        return 0 if self._pacer is None else self._pacer.paced_reads

    @property
    def is_closed(self) -> bool:
        return self.closed is not None

    async def receive(self) -> str | bytes:
        """The next message; ChannelClosed once the connection is closed."""
        while not self._inbox:
            if self.closed is not None:
                raise ChannelClosed
            await self._read_once()
        inbox = self._inbox
        assert inbox is not None
        message = inbox.popleft()
        if not inbox:
            self._inbox = None
        return message

    async def send(self, text: str) -> None:
        await self._send_event(TextMessage(text))

    async def take_early_frames(self) -> None:
        """Act on frames that arrived together with the handshake's answer."""
        await self._handle_events()

    async def ping(self) -> None:
        """Ping and wait for the pong (someone must be receiving meanwhile)."""
        answered = trio.Event()
        if self._pong_waiters is None:
            self._pong_waiters = deque()
        self._pong_waiters.append(answered)
        await self.send_ping()
        await answered.wait()

    async def send_ping(self) -> None:
        """Ping without waiting for the pong (:attr:`pongs` counts them)."""
        await self._send_event(Ping(b"voltaro"))

    async def aclose(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame and wait for the peer's (bound this with a timeout). If it does
        not come, the TCP connection is dropped: whoever is receiving gets ChannelClosed."""
        if self.closed is not None:
            return
        try:
            if self._protocol.state is ConnectionState.OPEN:
                await self._send_event(CloseConnection(code, reason))
            while self.closed is None:
                await self._read_once()
        except ChannelClosed:
            pass
        finally:
            if self.closed is None:
                self.closed = CloseInfo(CLOSE_ABNORMAL, "the closing handshake did not complete")
                self._io.abort()

    def abort(self, reason: str) -> None:
        """Drop the TCP connection without a closing handshake (close code 1006, ``reason``):
        whoever is receiving gets ChannelClosed."""
        if self.closed is None:
            self.closed = CloseInfo(CLOSE_ABNORMAL, reason)
        self._io.abort()

    async def _send_event(self, event: Event) -> None:
        if self.closed is not None:
            raise ChannelClosed
        try:
            data = self._protocol.send(event)
        except LocalProtocolError:  # a close frame went out already
            raise ChannelClosed from None
        await self._io.write(data)

    async def _read_once(self) -> None:
        """Read what the peer sent and act on it; the read lock keeps one reader at a time
        (``aclose`` reads too, waiting for the peer's close frame)."""
        if self._read_lock.locked():
            await self._read_lock.acquire()
        else:
            self._read_lock.acquire_nowait()
        try:
            if self.closed is not None:
                return
            pacer = self._pacer
            if pacer is not None:
                await pacer.wait_for_tokens()
            data = await self._io.read()
            if self.closed is not None:  # aclose gave up on the peer meanwhile
                return
            if not data:
                self._protocol.receive_data(None)
            else:
                self._protocol.receive_data(data)
                if pacer is not None:
                    pacer.spend(len(data))
            await self._handle_events()
        finally:
            self._read_lock.release()

    async def _handle_events(self) -> None:
        pacer = self._pacer
        for event in self._protocol.events():
            if pacer is not None:
                pacer.spend(FRAME_COST)
            if isinstance(event, TextMessage):
                await self._add_part(event.data, event.message_finished)
            elif isinstance(event, BytesMessage):
                await self._add_part(bytes(event.data), event.message_finished)
            elif isinstance(event, Ping):
                await self._send_quietly(event.response())
            elif isinstance(event, Pong):
                self.pongs += 1
                if self.on_pong is not None:
                    self.on_pong()
                waiters = self._pong_waiters
                if waiters:
                    waiters.popleft().set()
            elif isinstance(event, CloseConnection):
                await self._on_close(event)
            if self.closed is not None:
                return

    async def _add_part(self, data: str | bytes, finished: bool) -> None:
        # the limit is in bytes, and wsproto hands text on decoded (65,000 four-byte
        # characters are 260,000 bytes)
        self._size += wire_size(data)
        if self._size > self._max_message:
            await self._fail(CLOSE_MESSAGE_TOO_BIG, f"message over {self._max_message} bytes")
            return
        parts = self._parts
        if finished:
            message = data if parts is None else _joined([*parts, data])
            self._parts, self._size = None, 0
            self.messages_received += 1
            if self._inbox is None:
                self._inbox = deque()
            self._inbox.append(message)
        elif parts is None:
            self._parts = [data]
        else:
            parts.append(data)

    async def _on_close(self, event: CloseConnection) -> None:
        state = self._protocol.state
        if state is ConnectionState.REMOTE_CLOSING:  # the peer closes: answer in kind
            await self._send_quietly(event.response())
        elif state is ConnectionState.OPEN:  # wsproto's verdict on a frame it cannot parse
            await self._fail(event.code, event.reason or "")
            return
        self.closed = CloseInfo(event.code, event.reason or "")

    async def _fail(self, code: int, reason: str) -> None:
        self.closed = CloseInfo(code, reason)
        await self._send_quietly(CloseConnection(code, reason))

    async def _send_quietly(self, event: Event) -> None:
        """Send a control frame the protocol calls for; a peer already gone is no matter."""
        with contextlib.suppress(ChannelClosed, LocalProtocolError):
            await self._io.write(self._protocol.send(event))


def _joined(parts: list[str | bytes]) -> str | bytes:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], str):
        return "".join(cast(list[str], parts))
    return b"".join(cast(list[bytes], parts))


# -- opening handshakes ---------------------------------------------------------------------


class UpgradeRequest:
    """A client's opening handshake, read by :func:`read_upgrade_request`; answer it with
    :meth:`accept` or :meth:`reject`.

    Read by wsproto (``handshake``), or by :func:`_plain_upgrade` (``plain``): then the
    answers are written here too, in the form wsproto gives them."""

    def __init__(
        self,
        io: _ByteIO,
        handshake: WSConnection | None,
        request: Request | _PlainUpgrade,
        max_message: int,
        pacer: ReadPacer | None = None,
    ) -> None:
        self._io = io
        self._handshake = handshake
        self._plain = request if isinstance(request, _PlainUpgrade) else None
        self._max_message = max_message
        self._pacer = pacer
        self.path = request.target
        self.headers: list[tuple[bytes, bytes]] = list(request.extra_headers)
        self.proposed_subprotocols: list[str] = list(request.subprotocols)

    async def accept(self, subprotocol: str | None = None) -> WebSocket:
        plain = self._plain
        if plain is None:
            assert self._handshake is not None
            await self._io.write(self._handshake.send(AcceptConnection(subprotocol=subprotocol)))
            protocol = self._handshake.connection
            assert protocol is not None  # the handshake completed
        else:
            if subprotocol is not None and subprotocol not in plain.subprotocols:
                raise LocalProtocolError(f"unexpected subprotocol {subprotocol}")
            await self._io.write(plain.accepted(subprotocol))
            protocol = Connection(ConnectionType.SERVER, trailing_data=plain.trailing)
        return await _opened(self._io, protocol, self._max_message, subprotocol, self._pacer)

    async def reject(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
    ) -> None:
        if self._handshake is not None:
            await _send_rejection(self._io, self._handshake, status, headers, body)
            return
        lines = [b"HTTP/1.1 %d \r\n" % status]
        lines += [b"%s: %s\r\n" % header for header in headers]
        lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
        await self._io.write(b"".join(lines) + body)


# What _plain_upgrade accepts; anything else goes to h11, which knows every rule of HTTP
# and answers what breaks them.
_TARGET = re.compile(rb"[\x21-\x7e]+")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\x20-\x7e\t]*")
_MAX_PLAIN_REQUEST = 16384  # h11's limit on a request's head
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})
_SINGLE_HEADERS = frozenset({b"upgrade", b"sec-websocket-key", b"sec-websocket-version"})


@dataclass(slots=True)
class _PlainUpgrade:
    """A complete, plain upgrade request: what wsproto's ``Request`` would say of it."""

    target: str
    key: bytes
    extra_headers: list[tuple[bytes, bytes]]
    subprotocols: list[str]
    trailing: bytes

    def accepted(self, subprotocol: str | None) -> bytes:
        """The 101 answer, as wsproto writes it."""
        answer = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + generate_accept_token(self.key)
        )
        if subprotocol is not None:
            answer += b"\r\nSec-WebSocket-Protocol: " + subprotocol.encode("ascii")
        return answer + b"\r\n\r\n"


def _plain_upgrade(data: bytes) -> _PlainUpgrade | None:
    """``data`` as a WebSocket upgrade request when it is a whole one, plainly written: a
    GET of HTTP/1.1 with the headers wsproto requires, no body, no folded or odd header
    lines, no extensions asked for. None otherwise (then h11 and wsproto read it).

    Why: h11 and wsproto's handshake cost a quarter of the server's time per charger
    connecting (py-spy under benchmark (h)), and every charger sends this one form."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or end > _MAX_PLAIN_REQUEST:
        return None
    lines = data[:end].split(b"\r\n")
    method, _, rest = lines[0].partition(b" ")
    target, _, version = rest.partition(b" ")
    if method != b"GET" or version != b"HTTP/1.1" or not _TARGET.fullmatch(target):
        return None
    headers: list[tuple[bytes, bytes]] = []
    fields: dict[bytes, bytes] = {}
    subprotocols: list[str] = []
    connection: list[str] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        if not colon or not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            return None
        name = name.lower()
        if name in _BODY_HEADERS or name == b"sec-websocket-extensions":
            return None
        if name == b"sec-websocket-protocol":
            subprotocols.extend(split_comma_header(value))
            continue
        if name == b"host":
            if name in fields:
                return None
            fields[name] = value
            continue
        if name == b"connection":
            connection.extend(split_comma_header(value))
        elif name in fields and name in _SINGLE_HEADERS:
            return None
        fields[name] = value
        headers.append((name, value))
    key = fields.get(b"sec-websocket-key")
    if (
        key is None
        or b"host" not in fields
        or fields.get(b"sec-websocket-version") != b"13"
        or fields.get(b"upgrade", b"").lower() != b"websocket"
        or not any(token.lower() == "upgrade" for token in connection)
    ):
        return None
    return _PlainUpgrade(target.decode("ascii"), key, headers, subprotocols, data[end + 4 :])


async def read_upgrade_request(
    stream: trio.abc.Stream, *, max_message: int, pacer: ReadPacer | None = None
) -> UpgradeRequest | None:
    """Read a client's opening handshake (``stream``: a socket's, or TLS over one). None when
    the client left first; a request that is not a WebSocket upgrade (or over h11's 16 KiB)
    is answered 400 or 426 and raises :class:`HandshakeFailed`. ``pacer``: the accepted
    WebSocket's inbound limit (none: unlimited)."""
    io = _io_for(stream)
    # A client sends its request as soon as it is connected, and it is mostly there by the
    # time the connection is accepted: taken at once, without registering the socket with
    # epoll and waiting a scheduling round for it (the callers await more before they are
    # done, so this is no way around a checkpoint).
    data = io.read_now()
    if data is None:
        data = await io.read()
    plain = _plain_upgrade(data)
    if plain is not None:
        return UpgradeRequest(io, None, plain, max_message, pacer)
    handshake = WSConnection(ConnectionType.SERVER)
    while True:
        try:
            handshake.receive_data(data or None)
            for event in handshake.events():
                if isinstance(event, Request):
                    return UpgradeRequest(io, handshake, event, max_message, pacer)
        except RemoteProtocolError as error:
            hint = error.event_hint
            if isinstance(hint, RejectConnection):
                body = f"Bad Request: expected a WebSocket upgrade ({error})\n".encode()
                with contextlib.suppress(ChannelClosed, LocalProtocolError):
                    await _send_rejection(io, handshake, hint.status_code, hint.headers, body)
            raise HandshakeFailed(f"not a WebSocket upgrade: {error}") from None
        if not data:
            return None
        data = await io.read()


async def _send_rejection(
    io: _ByteIO,
    handshake: WSConnection,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    headers = [*headers, (b"Content-Length", str(len(body)).encode())]
    data = handshake.send(RejectConnection(status_code=status, headers=headers, has_body=True))
    data += handshake.send(RejectData(body))
    await io.write(data)


async def open_client(
    stream: trio.abc.Stream,
    host: str,
    resource: str,
    *,
    subprotocols: list[str],
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    max_message: int = 1 << 20,
) -> WebSocket:
    """Run the client's opening handshake on a connected stream (a socket's, or TLS over
    one). Raises :class:`HandshakeFailed` when the server refuses, ChannelClosed when it
    hangs up."""
    io = _io_for(stream)
    handshake = WSConnection(ConnectionType.CLIENT)
    request = Request(
        host=host, target=resource, subprotocols=subprotocols, extra_headers=extra_headers or []
    )
    await io.write(handshake.send(request))
    refusal: RejectConnection | None = None
    body = b""
    finished = False
    while True:
        data = await io.read()
        if not data and refusal is None:
            raise ChannelClosed
        try:
            handshake.receive_data(data or None)
            for event in handshake.events():
                if isinstance(event, AcceptConnection):
                    protocol = handshake.connection
                    assert protocol is not None  # the handshake completed
                    return await _opened(io, protocol, max_message, event.subprotocol)
                if isinstance(event, RejectConnection):
                    refusal, finished = event, not event.has_body
                elif isinstance(event, RejectData):
                    body += event.data
                    finished = event.body_finished
        except RemoteProtocolError as error:
            raise HandshakeFailed(f"bad handshake answer: {error}") from None
        if refusal is not None and (finished or not data):
            status = refusal.status_code
            raise HandshakeFailed(f"the server answered HTTP {status}", status, body)


class _EventQueue(list[Event]):
    """The queue a wsproto connection keeps for the events it makes outside frames (the
    1006 close of a lost connection, and nothing else): a list in place of wsproto's deque,
    whose first block alone is ~0.6 KiB on every connection for a queue that is almost always
    empty (tracemalloc over 2,000 idle chargers in a server)."""

    __slots__ = ()

    def popleft(self) -> Event:
        return self.pop(0)


def _lean(protocol: Connection) -> Connection:
    """``protocol`` with :class:`_EventQueue` as its event queue (wsproto's ``_events``,
    used as ``append``, ``popleft`` and truth; left alone in a wsproto that has none)."""
    events = getattr(protocol, "_events", None)
    if isinstance(events, deque):
        protocol._events = _EventQueue(events)  # type: ignore[assignment]
    return protocol


async def _opened(
    io: _ByteIO,
    protocol: Connection,
    max_message: int,
    subprotocol: str | None,
    pacer: ReadPacer | None = None,
) -> WebSocket:
    websocket = WebSocket(
        io, _lean(protocol), max_message=max_message, subprotocol=subprotocol, pacer=pacer
    )
    await websocket.take_early_frames()
    return websocket
