"""The OCPP server asks for its dialect's subprotocol (``ServerOptions.dialect``), not a
constant: a second dialect is selected by its own name and refuses the other."""

from __future__ import annotations

import dataclasses

import pytest
import trio
from trio_websocket import ConnectionClosed, connect_websocket_url

from tests.harness import start_test_server
from tests.test_rpc_server import core_handlers
from voltaro.ocppj.dialect import OCPP16


async def test_the_server_selects_its_dialects_subprotocol(nursery: trio.Nursery) -> None:
    dialect = dataclasses.replace(OCPP16, name="test", subprotocol="ocpp-test")
    server = await start_test_server(nursery, core_handlers, dialect=dialect)
    chosen = await connect_websocket_url(
        nursery, server.url("CP1"), subprotocols=["ocpp1.6", "ocpp-test"]
    )
    assert chosen.subprotocol == "ocpp-test"
    refused = await connect_websocket_url(nursery, server.url("CP2"), subprotocols=["ocpp1.6"])
    assert refused.subprotocol is None
    with pytest.raises(ConnectionClosed) as closed:
        await refused.get_message()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1002
    assert "ocpp-test" in (closed.value.reason.reason or "")
