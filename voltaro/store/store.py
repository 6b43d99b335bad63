"""The store as one object: :func:`open_store` starts everything that talks to PostgreSQL
(embedded server if no URL, migrations, pool, group-commit writer, id tag cache) and
:class:`Store` gives the repositories to the domain code."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import trio

from voltaro.store.accounts import AccountRepository
from voltaro.store.admin_queries import AdminQueries
from voltaro.store.audit import AuditRepository
from voltaro.store.charge_points import ChargePointRepository
from voltaro.store.command_queue import CommandQueue
from voltaro.store.connectors import ConnectorRepository
from voltaro.store.database import DEFAULT_DEADLINE, Database, open_database
from voltaro.store.embedded import embedded_postgres
from voltaro.store.fleet_stats import FleetStats
from voltaro.store.id_tags import IdTagCache, IdTagRepository
from voltaro.store.instances import InstanceRepository
from voltaro.store.message_log import MessageLogLimits, MessageLogRepository
from voltaro.store.migrate import migrate
from voltaro.store.refused_id_tags import RefusedIdTags
from voltaro.store.security_events import SecurityEventRepository
from voltaro.store.sign_in_attempts import SignInAttempts
from voltaro.store.transactions import TransactionRepository
from voltaro.store.writer import GroupCommitWriter

log = logging.getLogger(__name__)


class Store:
    """Repositories over one database, sharing one writer."""

    def __init__(
        self,
        database: Database,
        writer: GroupCommitWriter,
        id_tag_cache: IdTagCache,
        message_log_limits: MessageLogLimits | None = None,
        batched_reads: Database | None = None,
    ):
        """``batched_reads``: where the batched reads go (default ``database``)."""
        self.database = database
        self.writer = writer
        self.id_tag_cache = id_tag_cache
        self.open_transactions = id_tag_cache.open_transactions
        self.charge_points = ChargePointRepository(
            database, writer, changed=id_tag_cache.charge_points.forget
        )
        self.charge_point_cache = id_tag_cache.charge_points
        self.connectors = ConnectorRepository(database, writer, batched_reads or database)
        self.transactions = TransactionRepository(database, writer)
        self.message_log = MessageLogRepository(database, writer, message_log_limits)
        self.security_events = SecurityEventRepository(database, writer)
        self.refused_id_tags = RefusedIdTags(database, writer)
        self.id_tags = IdTagRepository(database)
        self.admin = AdminQueries(database)
        self.instances = InstanceRepository(database)
        self.command_queue = CommandQueue(database)
        self.accounts = AccountRepository(database)
        self.audit = AuditRepository(database)
        self.sign_in_attempts = SignInAttempts(database)
        self.fleet_stats = FleetStats(database)


@asynccontextmanager
async def database_url(url: str | None, data_dir: Path) -> AsyncIterator[str]:
    """``url``, or the embedded server's URL (started for the block) when ``url`` is None."""
    if url is not None:
        yield url
        return
    async with embedded_postgres(data_dir) as embedded:
        yield embedded


@asynccontextmanager
async def open_store(
    url: str | None,
    data_dir: Path,
    *,
    migrate_first: bool = True,
    background: bool = True,
    deadline: float = DEFAULT_DEADLINE,
    message_log_limits: MessageLogLimits | None = None,
    node_id: str | None = None,
) -> AsyncIterator[Store]:
    """A running :class:`Store` for the block (inside ``trio_asyncio.open_loop()``).

    Order on the way in: database (embedded when ``url`` is None), migrations, pool, the
    writer's own pool and the batched reads' (each on its own thread, see
    :mod:`.loop_thread`), writer, id tag cache
    (loaded), the batched reads (:mod:`.read_batch`). On the way out, the reverse: the writer
    fails whoever still waits, the pool closes, the embedded server stops.

    ``background=False`` (operator commands) starts neither the writer nor the cache: only
    the direct reads and operator commands of the repositories work then.

    ``deadline``: seconds any database operation may take unless it asks for longer (the
    writer's batches and submits, reads, the id tag cache's health check; see
    :mod:`.database`). Migrations are not bounded (only their connect is): how long one takes
    depends on the data, and one stopped halfway would only start over at the next start.
    ``message_log_limits``: the message log's bounds (default :class:`MessageLogLimits`).
    ``node_id``: the node that migrates (see :func:`~voltaro.store.migrate.migrate`); None
    (an operator's command) counts every live instance as another.
    """
    with collapse_single_exception():
        async with AsyncExitStack() as stack:
            resolved = await stack.enter_async_context(database_url(url, data_dir))
            if migrate_first:
                await migrate(resolved, node_id=node_id)
            database = await stack.enter_async_context(open_database(resolved, deadline=deadline))
            writer_database = batch_database = database
            if background:
                writer_database = await stack.enter_async_context(
                    open_database(
                        resolved, min_size=1, max_size=1, own_thread=True, deadline=deadline
                    )
                )
                batch_database = await stack.enter_async_context(
                    open_database(
                        resolved, min_size=1, max_size=2, own_thread=True, deadline=deadline
                    )
                )
            nursery = await stack.enter_async_context(trio.open_nursery())
            writer = GroupCommitWriter(writer_database)
            cache = IdTagCache(database)
            store = Store(database, writer, cache, message_log_limits, batch_database)
            if background:
                await nursery.start(writer.run)
                await nursery.start(cache.run)
                await nursery.start(store.connectors.run)
            try:
                yield store
            finally:
                nursery.cancel_scope.cancel()


@contextmanager
def collapse_single_exception() -> Iterator[None]:
    """Re-raise a lone exception out of the ExceptionGroup a nursery wraps it in.

    A context manager that runs background tasks yields inside a nursery, so whatever the
    caller's block raises (a CommandError, an OcppError in a test) would come out wrapped;
    the background tasks were cancelled on the way out, so a group of one is the caller's
    own exception and is given back as it was raised.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
