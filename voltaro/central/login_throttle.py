"""Failed Basic-auth logins, and the back-off that makes guessing passwords slow.

Each failed login (a wrong or missing password for a charge point that has one) counts
against two keys: the charge point id, and the client's address. A key with failures is
blocked for ``BASE_DELAY * 2 ** (failures - 1)`` seconds (1 s, 2 s, 4 s, ... at most
``MAX_DELAY``) after its last failure; a handshake on a blocked key is refused with HTTP 429
and ``Retry-After`` without checking any password, so a blocked guesser costs no hashing. A
successful login clears its charge point's count; an address's count fades on its own
(``FORGET_AFTER`` after its last failure).

Locking out the real charger: anyone can make a charge point id fail. So a charger whose
current password was already verified by this server (the admitter remembers verified
passwords by a digest) is let in even while its id is blocked; only a charger that has not
connected since the server started can be kept waiting by someone guessing its password.

Memory: at most ``MAX_KEYS`` keys, the least recently failed forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

BASE_DELAY = 1.0  # seconds a key is blocked after its first failure
MAX_DELAY = 300.0  # the longest block: a misconfigured charger still gets in within minutes
FORGET_AFTER = 3600.0  # seconds after its last failure that a key's count is forgotten
MAX_KEYS = 100_000


@dataclass(slots=True)
class _Failures:
    count: int
    last: float  # monotonic time of the last failure


class LoginThrottle:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until every one of ``keys`` may try again; 0 when none is blocked."""
        now = self._monotonic()
        wait = 0.0
        for key in keys:
            failures = self._keys.get(key)
            if failures is not None:
                wait = max(wait, failures.last + _delay(failures.count) - now)
        return wait

    def failed(self, keys: Iterable[str]) -> None:
        now = self._monotonic()
        for key in keys:
            failures = self._keys.pop(key, None)
            if failures is None or now - failures.last > FORGET_AFTER:
                failures = _Failures(0, now)
            failures.count += 1
            failures.last = now
            self._keys[key] = failures  # most recently failed last
        while len(self._keys) > MAX_KEYS:
            self._keys.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


def _delay(failures: int) -> float:
    return min(BASE_DELAY * 2.0 ** min(failures - 1, 30), MAX_DELAY)


def id_key(charge_point_id: str) -> str:
    return f"id:{charge_point_id}"


def address_key(address: str) -> str:
    return f"address:{address}"
