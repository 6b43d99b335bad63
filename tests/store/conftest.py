"""Store tests run against the session's embedded PostgreSQL (see voltaro.store.testing)."""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from voltaro.store import Store, open_store
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]


@pytest.fixture
async def store(database_url: str, aio_loop: Any, tmp_path: Any) -> AsyncIterator[Store]:
    async with open_store(database_url, tmp_path) as opened:
        yield opened
