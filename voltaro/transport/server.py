"""The OCPP WebSocket server (WebSocket connections: :mod:`voltaro.transport.websocket`).

One task per connection runs the handshake, then the session (the RPC endpoint, given by the
caller); when the session ends the connection is closed: nothing a connection started
outlives it. One task of the server pings every quiet connection (:mod:`.keepalive`): a stale
connection is dropped, and its session ends as its reader finds it closed.

Handshake rules (OCPP-J 1.6 section 3): the URL is ``/ocpp/{chargePointId}`` (percent-encoded),
anything else is answered HTTP 404; the gate decides 404 (unknown charge point) or 401 (bad
Basic credentials); the dialect's subprotocol (``ServerOptions.dialect``, ``ocpp1.6`` by
default) is selected when offered, and when it is not, the
handshake completes without the header and the connection is closed at once.

The server keeps no record of who is connected: that is the session's owner's (the central
system's session registry, which also decides that a second connection with the id of a
live one replaces it).

Connections are accepted within limits (:mod:`voltaro.transport.accepting`): so many in
their handshake at once, so many from one address, and a reserve of file descriptors. A
connection is unauthenticated until the gate admits it, and it is so for at most
``handshake_timeout`` seconds in all: the TLS handshake, the upgrade request and the gate's
decision share that one deadline. A gate that has not decided by then (the database slow,
say) is given up on and the charger is answered HTTP 503, retry later: the place the
connection held among those in their handshake is worth more than a late answer.

The gate judges failed logins by the client's address too (:mod:`voltaro.central.login_throttle`).
Behind a load balancer every charger arrives from the balancer's address, so with
``ServerOptions.trusted_proxies`` the address is the one the proxy wrote in
``X-Forwarded-For`` (:mod:`voltaro.client_address`): one charger failing its password then
keeps out its own address, not every charger behind the proxy. The limits at accept, before
any request is read, still count the TCP peer.

An admitted connection's reader is paced by the inbound limit (``inbound_rate`` bytes a
second, ``inbound_burst`` at once; :class:`voltaro.transport.websocket.InboundLimit`).

Each TCP connection runs inside its own error barrier: whatever fails in it ends that
connection only, and is logged.

Several processes on one port (``voltaro serve --workers N``): with
``ServerOptions.reuse_port`` every process opens its own listening socket with
``SO_REUSEPORT`` and the kernel spreads new connections among them; the supervisor holds the
port meanwhile with :func:`reserve_shared_port`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from voltaro.client_address import Network, client_address
from voltaro.config import CannotStart
from voltaro.ocppj.dialect import OCPP16, Dialect
from voltaro.ocppj.endpoint import ChannelClosed
from voltaro.transport.accepting import (
    MAX_HANDSHAKES_PER_ADDRESS,
    MAX_PENDING_HANDSHAKES,
    RESERVED_FILES,
    AcceptLimits,
    Acceptor,
    AcceptStats,
    HandshakeSlot,
)
from voltaro.transport.handshake import charge_point_id_from_path, password_for
from voltaro.transport.keepalive import Keepalive
from voltaro.transport.websocket import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    INBOUND_BURST,
    INBOUND_RATE,
    HandshakeFailed,
    InboundLimit,
    PacingTotals,
    ReadPacer,
    UpgradeRequest,
    WebSocket,
    read_upgrade_request,
)

log = logging.getLogger("voltaro.transport")

# Why a handshake was refused, by the status the admission chose (the admission logs the
# detail of a failed login: no credentials or a wrong password).
REFUSAL_REASONS = {
    401: "no or wrong Basic-auth credentials",
    404: "unknown charge point id",
    429: "too many failed logins lately",
    503: "too many password checks waiting",
}


class Verdict(Protocol):
    """The gate's answer to a handshake: admit (``http_status`` None) or refuse with HTTP."""

    @property
    def http_status(self) -> int | None: ...

    @property
    def lenient(self) -> bool: ...

    @property
    def retry_after(self) -> int | None:
        """Seconds for a ``Retry-After`` header (a 429 or 503 the client should retry)."""
        ...

    @property
    def reason(self) -> str | None:
        """Why it refuses, for the log (None: what its status usually means)."""
        ...


@dataclass(frozen=True, slots=True)
class Admission:
    """A plain :class:`Verdict`."""

    http_status: int | None = None
    lenient: bool = False
    retry_after: int | None = None
    reason: str | None = None


Gate = Callable[[str, str | None, str], Awaitable[Verdict]]
"""``(charge_point_id, Basic-auth password or None, client address) -> Verdict``."""


@dataclass(eq=False, slots=True)
class ChargePointConnection:
    """One admitted, open connection of a charge point."""

    charge_point_id: str
    websocket: WebSocket
    lenient: bool
    remote: str
    close_timeout: float = 5.0
    connected_at: float = field(default_factory=time.monotonic)
    _closed_by_us: tuple[int, str] | None = field(default=None, init=False, repr=False)

    @property
    def how_it_ended(self) -> str:
        """The close code and reason (``code 1006 ...``; ``closed by the server: code 1001
        ...`` when we closed it), or ``connection lost``."""
        if self._closed_by_us is not None:
            code, reason = self._closed_by_us
            return f"closed by the server: code {code} {reason}".strip()
        closed = self.websocket.closed
        if closed is None:
            return "connection lost"
        return f"code {closed.code} {closed.reason or ''}".strip()

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code``, waiting at most ``close_timeout`` for the charger's reply."""
        if self._closed_by_us is None and self.websocket.closed is None:
            self._closed_by_us = (code, reason)
        with trio.move_on_after(self.close_timeout):
            await self.websocket.aclose(code, reason)


Session = Callable[[ChargePointConnection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ServerOptions:
    host: str = "0.0.0.0"
    port: int = 9000
    max_frame: int = 65536
    ping_interval: float = 60.0
    ping_timeout: float = 30.0
    handshake_timeout: float = 10.0  # from accept until admitted: TLS, request and gate
    close_timeout: float = 5.0
    tls: ssl.SSLContext | None = None  # set: wss:// only (the TLS handshake is in the timeout)
    # see voltaro.transport.accepting.AcceptLimits
    max_pending_handshakes: int = MAX_PENDING_HANDSHAKES
    max_handshakes_per_address: int = MAX_HANDSHAKES_PER_ADDRESS
    reserved_files: int = RESERVED_FILES
    inbound_rate: float = INBOUND_RATE  # bytes a second per connection; 0: off
    inbound_burst: float = INBOUND_BURST
    dialect: Dialect = OCPP16  # its subprotocol is the one a charger must offer
    reuse_port: bool = False  # SO_REUSEPORT: other processes listen on the port too
    # proxies whose X-Forwarded-For names the charger to the gate (voltaro.client_address)
    trusted_proxies: tuple[Network, ...] = ()

    def accept_limits(self) -> AcceptLimits:
        return AcceptLimits(
            self.max_pending_handshakes, self.max_handshakes_per_address, self.reserved_files
        )


@dataclass(frozen=True, slots=True)
class TransportStats:
    """The OCPP server's counters at one moment (counters: since the server started)."""

    accept: AcceptStats
    """Connections live and in their handshake, refusals, pauses and failures of accept."""
    handshake_timeouts: int
    """Connections not admitted within ``handshake_timeout``: closed, or answered HTTP 503
    when the gate was still deciding."""
    paced_reads: int
    """Reads of admitted connections that waited for the inbound limit's tokens."""


_BUSY_BODY = b"Service Unavailable: no admission decision in time; retry later\n"
BUSY_RETRY_AFTER = 10  # seconds a charger refused for a slow admission is told to wait


class OcppServer:
    """Accepts charge point connections and runs a session for each."""

    def __init__(
        self,
        options: ServerOptions,
        gate: Gate,
        session: Session,
        *,
        on_pong: Callable[[str], None] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        """``on_pong(charge_point_id)`` hears every answered ping: the charger is alive even
        when pings replace its Heartbeats (``WebSocketPingInterval``). ``busy()``: True
        while the process is behind on its work; no connection is accepted meanwhile."""
        self._options = options
        self._on_pong = on_pong
        self._gate = gate
        self._session = session
        self._port: int | None = None
        self._listeners: list[trio.SocketListener] | None = None
        self._acceptor = Acceptor(options.accept_limits(), busy)
        self._pacing = PacingTotals()
        self._inbound = (
            InboundLimit(options.inbound_rate, options.inbound_burst)
            if options.inbound_rate > 0
            else None
        )
        self._handshake_timeouts = 0
        self._keepalive = Keepalive(options.ping_interval, options.ping_timeout)

    @property
    def port(self) -> int:
        """The bound port (useful when the options asked for port 0)."""
        if self._port is None:
            raise RuntimeError("the server is not listening yet")
        return self._port

    def stats(self) -> TransportStats:
        """The server's counters now (a copy: later changes do not show in it)."""
        return TransportStats(
            accept=self._acceptor.stats(),
            handshake_timeouts=self._handshake_timeouts,
            paced_reads=self._pacing.paced_reads,
        )

    async def listen(self) -> None:
        """Bind the listening sockets now (accepting starts with :meth:`run`): the port is
        this process's before anything else starts. Raises CannotStart when it cannot."""
        if self._listeners is not None:
            return
        options = self._options
        try:
            if options.reuse_port:
                listeners = await _open_shared_listeners(options.host, options.port)
            else:
                listeners = await trio.open_tcp_listeners(options.port, host=options.host)
        except OSError as error:
            where = f"{options.host}:{options.port}"
            raise CannotStart(f"cannot listen for chargers on {where}: {error}") from None
        room = self._acceptor.room_for_connections()
        if room < 1:
            for listener in listeners:
                await listener.aclose()
            raise CannotStart(
                f"VOLTARO_RESERVED_FILES={options.reserved_files} leaves no file descriptors"
                f" for chargers: the open-file limit is {room + options.reserved_files}"
            )
        self._port = int(listeners[0].socket.getsockname()[1])
        self._listeners = listeners

    async def run(
        self, *, task_status: trio.TaskStatus[OcppServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept until cancelled (binding first unless :meth:`listen` did);
        ``await nursery.start(server.run)`` returns once accepting."""
        options = self._options
        await self.listen()
        assert self._listeners is not None
        listeners, self._listeners = self._listeners, None
        room = self._acceptor.room_for_connections()
        log.info(
            "accepting up to %d connections (the open-file limit minus %d reserved), %d at"
            " once in their handshake, %s from one address",
            room,
            options.reserved_files,
            self._acceptor.pending_cap(),
            options.max_handshakes_per_address or "any number",
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keepalive.run)
            await nursery.start(self._acceptor.serve, listeners, self._handle_stream)
            log.info(
                "OCPP server listening on %s://%s:%d/ocpp/{chargePointId}",
                "ws" if options.tls is None else "wss",
                options.host,
                self.port,
            )
            task_status.started(self)

    # -- one connection -------------------------------------------------------------------

    async def _handle_stream(self, stream: trio.SocketStream, slot: HandshakeSlot) -> None:
        """One TCP connection, inside its error barrier (see the module docstring); the
        acceptor closes the socket after."""
        remote = slot.peer
        try:
            connection = await self._handshake(stream, remote)
            if connection is not None:
                slot.release()
                await self._serve(connection)
        except Exception as error:
            _log_connection_failure(remote, error)

    async def _handshake(
        self, stream: trio.SocketStream, remote: str
    ) -> ChargePointConnection | None:
        """The unauthenticated part of a connection, within the handshake timeout: the
        admitted connection, or None when it was refused, timed out or left.

        One deadline scope for the three steps (read the request, the gate's decision, the
        answer 101), not one each: two scopes fewer on every handshake. What did not
        happen in it says which step ended it, and refusals are answered after it."""
        options = self._options
        subprotocol = options.dialect.subprotocol
        request = charge_point_id = admission = websocket = None
        shown = remote  # the charger as its log lines name it
        with trio.move_on_at(trio.current_time() + options.handshake_timeout) as within:
            pacer = None if self._inbound is None else ReadPacer(self._inbound, self._pacing)
            request = await read_upgrade_request(
                await self._secured(stream), max_message=options.max_frame, pacer=pacer
            )
            if request is not None:
                charge_point_id = charge_point_id_from_path(request.path)
            if request is not None and charge_point_id is not None:
                password = password_for(charge_point_id, request.headers)
                address = _client(remote, request.headers, options.trusted_proxies)
                if address != _host(remote):  # forwarded by a trusted proxy
                    shown = f"{address} via {remote}"
                admission = await self._gate(charge_point_id, password, address)
                if admission.http_status is None and subprotocol in request.proposed_subprotocols:
                    websocket = await request.accept(subprotocol=subprotocol)
        if websocket is not None:
            assert charge_point_id is not None and admission is not None
            return ChargePointConnection(
                charge_point_id, websocket, admission.lenient, shown, options.close_timeout
            )
        if request is None:
            if within.cancelled_caught:
                self._handshake_timeouts += 1
                log.info("connection from %s: no WebSocket handshake in time", remote)
            return None
        if charge_point_id is None:
            log.info("refused %s: path %.100r is not /ocpp/{chargePointId}", remote, request.path)
            await self._refuse(request, 404, b"Not Found: connect to /ocpp/{chargePointId}\n")
            return None
        if admission is None:
            self._handshake_timeouts += 1
            log.info(
                "refused %s from %s: HTTP 503, no admission decision within %g s",
                charge_point_id,
                remote,
                options.handshake_timeout,
            )
            await self._refuse(request, 503, _BUSY_BODY, retry_after=BUSY_RETRY_AFTER)
            return None
        if admission.http_status is not None:
            log.info(
                "refused %s from %s: HTTP %d (%s)",
                charge_point_id,
                remote,
                admission.http_status,
                admission.reason
                or REFUSAL_REASONS.get(admission.http_status, "refused by the admission"),
            )
            await self._refuse(request, admission.http_status, retry_after=admission.retry_after)
            return None
        if subprotocol not in request.proposed_subprotocols:
            await self._refuse_subprotocol(request, charge_point_id, remote)
            return None
        self._handshake_timeouts += 1  # admitted, but the 101 was not written in time
        return None

    async def _refuse(
        self,
        request: UpgradeRequest,
        status: int,
        body: bytes | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        with trio.move_on_after(self._options.close_timeout):
            await _reject(request, status, body, retry_after=retry_after)

    async def _secured(self, stream: trio.SocketStream) -> trio.abc.Stream:
        """The stream the WebSocket runs on: TLS over ``stream`` when configured."""
        if self._options.tls is None:
            return stream
        await _refuse_plain_http(stream)
        tls = trio.SSLStream(stream, self._options.tls, server_side=True)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as error:  # a client distrusting us, or not TLS after all
            raise HandshakeFailed(f"TLS handshake failed: {error.__cause__ or error}") from None
        return tls

    async def _refuse_subprotocol(
        self, request: UpgradeRequest, charge_point_id: str, remote: str
    ) -> None:
        # OCPP-J 1.6 section 3.1.2: complete the handshake without the header, then close.
        subprotocol = self._options.dialect.subprotocol
        log.info(
            "refused %s from %s: subprotocols %s do not include %s",
            charge_point_id,
            remote,
            list(request.proposed_subprotocols) or "(none)",
            subprotocol,
        )
        websocket = await request.accept()
        with trio.move_on_after(self._options.close_timeout):
            await websocket.aclose(CLOSE_PROTOCOL_ERROR, f"subprotocol {subprotocol} is required")

    async def _serve(self, connection: ChargePointConnection) -> None:
        charge_point_id = connection.charge_point_id
        _log_connected(connection)
        if self._on_pong is not None:
            connection.websocket.on_pong = functools.partial(self._on_pong, charge_point_id)
        watched = self._keepalive.add(connection.websocket, functools.partial(_stale, connection))
        try:
            await self._session(connection)
        finally:
            ending = (CLOSE_NORMAL, "")
            # cancelled (however the nursery grouped it): the server is stopping, and the
            # charger should come back later or elsewhere
            if trio.current_effective_deadline() == -math.inf:
                ending = (CLOSE_GOING_AWAY, "server shutting down")
            self._keepalive.remove(watched)
            log.info(
                "%s disconnected after %.0f s (%s)",
                charge_point_id,
                time.monotonic() - connection.connected_at,
                connection.how_it_ended,
            )
            with trio.CancelScope(shield=True):
                await connection.close(*ending)


def _log_connected(connection: ChargePointConnection) -> None:
    """The connect line, logged from a function that returns at once: logging looks up its
    caller's frame, and the frame object it makes for a coroutine that goes on (the
    connection's, for as long as the charger stays) is ~0.24 KiB kept on every connection."""
    log.info("%s connected from %s", connection.charge_point_id, connection.remote)


def _stale(connection: ChargePointConnection) -> None:
    """The keepalive's verdict: no pong in time. The TCP connection is dropped (a peer that
    answers no ping would not answer a close frame either), and the session ends as its
    reader finds the connection closed."""
    log.info("%s: no pong in time; closing the stale connection", connection.charge_point_id)
    connection.websocket.abort("no pong in time")


LISTEN_BACKLOG = 0xFFFF  # as trio's: the kernel cuts it to net.core.somaxconn


async def _open_shared_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """Listening sockets on ``host:port`` with ``SO_REUSEPORT``, one per address ``host``
    resolves to (as trio.open_tcp_listeners, which cannot set the option). Raises OSError."""
    addresses = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    try:
        for family, kind, proto, _, address in addresses:
            sock = trio.socket.socket(family, kind, proto)
            try:
                _share_port(sock)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind(address)
                sock.listen(LISTEN_BACKLOG)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


def _share_port(sock: socket.socket | trio.socket.SocketType) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def reserve_shared_port(host: str, port: int) -> tuple[list[socket.socket], int]:
    """Hold ``host:port`` for processes that will listen on it with ``SO_REUSEPORT``:
    returns the holding sockets (bound, not listening, so they are given no connections;
    close them once the listeners are up) and the port (the one picked when ``port`` is 0).

    The port must be free: a plain bind is tried first, since ``SO_REUSEPORT`` alone would
    let a second installation started by mistake share the port of a running one (same
    user) and split its chargers. Raises CannotStart when the port is taken.
    """
    where = f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        held: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in addresses:
                if port != 0:
                    address = (address[0], port, *address[2:])
                with socket.socket(family, kind, proto) as probe:  # free at all?
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(address)
                    port = probe.getsockname()[1]
                    address = (address[0], port, *address[2:])
                holder = socket.socket(family, kind, proto)
                held.append(holder)
                _share_port(holder)
                holder.bind(address)
        except BaseException:
            for holder in held:
                holder.close()
            raise
    except OSError as error:
        raise CannotStart(f"cannot listen for chargers on {where}: {error}") from None
    return held, port


TLS_HANDSHAKE_RECORD = 0x16  # the first byte a TLS client sends
MAX_PLAIN_REQUEST = 65536
_PLAIN_HTTP_REASON = b"This port speaks TLS: connect with wss://, not ws://\n"
PLAIN_HTTP_AT_TLS_PORT = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_PLAIN_HTTP_REASON), _PLAIN_HTTP_REASON)
)


async def _refuse_plain_http(stream: trio.SocketStream) -> None:
    """A plain ``ws://`` client at the TLS port is told so in plain HTTP; a charger's log then
    says why it cannot connect, where a hang-up says nothing."""
    try:
        first = await stream.socket.recv(1, socket.MSG_PEEK)
    except OSError:  # reset: as quiet as a client that closed
        first = b""
    if not first:
        raise HandshakeFailed("the client left before the TLS handshake")
    if first[0] != TLS_HANDSHAKE_RECORD:
        with contextlib.suppress(trio.BrokenResourceError):
            # read the request first: closing with it unread would reset the connection,
            # and the client could lose the answer
            await stream.receive_some(MAX_PLAIN_REQUEST)
            await stream.send_all(PLAIN_HTTP_AT_TLS_PORT)
        raise HandshakeFailed("plain HTTP at the TLS port: told to use wss://", 400)


def _log_connection_failure(peer: str, error: Exception) -> None:
    leaves = leaf_exceptions(error)
    if all(isinstance(leaf, HandshakeFailed | ChannelClosed) for leaf in leaves):
        # not a WebSocket client, or one that left mid-handshake: nothing was lost
        log.info("connection from %s ended early: %r", peer, leaves[0])
    else:
        log.error("connection from %s failed; the server carries on", peer, exc_info=error)


def leaf_exceptions(error: BaseException) -> list[BaseException]:
    """The exceptions in ``error``, exception groups taken apart."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaf_exceptions(inner)]
    return [error]


def _client(remote: str, headers: list[tuple[bytes, bytes]], proxies: tuple[Network, ...]) -> str:
    """The charger's address for the gate: the TCP peer's, or the one a trusted proxy
    forwarded."""
    peer = _host(remote)
    if not proxies:
        return peer
    forwarded = [value.decode("latin-1") for name, value in headers if name == b"x-forwarded-for"]
    return client_address(peer, forwarded, proxies) or peer


def _host(remote: str) -> str:
    """The address part of ``host:port`` (IPv6 hosts keep their colons)."""
    return remote.rpartition(":")[0] or remote


async def _reject(
    request: UpgradeRequest,
    status: int,
    body: bytes | None = None,
    *,
    retry_after: int | None = None,
) -> None:
    """Answer the handshake with HTTP ``status``; a client that hung up meanwhile is fine."""
    headers: list[tuple[bytes, bytes]] = []
    body = _REJECTION_BODIES.get(status, b"") if body is None else body
    if status == 401:
        headers.append((b"WWW-Authenticate", b'Basic realm="Voltaro OCPP", charset="UTF-8"'))
    if retry_after is not None:
        headers.append((b"Retry-After", str(retry_after).encode()))
    try:
        await request.reject(status, headers, body)
    except ChannelClosed:
        log.debug("the client left before its HTTP %d", status)


_REJECTION_BODIES = {
    401: b"Unauthorized: wrong or missing Basic credentials for this charge point\n",
    404: b"Not Found: unknown charge point\n",
    429: b"Too Many Requests: too many failed logins for this charge point or address;"
    b" retry after the time given\n",
    503: b"Service Unavailable: the server cannot admit charge points now; retry later\n",
}
