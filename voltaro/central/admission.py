"""Who may connect: the decision taken at the WebSocket handshake.

- A known charge point with a password (stored hashed) must present it with Basic auth,
  else HTTP 401. Without a stored password any credentials are ignored.
- An unknown charge point is handled by the ``VOLTARO_UNKNOWN_CHARGERS`` policy: ``reject``
  answers HTTP 404 (OCPP-J: an unknown charge point SHOULD get 404); ``pending`` registers it
  as Pending (its BootNotification is answered Pending until an operator accepts it);
  ``accept`` registers it as Accepted.

scrypt is deliberately slow (tens of ms), so a verification runs in a worker thread (at most
two at a time) and a successful one is remembered, keyed by the stored hash and a SHA-256 of
the password: a charger reconnecting with the same key costs a dictionary lookup, and a
changed stored password invalidates the memory by itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import trio

from voltaro.central.passwords import verify_password
from voltaro.store.charge_points import ChargePointRepository

POLICY_STATUS = {"accept": "Accepted", "pending": "Pending", "reject": "Rejected"}


class AdmissionDecision(StrEnum):
    ACCEPT = "accept"
    UNKNOWN = "unknown"  # HTTP 404
    UNAUTHORIZED = "unauthorized"  # HTTP 401


@dataclass(frozen=True)
class Admission:
    """The handshake's outcome for one charge point id."""

    decision: AdmissionDecision
    lenient: bool = False  # accept the known schema breakers of real chargers (see DESIGN.md)
    registration_status: str | None = None  # Accepted | Pending | Rejected, when known

    @property
    def accepted(self) -> bool:
        return self.decision is AdmissionDecision.ACCEPT

    @property
    def http_status(self) -> int | None:
        """None when accepted, else the HTTP status to refuse the handshake with."""
        return {
            AdmissionDecision.ACCEPT: None,
            AdmissionDecision.UNKNOWN: 404,
            AdmissionDecision.UNAUTHORIZED: 401,
        }[self.decision]


class Admitter:
    def __init__(self, charge_points: ChargePointRepository, policy: str) -> None:
        if policy not in POLICY_STATUS:
            raise ValueError(f"unknown charger policy {policy!r}")
        self._charge_points = charge_points
        self._policy = policy
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._limiter = trio.CapacityLimiter(2)

    async def admit(self, charge_point_id: str, password: str | None) -> Admission:
        record = await self._charge_points.get(charge_point_id)
        if record is None:
            if self._policy == "reject":
                return Admission(AdmissionDecision.UNKNOWN)
            record = await self._charge_points.register(
                charge_point_id, POLICY_STATUS[self._policy]
            )
        if record.password_hash is not None and not await self._verify(
            charge_point_id, password, record.password_hash
        ):
            return Admission(AdmissionDecision.UNAUTHORIZED)
        return Admission(AdmissionDecision.ACCEPT, record.lenient, record.registration_status)

    async def _verify(self, charge_point_id: str, password: str | None, stored: str) -> bool:
        if password is None:
            return False
        fingerprint = hashlib.sha256(password.encode("utf-8")).digest()
        if self._verified.get(charge_point_id) == (stored, fingerprint):
            return True
        ok = await trio.to_thread.run_sync(verify_password, password, stored, limiter=self._limiter)
        if ok:
            self._verified[charge_point_id] = (stored, fingerprint)
        return ok
