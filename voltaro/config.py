"""One Settings object, from environment variables and the flags of ``voltaro serve``.

Every setting has an environment variable ``VOLTARO_<NAME>`` and a flag ``--<name>``; a flag
wins over the environment, the environment over the default.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from voltaro.client_address import parse_networks
from voltaro.logformat import LOG_FORMATS
from voltaro.transport import accepting, websocket

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
UNKNOWN_CHARGER_POLICIES = ("accept", "pending", "reject")
LOCAL_LIST_MODES = ("all", "off")  # which chargers Voltaro keeps a local list on


class SettingsError(ValueError):
    """A setting has a value Voltaro cannot use; the message names the variable."""


class CannotStart(Exception):
    """The settings are valid but do not work here (a port in use, say); the message says
    what, for an operator to read without a traceback."""


# Each parser raises ValueError with what it expected, as a noun phrase ("a whole number of
# seconds"); _parse makes the sentence: "--heartbeat-interval: expected ..., got 'abc'".


def _whole(unit: str = "", *, zero: str | None = None) -> Callable[[str], int]:
    """A whole number of ``unit``, more than 0; or 0 or more when ``zero`` says what 0 means
    ("off")."""
    of_unit = f" of {unit}" if unit else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"a whole number{of_unit}") from None
        _check_bound(value, unit, zero)
        return value

    return parse


def _amount(unit: str = "", *, zero: str | None = None) -> Callable[[str], float]:
    """A finite number of ``unit`` (fractions allowed), more than 0; or 0 or more when
    ``zero`` says what 0 means."""
    of_unit = f" of {unit}" if unit else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"a number{of_unit}") from None
        if not math.isfinite(value):
            raise ValueError(f"a finite number{of_unit}")
        _check_bound(value, unit, zero)
        return value

    return parse


def _check_bound(value: float, unit: str, zero: str | None) -> None:
    unit = f" {unit}" if unit else ""
    if zero is None and value <= 0:
        raise ValueError(f"more than 0{unit}")
    if value < 0:
        raise ValueError(f"0 ({zero}) or more{unit}")


# Generic forms, for a setting without a unit worth naming.
_positive_float = _amount()
_non_negative_float = _amount(zero="off")
_positive_int = _whole()
_non_negative_int = _whole(zero="off")
_seconds = _amount("seconds")


_BYTE_UNITS = {"": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


_BYTE_SIZE = re.compile(r"(\d+)\s*([a-z]*)")


def _byte_size(text: str) -> int:
    """A number of bytes, optionally with a binary unit: ``8192``, ``8KiB``, ``64 MiB``."""
    match = _BYTE_SIZE.fullmatch(text.lower())
    if match is None or match[2] not in _BYTE_UNITS:
        raise ValueError("a whole number of bytes, optionally with KiB, MiB, GiB or TiB")
    value = int(match[1]) * _BYTE_UNITS[match[2]]
    if value <= 0:
        raise ValueError("more than 0 bytes")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise ValueError("a TCP port, 0-65535 (0 picks a free one)")
    return value


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.upper() if upper else text.lower()
        if value not in options:
            raise ValueError(f"one of {', '.join(options)}")
        return value

    return parse


def _optional_text(text: str) -> str | None:
    return text or None


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def _bearer_token(text: str) -> str | None:
    if not text:
        return None
    if len(text) < 16 or any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("at least 16 printable characters without spaces")
    return text


def _instance_id(text: str) -> str | None:
    if not text:
        return None
    if len(text) > 200 or not text.isprintable():
        raise ValueError("at most 200 printable characters")
    return text


def _networks(text: str) -> str:
    """Comma-separated IP addresses or networks, kept as text (the form workers inherit)."""
    return ",".join(str(network) for network in parse_networks(text))


def default_instance_id(port: int) -> str:
    """This host's name and the OCPP port it listens on: unique among running instances
    (two cannot hold one port on one host) and the same again when the instance restarts,
    so that it finds the chargers it left online."""
    return f"{socket.gethostname()}:{port}"


@dataclass(frozen=True)
class Settings:
    """What a running Voltaro is configured with. Field name = lower-case variable name."""

    ocpp_host: str = "0.0.0.0"
    ocpp_port: int = 9000
    heartbeat_interval: int = 300
    call_timeout: float = 30.0
    max_frame: int = 65536
    ping_interval: float = 60.0
    ping_timeout: float = 30.0
    log_level: str = "INFO"
    log_format: str = "text"
    database_url: str | None = None
    data_dir: Path = Path("voltaro-data")
    unknown_chargers: str = "pending"
    message_log_retention_days: int = 30
    heartbeat_grace: float = 60.0
    admin_host: str = "127.0.0.1"
    admin_port: int = 8080
    admin_token: str | None = None
    metrics_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    database_deadline: float = 10.0
    message_log_max_payload: int = 8 * 1024
    message_log_charger_bytes: int = 64 * 1024**2
    message_log_max_bytes: int = 32 * 1024**3
    max_pending_handshakes: int = accepting.MAX_PENDING_HANDSHAKES
    max_handshakes_per_address: int = accepting.MAX_HANDSHAKES_PER_ADDRESS
    reserved_files: int = accepting.RESERVED_FILES
    inbound_rate: int = websocket.INBOUND_RATE
    inbound_burst: int = websocket.INBOUND_BURST
    instance_id: str | None = None
    instance_lease: float = 30.0
    workers: int = 1
    local_lists: str = "all"
    local_list_debounce: float = 5.0
    audit_retention_days: int = 365
    sign_in_max_failures: int = 5
    sign_in_max_address_failures: int = 20
    sign_in_block: float = 900.0
    trusted_proxies: str = ""

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError(
                "VOLTARO_TLS_CERT and VOLTARO_TLS_KEY go together: set both (wss://) or neither"
            )

    def tls_context(self) -> ssl.SSLContext | None:
        """The OCPP server's TLS context (``wss://``), None without a certificate. TLS 1.2 at
        least, as the OCPP 1.6 security whitepaper asks."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as error:
            raise SettingsError(
                f"VOLTARO_TLS_CERT={self.tls_cert}, VOLTARO_TLS_KEY={self.tls_key}: cannot load"
                f" the certificate and key ({error})"
            ) from None
        return context

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Settings from ``env`` (default: the process environment), then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in fields(cls):
            variable = f"VOLTARO_{field.name.upper()}"
            if variable in env:
                values[field.name] = _parse(field.name, env[variable], variable)
        for name, raw in (overrides or {}).items():
            if raw is not None:
                values[name] = _parse(name, str(raw), f"--{name.replace('_', '-')}")
        return cls(**values)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "ocpp_host": str,
    "ocpp_port": _port,
    "heartbeat_interval": _whole("seconds"),
    "call_timeout": _seconds,
    "max_frame": _whole("bytes"),
    "ping_interval": _amount("seconds", zero="off"),
    "ping_timeout": _seconds,
    "log_level": _choice(LOG_LEVELS, upper=True),
    "log_format": _choice(LOG_FORMATS),
    "database_url": _optional_text,
    "data_dir": Path,
    "unknown_chargers": _choice(UNKNOWN_CHARGER_POLICIES),
    "message_log_retention_days": _whole("days"),
    "heartbeat_grace": _seconds,
    "admin_host": str,
    "admin_port": _port,
    "admin_token": _bearer_token,
    "metrics_token": _bearer_token,
    "tls_cert": _optional_path,
    "tls_key": _optional_path,
    "database_deadline": _seconds,
    "message_log_max_payload": _byte_size,
    "message_log_charger_bytes": _byte_size,
    "message_log_max_bytes": _byte_size,
    "max_pending_handshakes": _whole("connections"),
    "max_handshakes_per_address": _whole("connections", zero="no cap"),
    "reserved_files": _whole("files", zero="none"),
    "inbound_rate": _whole("bytes a second", zero="off"),
    "inbound_burst": _whole("bytes"),
    "instance_id": _instance_id,
    "instance_lease": _seconds,
    "workers": _whole("processes"),
    "local_lists": _choice(LOCAL_LIST_MODES),
    "local_list_debounce": _seconds,
    "audit_retention_days": _whole("days", zero="kept for ever"),
    "sign_in_max_failures": _whole("failed sign-ins", zero="no limit"),
    "sign_in_max_address_failures": _whole("failed sign-ins", zero="no limit"),
    "sign_in_block": _seconds,
    "trusted_proxies": _networks,
}


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``VOLTARO_*`` variables that :meth:`Settings.from_env` reads back
    to the same Settings (an unset optional setting as an empty value): how a process hands
    its whole configuration, flags included, to the processes it starts."""
    env = {}
    for field in fields(Settings):
        value = getattr(settings, field.name)
        env[f"VOLTARO_{field.name.upper()}"] = "" if value is None else str(value)
    return env


def _parse(name: str, text: str, source: str) -> Any:
    try:
        return _PARSERS[name](text.strip())
    except ValueError as expected:
        raise SettingsError(f"{source}: expected {expected}, got {text!r}") from None


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting, defaulting to None so the environment is not overridden."""
    for field in fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(
            flag,
            dest=field.name,
            default=None,
            metavar=field.name.upper(),
            help=f"(env VOLTARO_{field.name.upper()}, default {field.default})",
        )
