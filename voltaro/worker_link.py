"""The line between the parent of ``voltaro serve --workers N`` and each of its workers.

One Unix socket pair per worker: the parent keeps one end, the worker inherits the other
(its descriptor number is given with the internal ``serve --internal-worker INDEX:FD``).
Over it the worker says ``ready`` once it accepts chargers; after that the parent may ask
for the worker's metrics (``metrics N``, N counting the questions) and the worker answers
``N LENGTH`` and that many bytes of its ``/metrics`` text, so that the parent's ``/metrics``
covers every worker. Each side keeps what it received in a buffer and takes only whole
messages from it, so a question given up on (the parent's wait has a limit) leaves the line
in step: its late answer is read and dropped before the next one. The line's other job is
its end: when the parent dies, however (kill -9 included), the kernel closes the parent's
end and the worker reads end-of-file, so it stops instead of outliving the installation;
when the worker dies, the parent reads end-of-file too.

The parent's ends are not inheritable (Python's default), so no worker holds another's line
open and each end-of-file means what it says.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import Awaitable, Callable

import trio

WORKER_FLAG = "--internal-worker"
READY = b"ready\n"
METRICS = b"metrics"
MAX_LINE = 64  # bytes: the longest line either side sends (the body is counted, not a line)


def link_argument(index: int, fd: int) -> str:
    """The value of :data:`WORKER_FLAG` for worker ``index`` holding descriptor ``fd``."""
    return f"{index}:{fd}"


def parse_link_argument(text: str) -> tuple[int, int]:
    """``(index, fd)`` from :func:`link_argument`'s text; ValueError when it is not one."""
    index, _, fd = text.partition(":")
    return int(index), int(fd)


class _Receiver:
    """What one end has received and not yet taken: whole lines and counted bodies only,
    so a reader cancelled while it waits loses nothing."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def line(self) -> bytes | None:
        """The next line without its newline; None at end-of-file (or a line too long)."""
        end = await self._line_end()
        if end is None:
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    async def answer(self) -> tuple[bytes, bytes] | None:
        """The next answer, ``NUMBER LENGTH`` and its body: (NUMBER, body), taken only once
        whole. None at end-of-file, or for a line that is no answer."""
        end = await self._line_end()
        if end is None:
            return None
        number, _, length = bytes(self._buffer[:end]).partition(b" ")
        if not length.isdigit():
            return None
        whole = end + 1 + int(length)
        while len(self._buffer) < whole:
            if not await self._receive():
                return None
        body = bytes(self._buffer[end + 1 : whole])
        del self._buffer[:whole]
        return number, body

    async def _line_end(self) -> int | None:
        """Where the buffer's first line ends, once it holds one; None at end-of-file."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE or not await self._receive():
                return None
        return end

    async def _receive(self) -> bool:
        try:
            chunk = await self._stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        self._buffer += chunk
        return bool(chunk)


class ParentLink:
    """The worker's end: say ready, answer the parent's questions, and hear the parent go."""

    def __init__(self, fd: int) -> None:
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self._sending = trio.Lock()

    async def report_ready(self) -> None:
        """Tell the parent this worker accepts chargers. A parent already gone is fine:
        :meth:`wait_parent_gone` hears it."""
        await self._send(READY)

    async def wait_parent_gone(self, metrics: Callable[[], Awaitable[bytes]]) -> None:
        """Return once the parent's end is closed (the parent exited or was killed);
        meanwhile answer its questions (``metrics``: this worker's ``/metrics`` text)."""
        received = _Receiver(self._stream)
        while (line := await received.line()) is not None:
            question, _, number = line.partition(b" ")
            if question == METRICS and number.isdigit():
                body = await metrics()
                await self._send(b"%s %d\n" % (number, len(body)) + body)
            # anything else is not the end, and not a question this worker knows

    async def _send(self, data: bytes) -> None:
        async with self._sending:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._stream.send_all(data)

    async def aclose(self) -> None:
        await self._stream.aclose()


class WorkerLink:
    """The parent's end of one worker's line (see the module docstring)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        self._theirs: socket.socket | None = theirs
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
        self._received = _Receiver(self._stream)
        self._asking = trio.Lock()
        self._questions = itertools.count(1)

    @property
    def child_fd(self) -> int:
        """The descriptor the worker is to inherit (``pass_fds``)."""
        if self._theirs is None:
            raise RuntimeError("the worker's end was already handed over")
        return self._theirs.fileno()

    def handed_over(self) -> None:
        """The worker has started with its end: close our copy of it, so that the worker's
        death is an end-of-file here."""
        if self._theirs is not None:
            self._theirs.close()
            self._theirs = None

    async def wait_ready(self) -> bool:
        """True once the worker says it is ready; False when its end closed first (it
        exited, or failed to start)."""
        return await self._received.line() == READY.rstrip(b"\n")

    async def ask_metrics(self, timeout: float) -> bytes | None:
        """The worker's ``/metrics`` text; None when it does not answer within ``timeout``
        seconds or its line is closed. Only after :meth:`wait_ready`."""
        number = next(self._questions)
        with trio.move_on_after(timeout):
            async with self._asking:
                try:
                    await self._stream.send_all(b"%s %d\n" % (METRICS, number))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return None
                while (answer := await self._received.answer()) is not None:
                    answered, body = answer
                    if answered == b"%d" % number:
                        return body
                    # a late answer to a question given up on: dropped
        return None

    async def aclose(self) -> None:
        self.handed_over()
        await self._stream.aclose()
