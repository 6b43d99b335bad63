"""The RPC endpoint and transport over real WebSockets: each error code, outbound calls,
ordering, crossing calls, connection replacement, subprotocol refusal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    connect_websocket_url,
    open_websocket_url,
)
from wsproto import ConnectionType, WSConnection
from wsproto.events import CloseConnection, Request

from tests.harness import LiveServer, RawCharger, start_test_server
from voltaro.ocppj.endpoint import (
    CallErrorReceived,
    CallTimeout,
    ConnectionLost,
    Handler,
    InvalidRequest,
    InvalidResponse,
)
from voltaro.transport.server import Admission

Payload = dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def core_handlers(charge_point_id: str, server: LiveServer) -> Mapping[str, Handler]:
    async def boot(payload: Payload) -> Payload:
        return {"status": "Accepted", "currentTime": now(), "interval": 300}

    async def heartbeat(payload: Payload) -> Payload:
        return {"currentTime": now()}

    async def authorize(payload: Payload) -> Payload:
        if payload["idTag"] == "CRASH":
            raise RuntimeError("secret internals /srv/voltaro/db.py line 12")
        if payload["idTag"] == "BADRESPONSE":
            return {"idTagInfo": {"status": "Maybe"}}
        if payload["idTag"] == "SLOW":
            await trio.sleep(0.5)
        return {"idTagInfo": {"status": "Accepted"}}

    async def data_transfer(payload: Payload) -> Payload:
        # Calls back into the charger while its own CALL is in progress: calls that cross.
        endpoint = server.endpoints[charge_point_id]
        result = await endpoint.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
        return {"status": "Accepted", "data": str(len(result["configurationKey"]))}

    return {
        "BootNotification": boot,
        "Heartbeat": heartbeat,
        "Authorize": authorize,
        "DataTransfer": data_transfer,
    }


@pytest.fixture
async def server(nursery: trio.Nursery) -> LiveServer:
    return await start_test_server(nursery, core_handlers, max_frame=4096, call_timeout=1.0)


async def handshake_rejection(url: str, headers: list[tuple[bytes, bytes]] | None = None) -> int:
    """The HTTP status a handshake is refused with."""
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url, subprotocols=["ocpp1.6"], extra_headers=headers):
            pass
    return int(rejected.value.status_code)


async def connect(nursery: trio.Nursery, server: LiveServer, cp: str = "CP1") -> RawCharger:
    return await RawCharger.connect(nursery, server.url(cp))


async def test_boot_and_heartbeat(nursery: trio.Nursery, server: LiveServer) -> None:
    charger = await connect(nursery, server)
    boot = await charger.call(
        "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
    )
    assert boot[0] == 3
    assert boot[2]["status"] == "Accepted"
    assert boot[2]["interval"] == 300
    heartbeat = await charger.call("Heartbeat", {})
    assert heartbeat[0] == 3
    assert heartbeat[2]["currentTime"].endswith("Z")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ([2, "m1", "MakeCoffee", {}], "NotImplemented"),
        ([2, "m1", "FirmwareStatusNotification", {"status": "Idle"}], "NotSupported"),
        ([2, "m1", "Reset", {"type": "Hard"}], "NotSupported"),
        (
            [2, "m1", "BootNotification", {"chargePointVendor": 5, "chargePointModel": "M"}],
            "TypeConstraintViolation",
        ),
        ([2, "m1", "BootNotification", {"chargePointVendor": "V"}], "OccurenceConstraintViolation"),
        (
            [2, "m1", "BootNotification", {"chargePointVendor": "V" * 21, "chargePointModel": "M"}],
            "PropertyConstraintViolation",
        ),
        (
            [
                2,
                "m1",
                "BootNotification",
                {"chargePointVendor": "V", "chargePointModel": "M", "colour": "red"},
            ],
            "FormationViolation",
        ),
        ([2, "m1", "Heartbeat"], "ProtocolError"),
        ([2, "m1", "Heartbeat", "{}"], "FormationViolation"),
        ([2, "x" * 37, "Heartbeat", {}], "FormationViolation"),
        ([2, "m1", "Authorize", {"idTag": "CRASH"}], "InternalError"),
        ([2, "m1", "Authorize", {"idTag": "BADRESPONSE"}], "InternalError"),
    ],
)
async def test_each_error_code_on_the_wire(
    nursery: trio.Nursery, server: LiveServer, frame: list[Any], code: str
) -> None:
    charger = await connect(nursery, server)
    await charger.send(frame)
    answer = await charger.receive()
    assert answer[0] == 4
    assert answer[1] == frame[1]
    assert answer[2] == code
    assert answer[3]  # a description that says what was wrong
    assert isinstance(answer[4], dict)
    # and the same connection keeps answering
    assert (await charger.call("Heartbeat", {}))[0] == 3


async def test_internal_error_never_leaks_internals(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    answer = await charger.call("Authorize", {"idTag": "CRASH"})
    assert answer[2] == "InternalError"
    assert "secret" not in str(answer) and "Traceback" not in str(answer)
    assert answer[3] == "Authorize could not be processed"


async def test_schema_violation_names_the_field(nursery: trio.Nursery, server: LiveServer) -> None:
    charger = await connect(nursery, server)
    answer = await charger.call(
        "BootNotification", {"chargePointVendor": "V" * 21, "chargePointModel": "M"}
    )
    assert "chargePointVendor" in answer[3]
    assert answer[4]["path"] == "$.chargePointVendor"


@pytest.mark.parametrize("text", ["nonsense", "[]", '{"a":1}', '[2, 5, "Heartbeat", {}]'])
async def test_unreadable_id_is_answered_with_minus_one(
    nursery: trio.Nursery, server: LiveServer, text: str
) -> None:
    charger = await connect(nursery, server)
    await charger.send_text(text)
    answer = await charger.receive()
    assert answer[:3] == [4, "-1", "FormationViolation"]


async def test_binary_frame_is_formation_violation(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    await charger.send_text(b'[2,"b1","Heartbeat",{}]')
    answer = await charger.receive()
    assert answer[:3] == [4, "b1", "FormationViolation"]
    assert "binary" in answer[3]


async def test_answers_are_dropped_never_answered(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    await charger.send([3, "nobody-asked", {}])
    await charger.send([4, "nobody-asked", "GenericError", "x", {}])
    await charger.send([3, "broken"])
    await charger.send([9, "unknown type", {}])
    # The next thing we receive is the answer to this Heartbeat, nothing before it.
    assert (await charger.call("Heartbeat", {}))[0] == 3


async def test_reused_id_of_call_in_progress_is_protocol_error(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    await charger.send([2, "same", "Authorize", {"idTag": "SLOW"}])
    await charger.send([2, "same", "Heartbeat", {}])
    first = await charger.receive()
    assert first[:3] == [4, "same", "ProtocolError"]
    assert "in progress" in first[3]
    second = await charger.receive()
    assert second[0] == 3 and second[2] == {"idTagInfo": {"status": "Accepted"}}
    # once answered, the id may be used again
    await charger.send([2, "same", "Heartbeat", {}])
    assert (await charger.receive())[0] == 3


async def test_inbound_calls_are_answered_in_order(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    await charger.send([2, "a", "Authorize", {"idTag": "SLOW"}])
    await charger.send([2, "b", "Heartbeat", {}])
    assert [(await charger.receive())[1] for _ in range(2)] == ["a", "b"]


def answering_workers() -> int:
    """The tasks answering a charger's CALLs now (RpcEndpoint's workers) in this trio run."""
    count = 0
    tasks = [trio.lowlevel.current_root_task()]
    while tasks:
        task = tasks.pop()
        count += task is not None and task.name.endswith("RpcEndpoint._answer_calls")
        if task is not None:
            tasks += [child for nursery in task.child_nurseries for child in nursery.child_tasks]
    return count


async def test_one_worker_answers_while_calls_wait_and_an_idle_connection_has_none(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    await server.endpoint("CP1")
    await trio.testing.wait_all_tasks_blocked()
    assert answering_workers() == 0
    await charger.send([2, "a", "Authorize", {"idTag": "SLOW"}])
    await charger.send([2, "b", "Heartbeat", {}])
    await trio.testing.wait_all_tasks_blocked()
    assert answering_workers() == 1
    assert [(await charger.receive())[1] for _ in range(2)] == ["a", "b"]
    await trio.testing.wait_all_tasks_blocked()
    assert answering_workers() == 0
    assert (await charger.call("Heartbeat", {}))[0] == 3  # a worker again for the next


async def test_frame_over_limit_closes_with_1009(nursery: trio.Nursery, server: LiveServer) -> None:
    charger = await connect(nursery, server)
    await charger.send([2, "big", "DataTransfer", {"vendorId": "V", "data": "x" * 5000}])
    with pytest.raises(ConnectionClosed) as closed:
        await charger.receive()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1009


async def test_outbound_call_round_trip(nursery: trio.Nursery, server: LiveServer) -> None:
    charger = await connect(nursery, server)
    endpoint = await server.endpoint("CP1")
    async with trio.open_nursery() as inner:
        results: list[Payload] = []

        async def call() -> None:
            results.append(await endpoint.call("Reset", {"type": "Soft"}))

        inner.start_soon(call)
        frame = await charger.receive()
        assert frame[0] == 2 and frame[2] == "Reset" and frame[3] == {"type": "Soft"}
        assert 0 < len(frame[1]) <= 36
        await charger.send([3, frame[1], {"status": "Accepted"}])
    assert results == [{"status": "Accepted"}]


async def test_outbound_call_timeout_then_late_answer_is_dropped(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    endpoint = await server.endpoint("CP1")
    async with trio.open_nursery() as inner:
        inner.start_soon(charger.receive)  # read the CALL, never answer it
        with pytest.raises(CallTimeout, match=r"within 0\.2 s"):
            await endpoint.call("ClearCache", {}, timeout=0.2)
    await charger.send([3, "late-answer", {"status": "Accepted"}])
    assert (await charger.call("Heartbeat", {}))[0] == 3


async def test_outbound_call_error_carries_code_description_details(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    endpoint = await server.endpoint("CP1")
    async with trio.open_nursery() as inner:

        async def answer() -> None:
            frame = await charger.receive()
            await charger.send([4, frame[1], "NotSupported", "no resets here", {"why": "test"}])

        inner.start_soon(answer)
        with pytest.raises(CallErrorReceived) as error:
            await endpoint.call("Reset", {"type": "Hard"})
    assert error.value.code == "NotSupported"
    assert error.value.description == "no resets here"
    assert error.value.details == {"why": "test"}


async def test_outbound_invalid_payload_is_not_sent(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    await connect(nursery, server)
    endpoint = await server.endpoint("CP1")
    with pytest.raises(InvalidRequest, match="type"):
        await endpoint.call("Reset", {"type": "Gentle"})


async def test_outbound_invalid_response_raises(nursery: trio.Nursery, server: LiveServer) -> None:
    charger = await connect(nursery, server)
    endpoint = await server.endpoint("CP1")
    async with trio.open_nursery() as inner:

        async def answer() -> None:
            frame = await charger.receive()
            await charger.send([3, frame[1], {"status": "Perhaps"}])

        inner.start_soon(answer)
        with pytest.raises(InvalidResponse, match="status"):
            await endpoint.call("Reset", {"type": "Hard"})


async def test_one_outstanding_call_at_a_time_in_order(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    endpoint = await server.endpoint("CP1")
    order: list[str] = []
    message_ids: set[str] = set()
    async with trio.open_nursery() as inner:
        for key in ("k0", "k1", "k2"):
            inner.start_soon(endpoint.call, "GetConfiguration", {"key": [key]})
            await trio.sleep(0.01)  # start them in a known order
        for _ in range(3):
            frame = await charger.receive()
            order.append(frame[3]["key"][0])
            assert isinstance(frame[1], str) and 0 < len(frame[1]) <= 36
            message_ids.add(frame[1])
            # nothing else may arrive while this CALL is unanswered
            with trio.move_on_after(0.1):
                extra = await charger.websocket.get_message()
                pytest.fail(f"a second CALL was sent while one was outstanding: {extra}")
            await charger.send([3, frame[1], {"configurationKey": []}])
        assert order == ["k0", "k1", "k2"]
        assert len(message_ids) == 3


async def test_crossing_calls_do_not_deadlock(nursery: trio.Nursery, server: LiveServer) -> None:
    charger = await connect(nursery, server)
    await charger.send([2, "dt1", "DataTransfer", {"vendorId": "V"}])
    server_call = await charger.receive()
    assert server_call[0] == 2 and server_call[2] == "GetConfiguration"
    await charger.send(
        [
            3,
            server_call[1],
            {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]},
        ]
    )
    answer = await charger.receive()
    assert answer == [3, "dt1", {"status": "Accepted", "data": "1"}]


async def test_call_on_closed_connection_raises_connection_lost(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    charger = await connect(nursery, server)
    endpoint = await server.endpoint("CP1")
    async with trio.open_nursery() as inner:

        async def hang_up() -> None:
            await charger.receive()
            await charger.close()

        inner.start_soon(hang_up)
        with pytest.raises(ConnectionLost):
            await endpoint.call("ClearCache", {})


async def test_no_acceptable_subprotocol_completes_handshake_then_closes(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    websocket = await connect_websocket_url(nursery, server.url("CP1"), subprotocols=["ocpp2.0.1"])
    assert websocket.subprotocol is None
    with pytest.raises(ConnectionClosed) as closed:
        await websocket.get_message()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1002
    assert "ocpp1.6" in (closed.value.reason.reason or "")


async def test_subprotocol_is_selected(nursery: trio.Nursery, server: LiveServer) -> None:
    websocket = await connect_websocket_url(
        nursery, server.url("CP1"), subprotocols=["ocpp2.0.1", "ocpp1.6"]
    )
    assert websocket.subprotocol == "ocpp1.6"


@pytest.mark.parametrize("path", ["/ocpp/", "/ocpp", "/", "/other/CP1", "/ocpp/a/b", "/ocpp/%ff"])
async def test_malformed_path_gets_404(
    nursery: trio.Nursery, server: LiveServer, path: str
) -> None:
    url = f"ws://127.0.0.1:{server.server.port}{path}"
    assert await handshake_rejection(url) == 404


async def test_percent_encoded_id_is_decoded(nursery: trio.Nursery, server: LiveServer) -> None:
    await RawCharger.connect(nursery, f"ws://127.0.0.1:{server.server.port}/ocpp/CP%20one")
    await server.endpoint("CP one")
    assert "CP one" in server.connections


async def test_gate_decides_404_and_401(nursery: trio.Nursery) -> None:
    async def gate(charge_point_id: str, password: str | None, address: str) -> Admission:
        if charge_point_id == "stranger":
            return Admission(http_status=404)
        if password != "s3cret":
            return Admission(http_status=401)
        return Admission()

    server = await start_test_server(nursery, core_handlers, gate=gate)
    assert await handshake_rejection(server.url("stranger")) == 404
    assert await handshake_rejection(server.url("CP1")) == 401
    wrong = [(b"Authorization", b"Basic Q1AxOndyb25n")]  # CP1:wrong
    assert await handshake_rejection(server.url("CP1"), wrong) == 401
    url = f"ws://127.0.0.1:{server.server.port}/ocpp/CP1"
    websocket = await connect_websocket_url(
        nursery,
        url,
        subprotocols=["ocpp1.6"],
        extra_headers=[(b"Authorization", b"Basic Q1AxOnMzY3JldA==")],  # CP1:s3cret
    )
    assert websocket.subprotocol == "ocpp1.6"


async def test_stale_connection_is_closed_by_keepalive(nursery: trio.Nursery) -> None:
    pongs: list[str] = []
    server = await start_test_server(
        nursery, core_handlers, ping_interval=0.05, ping_timeout=0.2, on_pong=pongs.append
    )
    # A client that answers pings stays connected across several intervals...
    charger = await connect(nursery, server, "LIVELY")
    # ...a client that completes the handshake and then never reads again does not.
    stream = await trio.open_tcp_stream("127.0.0.1", server.server.port)
    client = WSConnection(ConnectionType.CLIENT)
    request = Request(host="127.0.0.1", target="/ocpp/SILENT", subprotocols=["ocpp1.6"])
    await stream.send_all(client.send(request))
    await server.endpoint("SILENT")
    assert "SILENT" in server.connections
    with trio.fail_after(5):
        while "SILENT" in server.connections:
            await trio.sleep(0.05)
    assert (await charger.call("Heartbeat", {}))[0] == 3
    assert "LIVELY" in server.connections
    assert "LIVELY" in pongs and "SILENT" not in pongs
    await stream.aclose()


async def test_only_a_quiet_connection_is_pinged(nursery: trio.Nursery) -> None:
    """A charger that talks shows by that that its connection lives: it is pinged (and
    pongs) only once it has been quiet for an interval."""
    pongs: list[str] = []
    server = await start_test_server(
        nursery, core_handlers, ping_interval=0.1, ping_timeout=5.0, on_pong=pongs.append
    )
    charger = await connect(nursery, server, "TALKER")
    talking_until = trio.current_time() + 0.6  # six looks of the keepalive
    while trio.current_time() < talking_until:
        assert (await charger.call("Heartbeat", {}))[0] == 3
        await trio.sleep(0.03)
    assert pongs == []
    with trio.fail_after(5):  # quiet now
        while "TALKER" not in pongs:
            await trio.sleep(0.05)


async def test_a_ping_while_the_server_closes_does_not_break_the_server(
    nursery: trio.Nursery, server: LiveServer
) -> None:
    """The charger's ping crosses the server's close frame (the server may no longer pong):
    that connection ends, the server and its other chargers carry on."""
    bystander = await connect(nursery, server, "BYSTANDER")
    stream = await trio.open_tcp_stream("127.0.0.1", server.server.port)
    client = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(
        client.send(Request(host="127.0.0.1", target="/ocpp/PINGER", subprotocols=["ocpp1.6"]))
    )
    await server.endpoint("PINGER")
    # the server closes PINGER's connection (as when a newer one replaces it)
    nursery.start_soon(server.connections["PINGER"].close, 1008, "replaced")
    with trio.fail_after(5):
        while not any(
            isinstance(e, CloseConnection) for e in _events(client, await stream.receive_some())
        ):
            pass
    await stream.send_all(_masked_ping(b"still there?"))  # instead of answering the close
    await trio.sleep(0.3)
    assert (await bystander.call("Heartbeat", {}))[0] == 3
    assert (await connect(nursery, server, "AFTER")).websocket.subprotocol == "ocpp1.6"
    await stream.aclose()


def _masked_ping(payload: bytes) -> bytes:
    """A client's ping frame, built by hand: wsproto will not send one after a close."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x89, 0x80 | len(payload)]) + mask + masked


def _events(client: WSConnection, data: bytes) -> list[object]:
    client.receive_data(data)
    return list(client.events())
