"""The line between the parent of ``voltaro serve --workers N`` and each of its workers.

One Unix socket pair per worker: the parent keeps one end, the worker inherits the other
(its descriptor number is given with the internal ``serve --internal-worker INDEX:FD``).
Over it the worker says ``ready`` once it accepts chargers, and nothing else is sent. Its
real job is the end of the line: when the parent dies, however (kill -9 included), the
kernel closes the parent's end and the worker reads end-of-file, so it stops instead of
outliving the installation; when the worker dies, the parent reads end-of-file too.

The parent's ends are not inheritable (Python's default), so no worker holds another's line
open and each end-of-file means what it says.
"""

from __future__ import annotations

import contextlib
import socket

import trio

WORKER_FLAG = "--internal-worker"
READY = b"ready\n"


def link_argument(index: int, fd: int) -> str:
    """The value of :data:`WORKER_FLAG` for worker ``index`` holding descriptor ``fd``."""
    return f"{index}:{fd}"


def parse_link_argument(text: str) -> tuple[int, int]:
    """``(index, fd)`` from :func:`link_argument`'s text; ValueError when it is not one."""
    index, _, fd = text.partition(":")
    return int(index), int(fd)


class ParentLink:
    """The worker's end: say ready, and hear the parent go."""

    def __init__(self, fd: int) -> None:
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))

    async def report_ready(self) -> None:
        """Tell the parent this worker accepts chargers. A parent already gone is fine:
        :meth:`wait_parent_gone` hears it."""
        with contextlib.suppress(trio.BrokenResourceError):
            await self._stream.send_all(READY)

    async def wait_parent_gone(self) -> None:
        """Return once the parent's end is closed (the parent exited or was killed)."""
        try:
            while await self._stream.receive_some(64):
                pass  # the parent sends nothing today; whatever it is, it is not the end
        except trio.BrokenResourceError:
            pass

    async def aclose(self) -> None:
        await self._stream.aclose()


class WorkerLink:
    """The parent's end of one worker's line (see the module docstring)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        self._theirs: socket.socket | None = theirs
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))

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
        received = b""
        while not received.endswith(b"\n"):
            try:
                chunk = await self._stream.receive_some(64)
            except trio.BrokenResourceError:
                return False
            if not chunk:
                return False
            received += chunk
        return received == READY

    async def aclose(self) -> None:
        self.handed_over()
        await self._stream.aclose()
