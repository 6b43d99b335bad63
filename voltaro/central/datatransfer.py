"""DataTransfer: vendor-specific messages, dispatched to handlers registered per vendorId.

A vendor handler gets (charge point id, messageId or None, data or None) and returns the
CALLRESULT payload: ``{"status": "Accepted" | "Rejected" | "UnknownMessageId", "data": ...}``.
A vendorId nobody registered is answered ``UnknownVendorId``, as OCPP 1.6 prescribes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

VendorHandler = Callable[[str, str | None, str | None], Awaitable[dict[str, Any]]]


class DataTransferRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, VendorHandler] = {}

    def register(self, vendor_id: str, handler: VendorHandler) -> None:
        """Route DataTransfer requests with this vendorId to ``handler`` (replaces any)."""
        self._handlers[vendor_id] = handler

    def unregister(self, vendor_id: str) -> None:
        self._handlers.pop(vendor_id, None)

    async def handle(
        self, charge_point_id: str, vendor_id: str, message_id: str | None, data: str | None
    ) -> dict[str, Any]:
        handler = self._handlers.get(vendor_id)
        if handler is None:
            return {"status": "UnknownVendorId"}
        return await handler(charge_point_id, message_id, data)
