"""Settings that cannot be used are refused with a sentence naming the variable or flag."""

from __future__ import annotations

import dataclasses
import re

import pytest

from voltaro.config import Settings, SettingsError


@pytest.mark.parametrize(
    ("variable", "text", "says"),
    [
        ("VOLTARO_HEARTBEAT_INTERVAL", "abc", "a whole number of seconds"),
        ("VOLTARO_HEARTBEAT_INTERVAL", "0", "more than 0 seconds"),
        ("VOLTARO_CALL_TIMEOUT", "soon", "a number of seconds"),
        ("VOLTARO_CALL_TIMEOUT", "nan", "a finite number of seconds"),
        ("VOLTARO_PING_INTERVAL", "-1", "0 (off) or more seconds"),
        ("VOLTARO_OCPP_PORT", "http", "a TCP port, 0-65535 (0 picks a free one)"),
        ("VOLTARO_MAX_HANDSHAKES_PER_ADDRESS", "-5", "0 (no cap) or more connections"),
        ("VOLTARO_WORKERS", "two", "a whole number of processes"),
        (
            "VOLTARO_MESSAGE_LOG_MAX_BYTES",
            "12 parsecs",
            "a whole number of bytes, optionally with KiB, MiB, GiB or TiB",
        ),
    ],
)
def test_a_setting_that_cannot_be_used_says_why(variable: str, text: str, says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({variable: text})
    assert str(refused.value) == f"{variable}: expected {says}, got {text!r}"


def test_a_flag_is_named_as_a_flag() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({}, {"heartbeat_interval": "abc"})
    assert (
        str(refused.value) == "--heartbeat-interval: expected a whole number of seconds, got 'abc'"
    )


NUMERIC = [
    f.name
    for f in dataclasses.fields(Settings)
    if isinstance(f.default, int | float) and not isinstance(f.default, bool)
]


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_setting_says_what_it_expected(name: str) -> None:
    """Not Python's "invalid literal for int()": the flag, what it takes, what it got."""
    assert len(NUMERIC) > 15
    flag = "--" + name.replace("_", "-")
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({}, {name: "abc"})
    message = str(refused.value)
    assert re.fullmatch(
        rf"{flag}: expected (a whole number|a number|a TCP port)[^']*, got 'abc'", message
    )
    assert "literal" not in message
