"""The OCPP server's accept loop: how many connections it takes on, and what it does when the
process runs out of file descriptors.

Every TCP connection is a file descriptor from the moment it is accepted, whether or not it
ever sends a byte. With ``trio.serve_listeners`` (what this replaces), 20,000 connections
that never spoke took every descriptor of a 20,000-file process: honest chargers could not
connect, and every failed accept logged a traceback. So connections are taken on in two
stages, with a limit on each:

- **in their handshake** (accepted, not yet admitted: TLS, the upgrade request, the gate's
  decision). At most :attr:`AcceptLimits.max_pending_handshakes` at once, and at most
  :attr:`AcceptLimits.max_handshakes_per_address` from one IP address;
- **live** (any socket the server holds: in its handshake, admitted, or closing). Accepting
  stops while live sockets reach the soft ``RLIMIT_NOFILE`` minus
  :attr:`AcceptLimits.reserved_files`, the descriptors the rest of the process needs.

Accepting also pauses while the process says it is behind on its work (``busy``: see
:mod:`voltaro.central.overload`).

Connections that are refused or not yet taken on cost the process no descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import resource
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from voltaro.episodes import Episode

log = logging.getLogger("voltaro.transport")

# Errors of accept(2) that say the process or the system is out of something for now: the
# connection stays in the kernel's queue, and an accept a little later may succeed.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# How long to wait before accepting again after one of them, unless a connection closes
# first (trio's serve_listeners waits 100 ms: long enough not to spin, short enough that a
# freed descriptor is used soon).
ACCEPT_RETRY_SECONDS = 0.1
# How often a process behind on its work (``busy``) asks again whether it still is.
BUSY_RECHECK_SECONDS = 0.05
# Failed accepts, and refusals over the per-address cap, come in runs (episodes): a run is
# over when none came for this long, and only then is its end logged, with how many. Ended
# at the first accept that works instead, a process short of descriptors (where each one
# freed lets one accept through) would log a start and an end per descriptor freed.
EPISODE_QUIET_SECONDS = 10.0
# Addresses remembered per refusal episode, for its summary; more are counted, not kept.
MAX_ADDRESSES_NOTED = 1000
# Errors of accept(2) that belong to the one connection it was taking (Linux hands on a new
# connection's pending network error, a firewall's refusal, a client that reset first): that
# connection is gone, and the next accept goes on.
_PEER_ERRNO_NAMES = (
    "ECONNABORTED ECONNRESET EPERM ETIMEDOUT EPROTO ENOPROTOOPT ENETDOWN ENETUNREACH"
    " EHOSTDOWN EHOSTUNREACH ENONET EOPNOTSUPP"
)
ACCEPT_PEER_ERRNOS = frozenset(
    getattr(errno, name) for name in _PEER_ERRNO_NAMES.split() if hasattr(errno, name)
)
# How long the soft open-file limit read is used before it is read again (the accept loop
# asks before every accept; the limit changes at start, or by an operator's prlimit).
FILE_LIMIT_READ_SECONDS = 1.0
# SO_LINGER on, zero seconds: close with a reset. A refused connection was never served, so
# it should leave no TIME_WAIT state behind (an attacker makes many).
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


# The defaults of AcceptLimits, with the reasons in the README's Configuration table.
MAX_PENDING_HANDSHAKES = 1000
# Half the handshake slots: no one address can take them all, and 200 chargers behind one
# NAT reconnecting at once (benchmark (x) connects 200 from 127.0.0.1) are not refused.
MAX_HANDSHAKES_PER_ADDRESS = 500
RESERVED_FILES = 256


@dataclass(frozen=True, slots=True)
class AcceptLimits:
    """How many connections the accept loop takes on (see the module docstring).

    ``max_handshakes_per_address`` 0: no per-address cap. The cap on handshakes in progress is
    also at most half the descriptors left for connections, so that chargers completing their
    handshakes always find some.
    """

    max_pending_handshakes: int = MAX_PENDING_HANDSHAKES
    max_handshakes_per_address: int = MAX_HANDSHAKES_PER_ADDRESS
    reserved_files: int = RESERVED_FILES


@dataclass(frozen=True, slots=True)
class AcceptStats:
    """The accept loop's state and counters at one moment (counters: since the start)."""

    live_connections: int
    """Sockets the server holds: in their handshake, admitted, or closing."""
    pending_handshakes: int
    """Accepted and neither admitted nor refused yet."""
    pending_handshakes_peak: int
    """The most connections in their handshake at once."""
    refused_per_address: int
    """Connections closed at once on accept: their address had the most handshakes in
    progress that one address may have."""
    accept_waits_pending: int
    """Times accepting paused because the most handshakes allowed were in progress."""
    accept_waits_files: int
    """Times accepting paused because live sockets reached the open-file limit minus the
    reserve."""
    accept_errors: dict[str, int]
    """Failed accepts by errno name (EMFILE, ENFILE, ENOBUFS, ENOMEM)."""
    accept_waits_busy: int
    """Times accepting paused because the process was behind on its work (``busy``)."""


class HandshakeSlot:
    """A connection's place among those in their handshake; :meth:`release` it once the
    charger is admitted (or refused), so that the next connection may be accepted."""

    __slots__ = ("_released", "_room", "address", "peer")

    def __init__(self, room: _Room, address: str, peer: str) -> None:
        self._room = room
        self._released = False
        self.address = address
        self.peer = peer
        """``host:port`` of the client, as accept(2) gave it."""

    def release(self) -> None:
        """Give the place back (a second call does nothing)."""
        if not self._released:
            self._released = True
            self._room.handshake_over(self.address)


@dataclass
class _Room:
    """Who holds what: live sockets, handshakes in progress (in total and by address)."""

    live: int = 0
    pending: int = 0
    pending_peak: int = 0
    by_address: Counter[str] = field(default_factory=Counter)
    accepting: int = 0  # listener tasks inside accept(): each may bring one more
    lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)

    def opened(self, address: str, peer: str) -> HandshakeSlot:
        self.live += 1
        self.pending += 1
        self.pending_peak = max(self.pending_peak, self.pending)
        self.by_address[address] += 1
        return HandshakeSlot(self, address, peer)

    def handshake_over(self, address: str) -> None:
        self.pending -= 1
        left = self.by_address[address] - 1
        if left:
            self.by_address[address] = left
        else:
            del self.by_address[address]
        self.lot.unpark_all()

    def closed(self) -> None:
        self.live -= 1
        self.lot.unpark_all()


class _Episode(Episode):
    """An :class:`~voltaro.episodes.Episode` that ends itself: once it has been quiet for
    :data:`EPISODE_QUIET_SECONDS`, a task of the nursery it started in logs its summary.
    It also notes the kinds of what happened, and from which addresses."""

    def __init__(self, summary: Callable[[_Episode, float], None]) -> None:
        super().__init__(EPISODE_QUIET_SECONDS, clock=trio.current_time)
        self._summary = summary  # logs the end: (the episode, seconds it lasted)
        self.kinds: Counter[str] = Counter()
        self.addresses: set[str] = set()

    def happened(self, nursery: trio.Nursery, kind: str, address: str | None = None) -> bool:
        """Count one occurrence; True when it starts an episode (whose end a task of
        ``nursery`` then waits for)."""
        starts = self.event()
        if starts:
            self.kinds.clear()
            self.addresses.clear()
            nursery.start_soon(self._end_when_quiet)
        self.kinds[kind] += 1
        if address is not None and len(self.addresses) < MAX_ADDRESSES_NOTED:
            self.addresses.add(address)
        return starts

    async def _end_when_quiet(self) -> None:
        while (over := self.end_if_quiet()) is None:
            await trio.sleep_until(self.quiet_at)
        self._summary(self, over.seconds)


Handler = Callable[[trio.SocketStream, HandshakeSlot], Awaitable[None]]


class Acceptor:
    """Accepts connections within :class:`AcceptLimits` and runs ``handler(stream, slot)`` for
    each in a task of its own; :meth:`stats` says how that goes.

    Resource handling:

      A connection's socket is closed when its handler returns (or fails), and only then is
      it no longer live; the handler releases its :class:`HandshakeSlot` when the handshake
      is over, and it is released for it at the end if it did not. Connections beyond the
      limits wait in the kernel's listen queue: a storm of chargers connecting at once is
      taken on as fast as handshakes complete, not refused. Only a connection from an address
      that has ``max_handshakes_per_address`` handshakes in progress already is refused:
      accepted and closed at once (with a reset; it was never served).

    Error handling:

      An accept that fails for want of descriptors or kernel memory (EMFILE, ENFILE,
      ENOBUFS, ENOMEM) is retried after :data:`ACCEPT_RETRY_SECONDS`, or as soon as a
      connection closes. Such failures come in runs: the first of a run is logged (ERROR,
      with how many descriptors the server's connections hold), the rest are counted, and
      one line (WARNING) says when they stopped, after how long and how many. Refusals over
      the per-address cap are logged the same way (both WARNING). Any other error of accept
      propagates: the server cannot go on listening.
    """

    def __init__(self, limits: AcceptLimits, busy: Callable[[], bool] | None = None) -> None:
        """``busy()``: True while the process is behind on its work; no connection is
        accepted meanwhile (asked again every :data:`BUSY_RECHECK_SECONDS`)."""
        self._limits = limits
        self._busy = busy
        self._waits_busy = 0
        self._room = _Room()
        self._accept_errors: Counter[str] = Counter()
        self._refused = 0
        self._waits_pending = 0
        self._waits_files = 0
        self._failing = _Episode(_log_accept_failures_over)
        self._refusing = _Episode(self._log_refusals_over)
        self._file_limit = _SoftFileLimit()

    def room_for_connections(self) -> int:
        """Sockets the server may hold now: the soft open-file limit minus the reserve."""
        return self._file_limit() - self._limits.reserved_files

    def pending_cap(self) -> int:
        """Connections that may be in their handshake at once now (see AcceptLimits)."""
        return max(1, min(self._limits.max_pending_handshakes, self.room_for_connections() // 2))

    def stats(self) -> AcceptStats:
        room = self._room
        return AcceptStats(
            live_connections=room.live,
            pending_handshakes=room.pending,
            pending_handshakes_peak=room.pending_peak,
            refused_per_address=self._refused,
            accept_waits_pending=self._waits_pending,
            accept_waits_files=self._waits_files,
            accept_errors=dict(self._accept_errors),
            accept_waits_busy=self._waits_busy,
        )

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        handler: Handler,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on every listener until cancelled (closing them then); returns from
        ``nursery.start`` once accepting."""
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_from, listener, handler, nursery)
            task_status.started()

    async def _accept_from(
        self, listener: trio.SocketListener, handler: Handler, nursery: trio.Nursery
    ) -> None:
        async with listener:
            while True:
                await self._wait_for_room()
                self._room.accepting += 1
                try:
                    stream, (address, port, *_) = await _accept(listener.socket)
                except OSError as error:
                    if error.errno not in ACCEPT_CAPACITY_ERRNOS:
                        raise
                    self._accept_failed(error.errno, nursery)
                    with trio.move_on_after(ACCEPT_RETRY_SECONDS):
                        await self._room.lot.park()
                    continue
                finally:
                    self._room.accepting -= 1
                if self._over_address_cap(address):
                    self._refuse(stream, address, nursery)
                    continue
                slot = self._room.opened(address, f"{address}:{port}")
                nursery.start_soon(self._run_handler, handler, stream, slot)

    async def _run_handler(
        self, handler: Handler, stream: trio.SocketStream, slot: HandshakeSlot
    ) -> None:
        try:
            await handler(stream, slot)
        finally:
            slot.release()
            try:
                # what aclose_forcefully comes to for a socket, without its two cancel
                # scopes: ~10 µs a connection, a fiftieth of a handshake
                stream.socket.close()
            finally:
                self._room.closed()

    # -- limits ---------------------------------------------------------------------------

    async def _wait_for_room(self) -> None:
        """Return once one more connection may be taken on (at once, without a checkpoint,
        when it may: accept() is the loop's checkpoint)."""
        counted: str | None = None
        while True:
            full = self._full()
            if full is None:
                return
            if full != counted:  # one wait is one pause, however often it wakes
                counted = full
                if full == "pending":
                    self._waits_pending += 1
                elif full == "busy":
                    self._waits_busy += 1
                else:
                    self._waits_files += 1
            if full == "busy":  # nothing here announces its end: ask again
                with trio.move_on_after(BUSY_RECHECK_SECONDS):
                    await self._room.lot.park()
            else:
                await self._room.lot.park()

    def _full(self) -> str | None:
        """Why no connection may be accepted now: "pending", "files", "busy", or None."""
        room = self._room
        if room.live + room.accepting >= self.room_for_connections():
            return "files"
        if room.pending + room.accepting >= self.pending_cap():
            return "pending"
        if self._busy is not None and self._busy():
            return "busy"
        return None

    def _over_address_cap(self, address: str) -> bool:
        cap = self._limits.max_handshakes_per_address
        return cap > 0 and self._room.by_address[address] >= cap

    def _refuse(self, stream: trio.SocketStream, address: str, nursery: trio.Nursery) -> None:
        self._refused += 1
        with contextlib.suppress(OSError):  # the peer reset first: closing is all that is left
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        stream.socket.close()
        if self._refusing.happened(nursery, "refused", address):
            log.warning(
                "refusing connections from %s: %d handshakes from that address are in"
                " progress, the most one address may have (VOLTARO_MAX_HANDSHAKES_PER_ADDRESS);"
                " further refusals are counted and summed up when they stop",
                address,
                self._limits.max_handshakes_per_address,
            )

    def _log_refusals_over(self, episode: _Episode, lasted: float) -> None:
        addresses = len(episode.addresses)
        log.warning(
            "refused %d connections over the per-address handshake cap in %.1f s, from %s%d"
            " address%s; none in the last %.0f s",
            episode.kinds.total(),
            lasted,
            "at least " if addresses >= MAX_ADDRESSES_NOTED else "",
            addresses,
            "" if addresses == 1 else "es",
            EPISODE_QUIET_SECONDS,
        )

    # -- accept errors --------------------------------------------------------------------

    def _accept_failed(self, number: int, nursery: trio.Nursery) -> None:
        name = errno.errorcode.get(number, str(number))
        self._accept_errors[name] += 1
        if self._failing.happened(nursery, name):
            log.error(
                "cannot accept connections: %s (%s); this server's connections hold %d of the"
                " %d files the process may open; retrying, and saying so when this stops",
                name,
                os.strerror(number),
                self._room.live,
                _soft_file_limit(),
            )


def _log_accept_failures_over(episode: _Episode, lasted: float) -> None:
    kinds = ", ".join(f"{name} {n}" for name, n in sorted(episode.kinds.items()))
    log.warning(
        "accept failures stopped: %d accepts failed in %.1f s (%s), none in the last %.0f s",
        episode.kinds.total(),
        lasted,
        kinds,
        EPISODE_QUIET_SECONDS,
    )


def _soft_file_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 30


class _SoftFileLimit:
    """The soft open-file limit, read again at most every ``FILE_LIMIT_READ_SECONDS``: a
    system call before every accept would be one more per handshake."""

    __slots__ = ("_read_at", "_value")

    def __init__(self) -> None:
        self._read_at = -math.inf
        self._value = 0

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self._read_at >= FILE_LIMIT_READ_SECONDS:
            self._value = _soft_file_limit()
            self._read_at = now
        return self._value


async def _accept(listening: trio.socket.SocketType) -> tuple[trio.SocketStream, Any]:
    """The next connection and its address (accept(2)'s: no getpeername later). Raises the
    OSError of an accept that failed for want of something (ACCEPT_CAPACITY_ERRNOS); one
    that failed for its own connection's sake is passed over."""
    while True:
        try:
            sock, address = await listening.accept()
        except OSError as error:
            if error.errno in ACCEPT_PEER_ERRNOS:
                continue
            raise
        return trio.SocketStream(sock), address
