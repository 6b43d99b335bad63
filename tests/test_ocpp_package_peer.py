"""The `ocpp` package's v16 ChargePoint (written by others, validates on its side) against us."""

from __future__ import annotations

import asyncio
import contextlib

import trio
import websockets
from ocpp.v16 import ChargePoint, call
from ocpp.v16.enums import RegistrationStatus

from tests.harness import LiveServer, start_test_server
from tests.test_rpc_server import core_handlers
from tests.threaded import run_asyncio, trio_in_thread


async def _start(nursery: trio.Nursery) -> LiveServer:
    return await start_test_server(nursery, core_handlers)


def test_ocpp_package_charge_point_boots_and_heartbeats() -> None:
    with trio_in_thread(_start) as server:

        async def charger() -> tuple[object, object]:
            async with websockets.connect(server.url("PKG1"), subprotocols=["ocpp1.6"]) as ws:
                assert ws.subprotocol == "ocpp1.6"
                charge_point = ChargePoint("PKG1", ws)
                listener = asyncio.create_task(charge_point.start())
                try:
                    boot = await charge_point.call(
                        call.BootNotification(
                            charge_point_model="Model-X", charge_point_vendor="VendorY"
                        )
                    )
                    heartbeat = await charge_point.call(call.Heartbeat())
                finally:
                    listener.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await listener
                return boot, heartbeat

        boot, heartbeat = run_asyncio(charger())
    assert boot.status == RegistrationStatus.accepted  # type: ignore[attr-defined]
    assert boot.interval == 300  # type: ignore[attr-defined]
    assert heartbeat.current_time.endswith("Z")  # type: ignore[attr-defined]


def test_asyncio_peers_run_on_a_plain_asyncio_loop() -> None:
    """With trio_asyncio imported (Voltaro imports it), ``asyncio.run`` runs on trio-asyncio's
    sync loop, where a cancelled peer's listener at times sat unwoken for minutes; the peers
    run on asyncio's own loop instead (see :func:`run_asyncio`)."""

    async def running_loop() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert run_asyncio(running_loop()) is asyncio.SelectorEventLoop
    assert asyncio.run(running_loop()).__module__.startswith("trio_asyncio")  # why
