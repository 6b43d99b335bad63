"""Central tests: a running CentralSystem on a fresh database of the session's embedded
PostgreSQL (see voltaro.store.testing)."""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from voltaro.central import CentralSystem, open_central_system
from voltaro.config import Settings
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]


@pytest.fixture
async def central(voltaro_settings: Settings, aio_loop: Any) -> AsyncIterator[CentralSystem]:
    async with open_central_system(voltaro_settings) as system:
        yield system
