"""The upgrade requests the server reads without h11 (``_plain_upgrade``): what it takes,
what it leaves to h11, and that its answers are wsproto's, byte for byte."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

from voltaro.transport.handshake import charge_point_id_from_path, charge_point_id_problem
from voltaro.transport.websocket import _plain_upgrade

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def request(*lines: bytes, target: bytes = b"/ocpp/CP%201", tail: bytes = b"") -> bytes:
    head = [b"GET " + target + b" HTTP/1.1", b"Host: cs.example:9000"]
    head += [b"Upgrade: websocket", b"Connection: keep-alive, Upgrade"]
    head += [b"Sec-WebSocket-Key: " + KEY, b"Sec-WebSocket-Version: 13", *lines]
    return b"\r\n".join(head) + b"\r\n\r\n" + tail


def wsproto_request(data: bytes) -> tuple[WSConnection, Request]:
    handshake = WSConnection(ConnectionType.SERVER)
    handshake.receive_data(data)
    (event,) = list(handshake.events())
    assert isinstance(event, Request)
    return handshake, event


@pytest.mark.parametrize(
    "data",
    [
        request(),
        request(b"Sec-WebSocket-Protocol: ocpp1.6"),
        request(b"Sec-WebSocket-Protocol: ocpp2.0.1, ocpp1.6", b"Authorization: Basic Q1A6eA=="),
        request(b"sec-websocket-protocol:ocpp1.6", b"X-Odd:  spaced value \t"),
    ],
)
@pytest.mark.parametrize("subprotocol", [None, "ocpp1.6"])
def test_a_plain_request_reads_and_is_answered_as_wsproto_does(
    data: bytes, subprotocol: str | None
) -> None:
    plain = _plain_upgrade(data)
    assert plain is not None
    handshake, event = wsproto_request(data)
    assert plain.target == event.target
    assert plain.extra_headers == list(event.extra_headers)
    assert plain.subprotocols == list(event.subprotocols)
    if subprotocol is None or subprotocol in event.subprotocols:
        assert plain.accepted(subprotocol) == handshake.send(
            AcceptConnection(subprotocol=subprotocol)
        )


def test_bytes_after_the_request_are_kept_for_the_connection() -> None:
    plain = _plain_upgrade(request(tail=b"\x81\x80early"))
    assert plain is not None and plain.trailing == b"\x81\x80early"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        request()[:-2],  # not whole yet
        request().replace(b"GET", b"POST", 1),
        request().replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        request(target=b"/ocpp/\x01"),
        request(b"Content-Length: 3", tail=b"abc"),
        request(b"Transfer-Encoding: chunked"),
        request(b"Sec-WebSocket-Extensions: permessage-deflate"),
        request(b"X-Folded: a", b" b"),  # obsolete line folding
        request(b"Bad Name: x"),
        request(b"No-Colon"),
        request(b"X-Control: \x00"),
        request(b"Upgrade: h2c"),  # twice, differently
        request(b"Host: other"),
        request().replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"),
        request().replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        request().replace(b"keep-alive, Upgrade", b"keep-alive"),
        request().replace(b"Sec-WebSocket-Key: " + KEY + b"\r\n", b""),
        request().replace(b"Host: cs.example:9000\r\n", b""),
    ],
)
def test_anything_else_is_left_to_h11(data: bytes) -> None:
    assert _plain_upgrade(data) is None


def test_a_refusal_is_written_as_wsproto_writes_it() -> None:
    """The server's refusal of a plain request: the same bytes wsproto sends."""
    import trio

    from voltaro.transport.websocket import UpgradeRequest

    data = request(b"Sec-WebSocket-Protocol: ocpp1.6")
    headers = [(b"Retry-After", b"10"), (b"WWW-Authenticate", b'Basic realm="x"')]
    body = b"Service Unavailable\n"

    class Recording:
        written = b""

        async def write(self, data: bytes) -> None:
            self.written += data

    io = Recording()
    plain = _plain_upgrade(data)
    assert plain is not None
    upgrade = UpgradeRequest(io, None, plain, 1 << 16)  # type: ignore[arg-type]
    trio.run(upgrade.reject, 503, headers, body)

    handshake, _ = wsproto_request(data)
    expected = handshake.send(
        RejectConnection(
            status_code=503,
            headers=[*headers, (b"Content-Length", str(len(body)).encode())],
            has_body=True,
        )
    )
    expected += handshake.send(RejectData(body))
    assert io.written == expected


EXAMPLE_PATHS = ["/ocpp/CP1", "http://cs/ocpp/CP1", "//cs/ocpp/x", "/ocpp/a%2Fb", "/ocpp/0\n"]
EXAMPLE_PATHS.append("//[x/ocpp/a")  # urlsplit raises on it
PATHS = st.one_of(
    st.text(alphabet="/ocp%?#:.aZ09-_~ \x00\t\r\né2fe[]", max_size=24),
    st.builds("/ocpp/{}".format, st.text(max_size=12)),
    st.sampled_from(EXAMPLE_PATHS),
)


@given(PATHS)
def test_a_plain_path_is_read_as_the_split_and_decoded_one(path: str) -> None:
    # the id is read without urlsplit and unquote when they would change nothing
    expected = None
    try:
        raw = urlsplit(path).path
    except ValueError:  # "//[x": no URL, no charge point (it used to escape as an error)
        raw = ""
    if raw.startswith("/ocpp/") and raw[6:] and "/" not in raw[6:]:
        try:
            expected = unquote(raw[6:], errors="strict")
        except UnicodeDecodeError:
            expected = None
        if expected is not None and charge_point_id_problem(expected) is not None:
            expected = None
    assert charge_point_id_from_path(path) == expected
