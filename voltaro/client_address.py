"""Who the client of an HTTP request is, when a proxy may stand between.

The TCP peer is the client, unless it is one of ``VOLTARO_TRUSTED_PROXIES``: then the
client is the right-most address of ``X-Forwarded-For`` that is not a trusted proxy (each
proxy appends the address it was reached from; everything left of the trusted ones was
written by the client and proves nothing). Used where an address decides something: the
sign-in throttle (:mod:`voltaro.central.sign_in`) and its audit records.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.5, 192.0.2.0/24"`` as networks; ValueError naming a bad entry."""
    networks = []
    for entry in text.split(","):
        entry = entry.strip()
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"IP addresses or networks, comma-separated ({entry!r})") from None
    return tuple(networks)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[Network]
) -> str | None:
    """The client's address (see the module doc); ``forwarded_for``: the request's
    ``X-Forwarded-For`` headers, in order."""
    if peer is None or not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        if not hop:
            continue
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # not an address: the proxy's word cannot be read, keep the peer
    return peer
