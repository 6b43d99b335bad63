"""The client's address behind trusted proxies (voltaro/client_address.py)."""

import pytest

from voltaro.client_address import client_address, parse_networks
from voltaro.config import Settings, SettingsError

PROXIES = parse_networks("10.0.0.5, 192.0.2.0/24, ::1")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("198.51.100.9", ["203.0.113.7"], "198.51.100.9"),  # not a proxy: its header ignored
        ("10.0.0.5", ["203.0.113.7"], "203.0.113.7"),
        ("10.0.0.5", ["6.6.6.6, 203.0.113.7"], "203.0.113.7"),  # the client's own claim: no
        ("10.0.0.5", ["203.0.113.7", "192.0.2.40"], "203.0.113.7"),  # two proxies
        ("10.0.0.5", [], "10.0.0.5"),  # a proxy that says nothing
        ("10.0.0.5", ["192.0.2.1"], "10.0.0.5"),  # only proxies
        ("10.0.0.5", ["not-an-address"], "10.0.0.5"),
        ("::1", ["2001:db8::1"], "2001:db8::1"),
        (None, ["203.0.113.7"], None),
    ],
)
def test_the_client_is_the_rightmost_address_no_proxy_wrote(
    peer: str | None, forwarded: list[str], client: str | None
) -> None:
    assert client_address(peer, forwarded, PROXIES) == client


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("10.0.0.5", ["203.0.113.7"], ()) == "10.0.0.5"


def test_the_setting_takes_addresses_and_networks() -> None:
    settings = Settings.from_env({"VOLTARO_TRUSTED_PROXIES": " 10.0.0.5 , 192.0.2.0/24"})
    assert settings.trusted_proxies == "10.0.0.5/32,192.0.2.0/24"
    assert Settings.from_env({"VOLTARO_TRUSTED_PROXIES": settings.trusted_proxies}) == settings
    with pytest.raises(SettingsError, match="VOLTARO_TRUSTED_PROXIES: expected IP addresses"):
        Settings.from_env({"VOLTARO_TRUSTED_PROXIES": "10.0.0.5, haproxy"})
