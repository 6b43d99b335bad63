"""A small scripted charger for the dashboard tests: boots, reports its connectors, answers
every command the dashboard sends, and charges when started remotely (MeterValues with the
energy register and power every few hundred milliseconds until stopped remotely)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

METER_PERIOD = 0.25  # seconds between MeterValues while charging
POWER_W = 7400


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ScriptedCharger:
    def __init__(self, url: str) -> None:
        self.url = url
        self.websocket: WebSocketConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[trio.Event, list[Any]]] = {}
        self._call_lock = trio.Lock()
        self._stop = trio.Event()
        self.transaction_id: int | None = None
        self.register_wh = 1000.0
        self.received: list[str] = []

    async def start(self, nursery: trio.Nursery) -> None:
        """Connect, boot and report both connectors Available."""
        self.websocket = await connect_websocket_url(nursery, self.url, subprotocols=["ocpp1.6"])
        nursery.start_soon(self._reader, nursery)
        await self.call(
            "BootNotification",
            {
                "chargePointVendor": "Voltaro",
                "chargePointModel": "Dashboard Tester",
                "firmwareVersion": "1.2.3",
            },
        )
        for connector in (0, 1, 2):
            await self.status(connector, "Available")

    async def close(self) -> None:
        assert self.websocket is not None
        await self.websocket.aclose()

    async def status(self, connector: int, status: str) -> None:
        await self.call(
            "StatusNotification",
            {
                "connectorId": connector,
                "errorCode": "NoError",
                "status": status,
                "timestamp": now(),
            },
        )

    async def call(self, action: str, payload: dict[str, Any]) -> Any:
        assert self.websocket is not None
        async with self._call_lock:
            message_id = f"c{next(self._ids)}"
            done = trio.Event()
            box: list[Any] = []
            self._pending[message_id] = (done, box)
            await self.websocket.send_message(
                orjson.dumps([2, message_id, action, payload]).decode()
            )
            with trio.fail_after(10):
                await done.wait()
            frame = box[0]
            assert frame[0] == 3, frame
            return frame[2]

    async def _reader(self, nursery: trio.Nursery) -> None:
        assert self.websocket is not None
        while True:
            try:
                frame = orjson.loads(await self.websocket.get_message())
            except ConnectionClosed:
                return
            if frame[0] == 2:
                nursery.start_soon(self._answer, nursery, frame)
            elif frame[1] in self._pending:
                done, box = self._pending.pop(frame[1])
                box.append(frame)
                done.set()

    async def _answer(self, nursery: trio.Nursery, frame: list[Any]) -> None:
        assert self.websocket is not None
        _, message_id, action, payload = frame
        self.received.append(action)
        answers: dict[str, Any] = {
            "Reset": {"status": "Accepted"},
            "ChangeAvailability": {"status": "Accepted"},
            "ChangeConfiguration": {"status": "Accepted"},
            "ClearCache": {"status": "Accepted"},
            "DataTransfer": {"status": "UnknownVendorId"},
            "GetConfiguration": {
                "configurationKey": [
                    {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
                    {"key": "MeterValueSampleInterval", "readonly": False, "value": "1"},
                ]
            },
            "TriggerMessage": {"status": "Accepted"},
            "UnlockConnector": {"status": "Unlocked"},
            "ReserveNow": {"status": "Accepted"},
        }
        if action == "RemoteStartTransaction":
            busy = self.transaction_id is not None
            answer = {"status": "Rejected" if busy else "Accepted"}
            if not busy:
                nursery.start_soon(self._charge, payload["idTag"], payload.get("connectorId", 1))
        elif action == "RemoteStopTransaction":
            ours = payload["transactionId"] == self.transaction_id
            answer = {"status": "Accepted" if ours else "Rejected"}
            if ours:
                self._stop.set()
        elif action == "TriggerMessage" and payload["requestedMessage"] != "Heartbeat":
            answer = {"status": "NotImplemented"}  # a charger that can trigger only that
        elif action in answers:
            answer = answers[action]
        else:  # as a real charger answers what it does not implement (a local list, say)
            error = [4, message_id, "NotImplemented", f"{action} is not implemented", {}]
            await self.websocket.send_message(orjson.dumps(error).decode())
            return
        await self.websocket.send_message(orjson.dumps([3, message_id, answer]).decode())

    async def _charge(self, id_tag: str, connector: int) -> None:
        self._stop = trio.Event()
        await self.status(connector, "Preparing")
        started = await self.call(
            "StartTransaction",
            {
                "connectorId": connector,
                "idTag": id_tag,
                "meterStart": int(self.register_wh),
                "timestamp": now(),
            },
        )
        self.transaction_id = started["transactionId"]
        await self.status(connector, "Charging")
        while not self._stop.is_set():
            with trio.move_on_after(METER_PERIOD):
                await self._stop.wait()
            self.register_wh += POWER_W * 10 / 3600  # ten "seconds" of charging per tick
            await self.call(
                "MeterValues",
                {
                    "connectorId": connector,
                    "transactionId": self.transaction_id,
                    "meterValue": [
                        {
                            "timestamp": now(),
                            "sampledValue": [
                                {
                                    "value": f"{self.register_wh:.0f}",
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                },
                                {
                                    "value": str(POWER_W - 100 * (int(self.register_wh) % 7)),
                                    "measurand": "Power.Active.Import",
                                    "unit": "W",
                                },
                            ],
                        }
                    ],
                },
            )
        await self.status(connector, "Finishing")
        await self.call(
            "StopTransaction",
            {
                "transactionId": self.transaction_id,
                "meterStop": int(self.register_wh),
                "timestamp": now(),
                "reason": "Remote",
            },
        )
        self.transaction_id = None
        await self.status(connector, "Available")
