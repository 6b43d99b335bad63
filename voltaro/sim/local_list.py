"""What a simulated charger knows of id tags by itself: its Local Authorization List and its
Authorization Cache (OCPP 1.6 sections 3.5, 5.10 and 5.15).

The list is the Central System's: it arrives with ``SendLocalList``, whole (``Full``) or as
changes (``Differential``: an entry with ``idTagInfo`` adds or replaces that tag, one without
removes it), each time with the version the list has once the update is applied. The cache
is the charger's own memory of the answers to its Authorize and StartTransaction requests,
for the tags that are not on the list (the list takes precedence).

:meth:`LocalAuthList.update` answers a ``SendLocalList`` as a charger does; nothing changes
unless the answer is ``Accepted``:

- ``Failed``: the update cannot be applied as sent: a version below 1 (0 and -1 mean "empty"
  and "not supported" in ``GetLocalListVersion``; a Full update that empties the list may say
  0), more entries than ``SendLocalListMaxLength``, an id tag twice, a Full entry without its
  ``idTagInfo``, or a list longer than ``LocalAuthListMaxLength`` after the update;
- ``VersionMismatch``: a Differential update whose version is not newer than the list's (it
  was made for another list than the one the charger holds; the Central System should send
  the whole list again);
- ``NotSupported`` is the charger's to answer (profile not supported, or the list disabled),
  before the list is asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from voltaro.ocppj.frames import Payload


def usable(info: Payload | None, now: datetime | None = None) -> bool:
    """Whether an ``idTagInfo`` held locally lets its tag charge: status Accepted and not past
    its ``expiryDate``."""
    if info is None or info.get("status") != "Accepted":
        return False
    expiry = info.get("expiryDate")
    if expiry is None:
        return True
    try:
        expires = datetime.fromisoformat(expiry)
    except ValueError:
        return False  # a date we cannot read grants nothing
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires > (now or datetime.now(UTC))


@dataclass
class LocalAuthList:
    """A charger's Local Authorization List."""

    version: int = 0
    """The version the Central System gave with the last accepted update."""
    entries: dict[str, Payload] = field(default_factory=dict)
    """id tag -> its ``idTagInfo`` (status, and expiryDate and parentIdTag when sent)."""

    def reported_version(self) -> int:
        """What ``GetLocalListVersion`` answers: 0 while the list is empty, whatever version
        emptied it (the specification reserves 0 for "empty")."""
        return self.version if self.entries else 0

    def lookup(self, id_tag: str) -> Payload | None:
        return self.entries.get(id_tag)

    def update(self, request: Payload, *, max_send: int, max_length: int) -> str:
        """Apply a ``SendLocalList`` request (``max_send``: ``SendLocalListMaxLength``,
        ``max_length``: ``LocalAuthListMaxLength``); returns the answer's status."""
        version: int = request["listVersion"]
        changes: list[Payload] = request.get("localAuthorizationList", [])
        full = request["updateType"] == "Full"
        tags = [change["idTag"] for change in changes]
        if version < 1 and not (full and version == 0 and not changes):
            return "Failed"
        if len(changes) > max_send or len(set(tags)) != len(tags):
            return "Failed"
        if full:
            if any("idTagInfo" not in change for change in changes):
                return "Failed"
            entries = {change["idTag"]: change["idTagInfo"] for change in changes}
        else:
            if version <= self.version:
                return "VersionMismatch"
            entries = dict(self.entries)
            for change in changes:
                info = change.get("idTagInfo")
                if info is None:
                    entries.pop(change["idTag"], None)
                else:
                    entries[change["idTag"]] = info
        if len(entries) > max_length:
            return "Failed"
        self.version = version
        self.entries = entries
        return "Accepted"


@dataclass
class AuthorizationCache:
    """The answers the Central System gave about tags not on the local list."""

    entries: dict[str, Payload] = field(default_factory=dict)

    def remember(self, id_tag: str, info: Payload) -> None:
        self.entries[id_tag] = info

    def lookup(self, id_tag: str) -> Payload | None:
        return self.entries.get(id_tag)

    def clear(self) -> None:
        self.entries.clear()
