"""Who may connect: the decision taken at the WebSocket handshake.

- A known charge point with a password (stored hashed) must present it with Basic auth,
  else HTTP 401. Without a stored password any credentials are ignored.
- An unknown charge point is handled by the ``VOLTARO_UNKNOWN_CHARGERS`` policy: ``reject``
  answers HTTP 404 (OCPP-J: an unknown charge point SHOULD get 404); ``pending`` registers it
  as Pending (its BootNotification is answered Pending until an operator accepts it);
  ``accept`` registers it as Accepted.

A known charge point is decided from memory: its status, password hash and lenient flag come
from the store's charge point cache (:mod:`voltaro.store.charge_point_cache`), kept current by
the database's announcements; the table is read only while that cache is invalid, or for an
id it does not hold (a charger added a moment ago, or an unknown one) under policy
``reject``. Under the policies that register, an id not in a valid cache is registered at
once: the registration (one statement for all of a write batch's) answers a known charge
point's facts too.

scrypt is deliberately slow (tens of ms), so a verification runs in a worker thread (at most
two at a time) and a successful one is remembered, keyed by the stored hash and a SHA-256 of
the password: a charger reconnecting with the same key costs a dictionary lookup, and a
changed stored password invalidates the memory by itself.

Guessing: failed logins are throttled per charge point id and per client address (see
:mod:`voltaro.central.login_throttle`): HTTP 429 with ``Retry-After`` while blocked. At most
``MAX_WAITING_VERIFICATIONS`` handshakes wait for a hashing thread; more are refused with 503
and ``Retry-After`` instead of queueing (300 concurrent guessers once made an honest
charger's connect wait 11.6 s). Every failed login is reported to ``on_failure``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import trio

from voltaro.central.login_throttle import LoginThrottle, address_key, id_key
from voltaro.central.passwords import verify_password
from voltaro.store.charge_point_cache import AdmissionFacts, ChargePointCache
from voltaro.store.charge_points import ChargePointRepository

POLICY_STATUS = {"accept": "Accepted", "pending": "Pending", "reject": "Rejected"}

HASHING_THREADS = 2  # scrypt verifications at once (each ~16 MiB and tens of ms)
MAX_WAITING_VERIFICATIONS = 32  # handshakes queued for a hashing thread; more get 503
BUSY_RETRY_AFTER = 5  # seconds a charger refused for a full hashing queue is told to wait
OUTAGE_RETRY_AFTER = 10  # seconds a charger refused during a database outage is told to wait


class AdmissionDecision(StrEnum):
    ACCEPT = "accept"
    UNKNOWN = "unknown"  # HTTP 404
    UNAUTHORIZED = "unauthorized"  # HTTP 401
    THROTTLED = "throttled"  # HTTP 429: too many failed logins lately
    BUSY = "busy"  # HTTP 503: too many passwords waiting to be checked
    UNAVAILABLE = "unavailable"  # HTTP 503: the database cannot be asked now


_HTTP_STATUS = {
    AdmissionDecision.ACCEPT: None,
    AdmissionDecision.UNKNOWN: 404,
    AdmissionDecision.UNAUTHORIZED: 401,
    AdmissionDecision.THROTTLED: 429,
    AdmissionDecision.BUSY: 503,
    AdmissionDecision.UNAVAILABLE: 503,
}
_REASONS = {
    AdmissionDecision.BUSY: "too many password checks waiting",
    AdmissionDecision.UNAVAILABLE: "the database cannot be asked now",
}


@dataclass(frozen=True)
class Admission:
    """The handshake's outcome for one charge point id."""

    decision: AdmissionDecision
    lenient: bool = False  # accept the known schema breakers of real chargers (see DESIGN.md)
    registration_status: str | None = None  # Accepted | Pending | Rejected, when known
    retry_after: int | None = None  # seconds, for a refusal the client should retry later

    @property
    def accepted(self) -> bool:
        return self.decision is AdmissionDecision.ACCEPT

    @property
    def http_status(self) -> int | None:
        """None when accepted, else the HTTP status to refuse the handshake with."""
        return _HTTP_STATUS[self.decision]

    @property
    def reason(self) -> str | None:
        """Why it refuses, for the log: the two 503s have different causes."""
        return _REASONS.get(self.decision)


FailureReport = Callable[[str, str | None, str], None]
"""``(charge_point_id, client address or None, why)`` for each failed login."""


class Admitter:
    """Counters (read them): ``failed_logins`` (wrong or missing password),
    ``throttled_logins`` (429 without checking), ``busy_refusals`` (503, hashing queue full).
    """

    def __init__(
        self,
        charge_points: ChargePointRepository,
        cache: ChargePointCache,
        policy: str,
        *,
        on_failure: FailureReport | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        if policy not in POLICY_STATUS:
            raise ValueError(f"unknown charger policy {policy!r}")
        self._charge_points = charge_points
        self._cache = cache
        self._policy = policy
        self._on_failure = on_failure
        self.throttle = throttle or LoginThrottle()
        self._verified: dict[str, tuple[str, bytes]] = {}
        self.hashing = trio.CapacityLimiter(HASHING_THREADS)  # verifications at once
        self.failed_logins = 0
        self.throttled_logins = 0
        self.busy_refusals = 0

    async def admit(
        self, charge_point_id: str, password: str | None, address: str | None = None
    ) -> Admission:
        facts = await self._facts(charge_point_id)
        if facts is None:
            return Admission(AdmissionDecision.UNKNOWN)
        if facts.password_hash is not None:
            refusal = await self._check_password(
                charge_point_id, password, address, facts.password_hash
            )
            if refusal is not None:
                return refusal
        return Admission(AdmissionDecision.ACCEPT, facts.lenient, facts.registration_status)

    async def _facts(self, charge_point_id: str) -> AdmissionFacts | None:
        """The charge point's admission facts, registering it under the policies that do;
        None when it is unknown under policy reject.

        A registration answers a known charge point's facts as well as a new one's, so when
        the cache is valid and the id is not in memory (unknown, or added a moment ago and
        not announced yet) a registering policy writes at once instead of reading first:
        a storm of new chargers costs one statement per batch, not a read each as well."""
        facts = self._cache.peek(charge_point_id)
        if facts is not None:
            return facts
        if self._policy == "reject" or not self._cache.valid:
            facts = await self._cache.lookup(charge_point_id)
            if facts is not None or self._policy == "reject":
                return facts
        facts = await self._charge_points.register(charge_point_id, POLICY_STATUS[self._policy])
        if facts is None:  # another process added it after the registration's snapshot
            facts = await self._cache.lookup(charge_point_id)
        return facts

    async def _check_password(
        self, charge_point_id: str, password: str | None, address: str | None, stored: str
    ) -> Admission | None:
        """None when ``password`` is the charge point's, else the refusal."""
        fingerprint = None
        if password is not None:
            fingerprint = hashlib.sha256(password.encode("utf-8")).digest()
            if self._verified.get(charge_point_id) == (stored, fingerprint):
                return None  # verified before: let in even while its id is throttled
        keys = [id_key(charge_point_id)] + ([address_key(address)] if address else [])
        wait = self.throttle.retry_after(keys)
        if wait > 0:
            self.throttled_logins += 1
            return Admission(AdmissionDecision.THROTTLED, retry_after=math.ceil(wait))
        if password is None or fingerprint is None:
            return self._failed(charge_point_id, address, keys, "no Basic credentials")
        if self.hashing.statistics().tasks_waiting >= MAX_WAITING_VERIFICATIONS:
            self.busy_refusals += 1
            return Admission(AdmissionDecision.BUSY, retry_after=BUSY_RETRY_AFTER)
        ok = await trio.to_thread.run_sync(verify_password, password, stored, limiter=self.hashing)
        if not ok:
            return self._failed(charge_point_id, address, keys, "wrong password")
        self._verified[charge_point_id] = (stored, fingerprint)
        self.throttle.succeeded(keys[0])
        return None

    def _failed(
        self, charge_point_id: str, address: str | None, keys: list[str], why: str
    ) -> Admission:
        self.failed_logins += 1
        self.throttle.failed(keys)
        if self._on_failure is not None:
            self._on_failure(charge_point_id, address, why)
        return Admission(AdmissionDecision.UNAUTHORIZED)
