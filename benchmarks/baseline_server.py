"""The baseline: a Central System as a Python developer would write it with the `ocpp`
package on `websockets`, answering the Core messages from memory (nothing persisted).

    python -m benchmarks.baseline_server --port 0     # prints "ready PORT" when listening
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import ServerConnection, serve

from voltaro.process_limits import raise_open_file_limit

_transaction_ids = itertools.count(1)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class BaselineChargePoint(ChargePoint):  # type: ignore[misc]
    @on(Action.boot_notification)  # type: ignore[misc]
    async def on_boot(self, **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(_now(), 300, RegistrationStatus.accepted)

    @on(Action.heartbeat)  # type: ignore[misc]
    async def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(_now())

    @on(Action.status_notification)  # type: ignore[misc]
    async def on_status(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on(Action.authorize)  # type: ignore[misc]
    async def on_authorize(self, **_: Any) -> call_result.Authorize:
        return call_result.Authorize({"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)  # type: ignore[misc]
    async def on_start(self, **_: Any) -> call_result.StartTransaction:
        return call_result.StartTransaction(
            next(_transaction_ids), {"status": AuthorizationStatus.accepted}
        )

    @on(Action.stop_transaction)  # type: ignore[misc]
    async def on_stop(self, **_: Any) -> call_result.StopTransaction:
        return call_result.StopTransaction()

    @on(Action.meter_values)  # type: ignore[misc]
    async def on_meter_values(self, **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()


async def _handler(connection: ServerConnection) -> None:
    charge_point_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
    charge_point = BaselineChargePoint(charge_point_id, connection)
    try:
        await charge_point.start()
    except Exception:  # the charger went away
        return


async def main(host: str, port: int) -> None:
    async with serve(
        _handler, host, port, subprotocols=["ocpp1.6"], ping_interval=None, max_size=1 << 20
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"ready {bound}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_open_file_limit()  # as voltaro serve does: thousands of chargers
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    asyncio.run(main(args.host, args.port))
