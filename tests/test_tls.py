"""wss://: Voltaro with a certificate, a charger that trusts it (trio-websocket, and our
simulator), clients that cannot talk TLS to it or do not trust it (the server carries on),
and the settings that refuse a certificate Voltaro cannot use."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from trio_websocket import open_websocket_url

from tests.sim.helpers import start, start_charger
from voltaro import cli
from voltaro.app import Voltaro
from voltaro.config import Settings, SettingsError
from voltaro.sim.stats import FleetStats
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]

BOOT = '[2,"b1","BootNotification",{"chargePointVendor":"Acme","chargePointModel":"TLS"}]'


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def certificate(authority: trustme.CA, tmp_path: Path) -> dict[str, Path]:
    """The server's certificate chain and key, and the authority's certificate, as files."""
    issued = authority.issue_cert("127.0.0.1", "localhost")
    files = {"cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem", "ca": tmp_path / "ca.pem"}
    files["cert"].write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files["key"]))
    authority.cert_pem.write_to_path(str(files["ca"]))
    return files


async def start_tls(
    nursery: trio.Nursery, settings: Settings, certificate: dict[str, Path]
) -> Voltaro:
    return await start(nursery, settings, tls_cert=certificate["cert"], tls_key=certificate["key"])


def wss_url(voltaro: Voltaro, charge_point_id: str = "") -> str:
    assert voltaro.server is not None
    return f"wss://127.0.0.1:{voltaro.server.port}/ocpp/{charge_point_id}"


def trusting(certificate: dict[str, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate["ca"]))


async def boot_over(url: str, context: ssl.SSLContext) -> Any:
    async with open_websocket_url(url, ssl_context=context, subprotocols=["ocpp1.6"]) as ws:
        await ws.send_message(BOOT)
        return json.loads(await ws.get_message())


async def test_a_charger_that_trusts_the_certificate_talks_over_wss(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, certificate: dict[str, Path]
) -> None:
    voltaro = await start_tls(nursery, voltaro_settings, certificate)
    answer = await boot_over(wss_url(voltaro, "TLS-1"), trusting(certificate))
    assert answer[:2] == [3, "b1"] and answer[2]["status"] == "Accepted"


async def test_clients_that_cannot_talk_tls_to_us_do_not_stop_the_server(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, certificate: dict[str, Path]
) -> None:
    voltaro = await start_tls(nursery, voltaro_settings, certificate)
    assert voltaro.server is not None
    port = voltaro.server.port
    with trio.fail_after(5):  # plain ws:// at the TLS port: told to use wss://
        plain = await trio.open_tcp_stream("127.0.0.1", port)
        await plain.send_all(b"GET /ocpp/PLAIN HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := await plain.receive_some(1000):
            answer += chunk
        await plain.aclose()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"\r\n\r\nThis port speaks TLS: connect with wss://, not ws://\n")
    with trio.fail_after(5):  # a client that leaves at once
        gone = await trio.open_tcp_stream("127.0.0.1", port)
        await gone.aclose()
    with trio.fail_after(5):  # a client without our authority refuses the certificate
        distrusting = trio.SSLStream(
            await trio.open_tcp_stream("127.0.0.1", port),
            ssl.create_default_context(),
            server_hostname="127.0.0.1",
        )
        with pytest.raises(trio.BrokenResourceError) as refused:
            await distrusting.do_handshake()
        assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
    answer = await boot_over(wss_url(voltaro, "TLS-2"), trusting(certificate))
    assert answer[2]["status"] == "Accepted"


async def test_the_simulator_connects_over_wss(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, certificate: dict[str, Path]
) -> None:
    voltaro = await start_tls(nursery, voltaro_settings, certificate)
    stats = FleetStats()
    url = wss_url(voltaro).rstrip("/")
    await start_charger(
        nursery, voltaro, "SIM-TLS", stats=stats, url=url, ca_file=str(certificate["ca"])
    )
    assert stats.connect_failures == 0
    assert "SIM-TLS" in voltaro.sessions


def test_tls_settings_are_checked_before_anything_starts(
    tmp_path: Path, certificate: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SettingsError, match="go together"):
        Settings(tls_cert=certificate["cert"])
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    with pytest.raises(SettingsError, match="cannot load"):
        Settings(tls_cert=broken, tls_key=certificate["key"]).tls_context()
    context = Settings(tls_cert=certificate["cert"], tls_key=certificate["key"]).tls_context()
    assert context is not None and context.minimum_version >= ssl.TLSVersion.TLSv1_2
    data_dir = str(tmp_path / "data")
    argv = ["serve", "--tls-cert", str(broken), "--tls-key", str(certificate["key"])]
    assert cli.main([*argv, "--data-dir", data_dir]) == 2
    assert "cannot load the certificate" in capsys.readouterr().err
