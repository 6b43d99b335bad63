"""What must not be written down: the values of secret configuration keys.

A charge point's ``AuthorizationKey`` is its Basic-auth password (OCPP 1.6 security profiles
1 and 2). Voltaro keeps only its hash; the key itself must not reach the message log, the
charge point's known configuration, or a log file, whether it goes out in a
ChangeConfiguration or comes back in a GetConfiguration answer (chargers should not report
it, some do).
"""

from __future__ import annotations

from typing import Any

SECRET_KEYS = frozenset({"authorizationkey"})  # compared case-insensitively
REDACTED = "(redacted)"

# The actions whose payloads can carry a configuration value: their request (ChangeConfiguration)
# or their answer (GetConfiguration's configurationKey list).
_CARRIERS = frozenset({"ChangeConfiguration", "GetConfiguration"})

Payload = dict[str, Any]


def is_secret(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_KEYS


def redacted(action: str | None, payload: Payload) -> Payload:
    """``payload`` with every secret configuration value replaced by ``REDACTED``: the same
    object when there is none (the common case costs one set lookup)."""
    if action not in _CARRIERS:
        return payload
    if is_secret(payload.get("key")) and "value" in payload:
        return {**payload, "value": REDACTED}
    keys = payload.get("configurationKey")
    if isinstance(keys, list) and any(
        isinstance(item, dict) and is_secret(item.get("key")) for item in keys
    ):
        return {
            **payload,
            "configurationKey": [
                {**item, "value": REDACTED}
                if isinstance(item, dict) and is_secret(item.get("key")) and "value" in item
                else item
                for item in keys
            ],
        }
    return payload
