"""Addresses to give people: the URLs ``voltaro serve`` prints for chargers and operators.

A server binds to an interface, often all of them (``0.0.0.0``, ``::``), and that is no
address anybody can connect to. What it prints instead is one that works on this machine
(the loopback address of the same family) and, when it listens on every interface, the
host's name for the other machines (whether the network resolves it is the network's
business; the operator knows which of the two the charger needs).
"""

from __future__ import annotations

import socket
import urllib.parse

WILDCARDS = {"", "0.0.0.0", "::", "*"}

CHARGER_PATH = "/ocpp/{chargePointId}"


def local_host(bind_host: str) -> str:
    """The host a client on this machine connects to for a server bound to ``bind_host``."""
    if bind_host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    if bind_host == "::":
        return "::1"
    return bind_host


def url(scheme: str, host: str, port: int, path: str = "") -> str:
    """``scheme://host:port/path``, an IPv6 address in brackets."""
    bracketed = f"[{host}]" if ":" in host else host
    return f"{scheme}://{bracketed}:{port}{path}"


def charger_urls(bind_host: str, port: int, *, tls: bool) -> tuple[str, str | None]:
    """The URL a charger on this machine is given, and the one for other machines (None
    when the server listens on one interface only, which then is the address to give)."""
    scheme = "wss" if tls else "ws"
    here = url(scheme, local_host(bind_host), port, CHARGER_PATH)
    if bind_host not in WILDCARDS:
        return here, None
    name = socket.gethostname()
    if not name or name == "localhost":
        return here, None
    return here, url(scheme, name, port, CHARGER_PATH)


def reachable(listening_url: str) -> str:
    """A URL a server reported as listening (``http://0.0.0.0:8080``) as a client on this
    machine would open it (``http://127.0.0.1:8080``)."""
    parts = urllib.parse.urlsplit(listening_url)
    if parts.hostname is None or parts.port is None:
        return listening_url
    return url(parts.scheme, local_host(parts.hostname), parts.port, parts.path)
