"""One live Voltaro (OCPP + admin HTTP, fresh database) per test module, on a thread, so the
tests can talk to it with plain HTTP clients and with the `ocpp` package's ChargePoint."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import websockets
from ocpp.v16 import ChargePoint, call

from tests.e2e import start_voltaro_with_loop
from tests.threaded import run_asyncio, trio_in_thread
from voltaro.app import Voltaro
from voltaro.config import Settings
from voltaro.store.testing import TestPostgres

PeerT = TypeVar("PeerT", bound=ChargePoint)


@dataclasses.dataclass
class Live:
    voltaro: Voltaro
    base: str
    token: str

    def ws_url(self, charge_point_id: str) -> str:
        assert self.voltaro.server is not None
        return f"ws://127.0.0.1:{self.voltaro.server.port}/ocpp/{charge_point_id}"

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=30,
        )

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )


def live_settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        admin_host="127.0.0.1",
        admin_port=0,
        unknown_chargers="accept",
        call_timeout=5.0,
    )


@pytest.fixture(scope="module")
def live(pg_server: TestPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    url = pg_server.new_database()
    data_dir = tmp_path_factory.mktemp("admin") / "data"
    settings = live_settings(url, data_dir)
    try:
        with trio_in_thread(
            lambda nursery: nursery.start(start_voltaro_with_loop, settings)
        ) as voltaro:
            assert voltaro.admin_url is not None
            token = (data_dir / "admin-token").read_text().strip()
            yield Live(voltaro, voltaro.admin_url, token)
    finally:
        pg_server.drop_database(url)


def run_sql(live: Live, statement: str, *args: Any) -> None:
    """One statement on the live server's database, over a connection of its own (on a
    thread of its own: a caller may be inside an event loop, as Playwright's sync API is)."""

    async def execute() -> None:
        connection = await asyncpg.connect(live.voltaro.settings.database_url)
        try:
            await connection.execute(statement, *args)
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(run_asyncio, execute()).result(timeout=60)


@pytest.fixture
def api(live: Live) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client


@contextlib.asynccontextmanager
async def booted_peer(
    live: Live, charge_point_id: str, make: Callable[[str, Any], PeerT]
) -> AsyncIterator[PeerT]:
    """An `ocpp` package charger (``make(id, websocket)``) connected to ``live`` and booted;
    its listener stops when the block ends."""
    async with websockets.connect(live.ws_url(charge_point_id), subprotocols=["ocpp1.6"]) as ws:
        charger = make(charge_point_id, ws)
        listener = asyncio.create_task(charger.start())
        try:
            await charger.call(
                call.BootNotification(charge_point_model="M", charge_point_vendor="V")
            )
            yield charger
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
