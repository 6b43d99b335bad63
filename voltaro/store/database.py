"""The connection pool, and the one way trio code reaches it: :meth:`Database.run`.

asyncpg is an asyncio library; Voltaro is a trio program. trio-asyncio runs an asyncio loop
inside trio (the caller must be inside ``trio_asyncio.open_loop()``), and every call from
trio into asyncio costs a crossing (~80 µs here). So the rule is one crossing per whole
operation: :meth:`Database.run` takes an asyncio function that does all its queries on one
connection, never one query at a time. Two small pools of a running server live on asyncio
loops of their own threads instead (``own_thread``; why: :mod:`.loop_thread`): the
group-commit writer's and the batched reads'.

The pool is created with a no-op ``reset``: asyncpg's default runs a reset query (``RESET
ALL``, ``UNLISTEN *``, ...) on every release, a round trip per operation for state Voltaro
never sets. asyncpg still rolls back a transaction left open, which is all we need.

Deadlines: every operation on a pooled connection (:meth:`Database.run`, the writer's
batches) has one, the database's ``deadline`` unless the operation asks for another (the
CSV export and the purges ask for :data:`LONG_DEADLINE`). Getting the connection counts.
A database that stops answering (its processes stopped, a hung disk, a network partition)
keeps the TCP connection open and simply never replies; cancelling an asyncpg operation
then hangs too (the rollback waits for the server, and so does asyncpg's cancel request,
sent on a new connection). So an operation still running at its deadline has its connection
*terminated* (:class:`Watchdog`): everything waiting on it fails at once, the caller gets
:class:`StoreUnavailable`, and the pool replaces the connection on its next use. New
connections are bounded the same way (the connect, and the codec set-up after it).

A :class:`DedicatedConnection` is one connection outside the pool, on a thread of its own,
for what must not wait behind the process's other traffic: the instance's lease (a pool
exhausted by a connection storm's reads made live instances look dead to the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import asyncpg
import orjson
import trio
import trio_asyncio

from voltaro.store.errors import StoreUnavailable, is_outage
from voltaro.store.loop_thread import LoopThread

T = TypeVar("T")
P = ParamSpec("P")

# asyncpg has no type stubs; this alias names what a parameter is without pretending.
Connection = Any

DEFAULT_DEADLINE = 10.0  # seconds; VOLTARO_DATABASE_DEADLINE (the README says why 10)
LONG_DEADLINE = 600.0  # seconds; for operations long by nature: the CSV export, purges
CONNECT_TIMEOUT = 10.0  # seconds; a partitioned network must fail a connect, not hang it
COMMAND_TIMEOUT = 60.0  # seconds; generous: a batch COPY of many rows is legitimate work


def json_bytes(value: object) -> bytes:
    """``value`` as compact JSON, as the jsonb codec serialises it (before NUL replacement).

    Raises TypeError for what JSON cannot hold."""
    return orjson.dumps(value, default=_plain)


def stored_json(value: object) -> bytes:
    """``value`` as compact JSON, as a jsonb column stores it. PostgreSQL cannot store the
    character U+0000 in jsonb, which JSON allows: it becomes U+FFFD rather than failing the
    whole write (the only change Voltaro ever makes to what a charger sent)."""
    data = json_bytes(value)
    if b"\\u0000" in data:
        data = _replace_nul_escapes(data)
    return data


def _encode_jsonb(value: object) -> bytes:
    return b"\x01" + stored_json(value)  # binary jsonb: a version byte (1), the JSON text


class JsonbElement:
    """One element of a ``jsonb[]`` parameter: a bare list there would be taken by asyncpg
    for a dimension of the array."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


def _plain(value: object) -> object:
    """What orjson leaves out: a JsonbElement's value."""
    if isinstance(value, JsonbElement):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _replace_nul_escapes(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x5C:  # backslash: copy the escape pair, replacing \u0000
            if data[i : i + 6] == b"\\u0000":
                out += b"\\ufffd"
                i += 6
            else:
                out += data[i : i + 2]
                i += 2
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def _decode_jsonb(data: bytes) -> object:
    return orjson.loads(data[1:])


async def _setup_connection(connection: Connection) -> None:
    await connection.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


async def _no_reset(connection: Connection) -> None:
    """Pool reset hook that sends nothing (see the module docstring)."""


async def connect(url: str, timeout: float = CONNECT_TIMEOUT) -> Connection:
    """One connection outside the pool (migrations, the LISTEN connection); asyncio side.

    Connecting and setting the connection up take at most ``timeout`` seconds together (the
    set-up reads the server's catalog: against a frozen server it would hang); past that,
    TimeoutError.
    """
    connection = None
    try:
        async with asyncio.timeout(timeout):
            connection = await asyncpg.connect(url, timeout=timeout)
            await _setup_connection(connection)
    except BaseException:
        if connection is not None:
            connection.terminate()
        raise
    return connection


def redacted_url(url: str) -> str:
    """``url`` without its password (in the user part or as a ``password`` parameter)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = urllib.parse.urlencode(
        [
            (key, "***" if key == "password" else value)
            for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*/",
    )
    # not urlunsplit: it drops the empty host of postgresql:///db?host=/socket/dir
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


async def outages_unavailable(operation: Awaitable[T]) -> T:
    """``await operation``, a database outage raised as :class:`StoreUnavailable` (other
    errors as they are)."""
    try:
        return await operation
    except StoreUnavailable:
        raise
    except Exception as exc:
        if is_outage(exc):
            raise StoreUnavailable(f"database unavailable: {exc}") from exc
        raise


class Watchdog:
    """Terminates ``connection`` if the block is still running ``seconds`` after it began
    (asyncio side; see the module docstring for why termination and not cancellation).
    ``fired`` says whether it did: an exception from the block is then the watchdog's doing.
    """

    def __init__(self, connection: Connection, seconds: float, *, start: float | None = None):
        loop = asyncio.get_running_loop()
        self.fired = False
        self._connection = connection
        at = (loop.time() if start is None else start) + seconds
        self._handle = loop.call_at(at, self._fire)

    def _fire(self) -> None:
        # This runs as an asyncio callback: an exception here would end the whole server.
        self.fired = True
        # released to the pool as the deadline struck: the block is over anyway
        with contextlib.suppress(asyncpg.InterfaceError):
            self._connection.terminate()

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.cancel()


class Database:
    """An asyncpg pool used from trio. Create with :func:`open_database`.

    ``deadline``: seconds an operation may take, getting its connection included, unless it
    asks for another (see the module docstring).
    """

    def __init__(
        self,
        url: str,
        pool: Any,
        loop_thread: LoopThread | None = None,
        *,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.url = url
        self.deadline = deadline
        self._pool = pool
        self._loop_thread = loop_thread

    async def cross(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the asyncio loop that owns this pool: trio-asyncio's, or
        the pool's own thread (see :mod:`voltaro.store.loop_thread`)."""
        return await _cross(self._loop_thread, fn, *args)

    async def run(
        self, fn: Callable[..., Awaitable[T]], *args: Any, deadline: float | None = None
    ) -> T:
        """``await fn(connection, *args)`` in asyncio on a pooled connection: one crossing.

        ``deadline``: seconds it may take, default the database's (see the module docstring).
        Raises :class:`StoreUnavailable` when the database cannot be reached or does not
        answer in time; other database errors propagate as they are.
        """
        return await outages_unavailable(self.cross(self._run_aio, fn, args, deadline))

    async def _run_aio(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], deadline: float | None
    ) -> T:
        async with self.acquire(deadline) as connection:
            return await fn(connection, *args)

    @asynccontextmanager
    async def acquire(self, deadline: float | None = None) -> AsyncIterator[Connection]:
        """A pooled connection for a block that must be done within ``deadline`` seconds
        (default the database's), getting the connection included (asyncio side).

        Failing to get one is always an outage, whatever the error says (e.g. "database does
        not accept connections" is 55000). At the deadline the connection is terminated and
        the block fails with :class:`StoreUnavailable`.
        """
        seconds = self.deadline if deadline is None else deadline
        start = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(seconds):
                connection = await self._pool.acquire()
        except TimeoutError as exc:
            raise StoreUnavailable(f"no connection to the database within {seconds:g} s") from exc
        except Exception as exc:
            raise StoreUnavailable(f"cannot connect to the database: {exc}") from exc
        with Watchdog(connection, seconds, start=start) as watchdog:
            try:
                yield connection
            except Exception as exc:
                if watchdog.fired:
                    raise StoreUnavailable(
                        f"no answer from the database within {seconds:g} s"
                    ) from exc
                raise
            finally:
                await self._release(connection, watchdog)

    async def _release(self, connection: Connection, watchdog: Watchdog) -> None:
        """Back to the pool (a terminated one is dropped). The watchdog may strike while the
        release is under way (it resets the connection with a query): terminating it then
        hands its holder back to the pool already, and asyncpg's own release, resuming,
        finds the holder free. Seen as a worker crash in a storm; nothing is left to do."""
        try:
            await self._pool.release(connection)
        except asyncpg.InternalClientError:
            if not watchdog.fired:
                raise

    async def run_in_transaction(
        self, fn: Callable[..., Awaitable[T]], *args: Any, deadline: float | None = None
    ) -> T:
        """Like :meth:`run`, inside one transaction."""

        async def in_transaction(connection: Connection, *inner: Any) -> T:
            async with connection.transaction():
                return await fn(connection, *inner)

        return await self.run(in_transaction, *args, deadline=deadline)

    def pool_stats(self) -> dict[str, int]:
        """Open and idle connections, for metrics."""
        return {"size": self._pool.get_size(), "idle": self._pool.get_idle_size()}


class DedicatedConnection:
    """One connection outside the pool, on an asyncio loop of its own thread, reached from
    trio with :meth:`run`. Create with :func:`open_dedicated_connection`.

    Why: whatever the rest of the process does to the pool (every connection held by slow
    reads in a storm, waits of ``deadline`` seconds for one), an operation here waits only
    for PostgreSQL; and on its own thread a round trip does not wait for the trio
    scheduler's next turn either (see :mod:`.loop_thread`). It is meant for small, rare,
    urgent statements (the lease), one at a time.

    Error handling: connected at the first :meth:`run`, and again at the next one after an
    outage. Each :meth:`run` has ``deadline`` seconds, connecting included; past it the
    connection is terminated, as a pooled one is (see the module docstring). An outage or
    the deadline raises :class:`StoreUnavailable` and drops the connection; other database
    errors propagate and keep it.
    """

    def __init__(self, url: str, loop_thread: LoopThread, *, deadline: float) -> None:
        self.url = url
        self.deadline = deadline
        self.connects = 0
        """Connections made so far (the first, and one after each outage)."""
        self._loop_thread = loop_thread
        self._connection: Connection | None = None  # touched on the thread's loop only

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(connection, *args)``, an asyncio function, on the dedicated connection:
        one crossing. Raises :class:`StoreUnavailable` as :meth:`Database.run` does."""
        return await outages_unavailable(self._loop_thread.cross(self._run_aio, fn, args))

    async def _run_aio(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        start = asyncio.get_running_loop().time()
        connection = self._connection
        if connection is None:
            try:
                connection = await connect(self.url, timeout=self.deadline)
            except Exception as exc:
                raise StoreUnavailable(f"cannot connect to the database: {exc}") from exc
            self._connection = connection
            self.connects += 1
        with Watchdog(connection, self.deadline, start=start) as watchdog:
            try:
                return await fn(connection, *args)
            except Exception as exc:
                if watchdog.fired or is_outage(exc, connection):
                    self._drop()
                if watchdog.fired:
                    raise StoreUnavailable(
                        f"no answer from the database within {self.deadline:g} s"
                    ) from exc
                raise
            except BaseException:  # cancelled mid-statement: its state is unknown
                self._drop()
                raise

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    async def _close_aio(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), 5)
            except Exception:  # frozen or gone: nothing to say goodbye to
                connection.terminate()


@asynccontextmanager
async def open_dedicated_connection(
    url: str, *, deadline: float = DEFAULT_DEADLINE
) -> AsyncIterator[DedicatedConnection]:
    """A :class:`DedicatedConnection` for the block (connected at its first use); closed,
    and its thread stopped, on the way out."""
    loop_thread = LoopThread("voltaro-dedicated")
    try:
        dedicated = DedicatedConnection(url, loop_thread, deadline=deadline)
        try:
            yield dedicated
        finally:
            with trio.CancelScope(shield=True):
                await loop_thread.cross(dedicated._close_aio)
    finally:
        with trio.CancelScope(shield=True):
            await loop_thread.stop()


async def _cross(loop_thread: LoopThread | None, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    if loop_thread is not None:
        return await loop_thread.cross(fn, *args)
    result: T = await trio_asyncio.aio_as_trio(fn)(*args)
    return result


async def _create_pool(url: str, min_size: int, max_size: int, deadline: float) -> Any:
    # The first connections (and their set-up queries) within the deadline too.
    async with asyncio.timeout(deadline):
        return await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_setup_connection,
            reset=_no_reset,
            timeout=min(CONNECT_TIMEOUT, deadline),
            command_timeout=COMMAND_TIMEOUT,
        )


@asynccontextmanager
async def open_database(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    own_thread: bool = False,
    deadline: float = DEFAULT_DEADLINE,
) -> AsyncIterator[Database]:
    """A :class:`Database` for the block; the pool is closed (at most 5 s) on the way out.

    Must run inside ``trio_asyncio.open_loop()``, unless ``own_thread``: then the pool lives
    on an asyncio loop of its own thread (the writer's, see :mod:`voltaro.store.loop_thread`).
    ``deadline``: seconds an operation may take (see the module docstring). Raises
    :class:`StoreUnavailable` when the database cannot be reached at start.
    """
    loop_thread = LoopThread("voltaro-db") if own_thread else None
    try:
        try:
            pool = await _cross(loop_thread, _create_pool, url, min_size, max_size, deadline)
        except Exception as exc:
            if is_outage(exc):
                raise StoreUnavailable(f"cannot connect to the database: {exc}") from exc
            raise
        try:
            yield Database(url, pool, loop_thread, deadline=deadline)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5) as scope:
                await _cross(loop_thread, pool.close)
            if scope.cancelled_caught:
                pool.terminate()
    finally:
        if loop_thread is not None:
            with trio.CancelScope(shield=True):
                await loop_thread.stop()
