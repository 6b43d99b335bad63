"""Settings that cannot be used are refused with a sentence naming the variable or flag."""

from __future__ import annotations

import pytest

from voltaro.config import Settings, SettingsError


@pytest.mark.parametrize(
    ("variable", "text", "says"),
    [
        ("VOLTARO_HEARTBEAT_INTERVAL", "abc", "must be a whole number"),
        ("VOLTARO_HEARTBEAT_INTERVAL", "0", "must be greater than 0"),
        ("VOLTARO_CALL_TIMEOUT", "soon", "must be a number"),
        ("VOLTARO_CALL_TIMEOUT", "nan", "must be a finite number"),
        ("VOLTARO_PING_INTERVAL", "-1", "must be 0 (off) or more"),
        ("VOLTARO_OCPP_PORT", "http", "must be a whole number"),
        (
            "VOLTARO_MESSAGE_LOG_MAX_BYTES",
            "12 parsecs",
            "must be a whole number of bytes, optionally with KiB, MiB, GiB or TiB",
        ),
    ],
)
def test_a_setting_that_cannot_be_used_says_why(variable: str, text: str, says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({variable: text})
    assert str(refused.value) == f"{variable}={text!r}: {says}"


def test_a_flag_is_named_as_a_flag() -> None:
    with pytest.raises(SettingsError, match=r"^--heartbeat-interval='abc': must be a whole"):
        Settings.from_env({}, {"heartbeat_interval": "abc"})
