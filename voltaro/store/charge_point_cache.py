"""What admission needs of every charge point, in memory: a handshake of a known charger is
decided without a database read.

Each entry is a charge point's registration status, password hash and lenient flag (an
:class:`AdmissionFacts`). The copy is kept right for every writer, not only this process: a
trigger on ``charge_points`` (migrations 0004 and 0011) announces every added or removed
row and every change of those three fields on the ``voltaro_charge_points`` channel, and the
id tag cache's LISTEN connection (:mod:`voltaro.store.id_tags`) applies the announcements
here. Whenever that connection (re)connects, the table is loaded again after LISTEN, with
what was announced during the load replayed, as the id tags are; the copy is *valid* only
while that connection is up.

Lookups (:meth:`ChargePointCache.lookup`):

- valid, and the id is in memory: the answer, no database read;
- valid, and the id is not: the table is read (a charger added a moment ago may not be
  announced yet, and an unknown one under the policies that register it is a write anyway).
  What was read is kept, unless anything was announced or forgotten while reading: then
  the row read may be older than an announcement already applied, and the next lookup
  reads again;
- invalid (the LISTEN connection is down or reloading): the table is read, as before the
  cache existed.

This process's own changes through :class:`~voltaro.store.charge_points.ChargePointRepository`
drop the entry at once (:meth:`ChargePointCache.forget`), so that the next lookup reads the
committed row instead of waiting for the announcement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from voltaro.store.database import Connection, Database

log = logging.getLogger(__name__)

CHANNEL = "voltaro_charge_points"


class AdmissionFacts:
    """A charge point's fields that decide its handshake."""

    __slots__ = ("lenient", "password_hash", "registration_status")

    def __init__(self, registration_status: str, password_hash: str | None, lenient: bool):
        self.registration_status = registration_status
        self.password_hash = password_hash
        self.lenient = lenient

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AdmissionFacts):
            return NotImplemented
        return (self.registration_status, self.password_hash, self.lenient) == (
            other.registration_status,
            other.password_hash,
            other.lenient,
        )

    def __repr__(self) -> str:
        password = "set" if self.password_hash is not None else "none"
        status, lenient = self.registration_status, self.lenient
        return f"AdmissionFacts({status}, password {password}, lenient={lenient})"


_COLUMNS = "id, registration_status, password_hash, lenient"


async def fetch_facts(connection: Connection) -> list[tuple[str, AdmissionFacts]]:
    """Every charge point's admission facts."""
    rows = await connection.fetch(f"SELECT {_COLUMNS} FROM charge_points")
    return [(row[0], AdmissionFacts(row[1], row[2], row[3])) for row in rows]


async def _fetch_one(connection: Connection, charge_point_id: str) -> AdmissionFacts | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM charge_points WHERE id = $1", charge_point_id
    )
    return None if row is None else AdmissionFacts(row[1], row[2], row[3])


class ChargePointCache:
    """Admission facts by charge point id (see the module docstring).

    Counters: ``reads`` (lookups that read the table: invalid, or not in memory),
    ``notifications`` (announcements applied).
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._facts: dict[str, AdmissionFacts] = {}
        self._valid = False
        self._changes = 0  # announcements, loads and forgets so far (see lookup)
        self.reads = 0
        self.notifications = 0
        self.on_registration: Callable[[str, str], None] | None = None
        """Called with ``(charge_point_id, registration status)`` for each announced change
        of a charge point (whoever made it): a live session elsewhere follows at once."""

    @property
    def valid(self) -> bool:
        return self._valid

    def __len__(self) -> int:
        return len(self._facts)

    async def lookup(self, charge_point_id: str) -> AdmissionFacts | None:
        """The charge point's admission facts, or None when it is not in the table (raises
        StoreUnavailable when the table must be read and the database is away)."""
        if self._valid:
            facts = self._facts.get(charge_point_id)
            if facts is not None:
                return facts
        self.reads += 1
        changes = self._changes
        facts = await self._database.run(_fetch_one, charge_point_id)
        if facts is not None and self._valid and self._changes == changes:
            self._facts[charge_point_id] = facts
        return facts

    def peek(self, charge_point_id: str) -> AdmissionFacts | None:
        """What memory holds for the charge point (None: nothing, or invalid); no read."""
        return self._facts.get(charge_point_id) if self._valid else None

    def forget(self, charge_point_id: str) -> None:
        """This process changed the row: read it at the next lookup."""
        self._changes += 1
        self._facts.pop(charge_point_id, None)

    # ---- kept by the LISTEN connection (voltaro.store.id_tags) -------------------------

    def load(self, facts: Iterable[tuple[str, AdmissionFacts]]) -> None:
        """Replace the copy with a snapshot of the table (not yet valid: see
        :meth:`set_valid`)."""
        self._changes += 1
        self._facts = dict(facts)

    def set_valid(self, valid: bool) -> None:
        """Trust the copy (the LISTEN connection is up and loaded) or not (emptied then)."""
        self._changes += 1
        self._valid = valid
        if not valid:
            self._facts = {}

    def apply(self, change: dict[str, Any]) -> bool:
        """Apply one announcement on the channel, decoded; False when it cannot be used (then
        nothing in memory may be trusted: reload)."""
        self.notifications += 1
        self._changes += 1
        try:
            op = change["op"]
            if op == "upsert":
                lenient = change["lenient"]
                password_hash = change["password_hash"]
                if not isinstance(lenient, bool) or not isinstance(password_hash, str | None):
                    raise TypeError("lenient or password_hash of the wrong type")
                facts = AdmissionFacts(str(change["status"]), password_hash, lenient)
                self._facts[str(change["id"])] = facts
                if self.on_registration is not None:
                    self.on_registration(str(change["id"]), facts.registration_status)
                return True
            if op == "removed":
                self._facts.pop(str(change["id"]), None)
                return True
        except (KeyError, TypeError) as error:
            log.error("charge point cache: unusable notification %r (%s)", change, error)
        return False  # reload (a TRUNCATE), unknown or unusable


def decode(payload: str) -> dict[str, Any] | None:
    """An announcement's JSON object, or None when it is not one."""
    try:
        change = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return change if isinstance(change, dict) else None
