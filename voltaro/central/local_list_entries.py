"""A charger's Local Authorization List as Voltaro computes it, and the SendLocalList
payloads that bring a charger's list to it. Pure functions: no I/O, no clock of their own.

A list is a mapping ``{idTag: idTagInfo}`` (:data:`LocalList`); ``idTagInfo`` holds the
keys of the schema's ``IdTagInfo`` in the schema's order (``expiryDate``, ``parentIdTag``,
``status``). Which tags: every tag of the id tag table (see the README, "Local
authorization lists"), in the order of their id, the first ``max_length`` of them when the
charger stores no more (``LocalAuthListMaxLength``).

The payloads keep the schema's property order, ``listVersion``, ``localAuthorizationList``,
``updateType`` (test tools match on it; orjson writes keys in insertion order), and carry at
most ``send_max`` entries each (``SendLocalListMaxLength``): a longer Full list goes as a
Full of the first entries followed by Differentials adding the rest, each message one
version further, so the last message's version is the version of the whole list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voltaro.central.timestamps import format_timestamp
from voltaro.store.records import IdTagRecord

LocalList = dict[str, dict[str, Any]]
"""``{idTag: idTagInfo}``: a charger's list, or the list Voltaro wants it to have."""

Payload = dict[str, Any]

ID_TAG_MAX = 20  # characters: the schema's IdToken (longer tags cannot be on a list)


def entry_info(record: IdTagRecord, now: datetime) -> dict[str, Any]:
    """The ``idTagInfo`` a tag has on a local list at ``now``: the operator's status, or
    ``Expired`` once its expiry date has passed (as Authorize answers; ``ConcurrentTx`` is a
    matter of the moment and is never put on a list)."""
    info: dict[str, Any] = {}
    if record.expiry_date is not None:
        info["expiryDate"] = format_timestamp(record.expiry_date)
    if record.parent_id_tag is not None:
        info["parentIdTag"] = record.parent_id_tag
    status = record.status
    if status == "Accepted" and record.expiry_date is not None and record.expiry_date <= now:
        status = "Expired"
    info["status"] = status
    return info


def wanted_list(
    records: Iterable[IdTagRecord], now: datetime, max_length: int | None = None
) -> LocalList:
    """The list Voltaro wants a charger to hold: every tag, ordered by id, at most
    ``max_length`` of them."""
    wanted: LocalList = {}
    for record in sorted(records, key=lambda r: r.id_tag):
        if len(record.id_tag) > ID_TAG_MAX:
            continue
        if max_length is not None and len(wanted) >= max_length:
            break
        wanted[record.id_tag] = entry_info(record, now)
    return wanted


def next_change(records: Iterable[IdTagRecord], now: datetime) -> datetime | None:
    """When the wanted list changes by itself next: the earliest expiry still to come of a
    tag that is Accepted now (it turns Expired then); None when none will."""
    upcoming = [
        r.expiry_date
        for r in records
        if r.status == "Accepted" and r.expiry_date is not None and r.expiry_date > now
    ]
    return min(upcoming, default=None)


def differences(held: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[Payload]:
    """The Differential entries that turn ``held`` into ``wanted``: removed tags without
    ``idTagInfo`` (which removes them) first, then changed tags, then new ones, each part
    ordered by id; so a charger applying them in several messages never holds more entries
    than the larger of the two lists (its ``LocalAuthListMaxLength`` holds throughout)."""
    removed = [{"idTag": tag} for tag in sorted(held.keys() - wanted.keys())]
    changed: list[Payload] = []
    added: list[Payload] = []
    for id_tag, info in sorted(wanted.items()):
        if id_tag not in held:
            added.append({"idTag": id_tag, "idTagInfo": info})
        elif held[id_tag] != info:
            changed.append({"idTag": id_tag, "idTagInfo": info})
    return removed + changed + added


def apply_update(held: Mapping[str, Any], update: Mapping[str, Any]) -> LocalList:
    """The list a charger holds after it accepted ``update`` (a SendLocalList request):
    a Full replaces the list; a Differential adds or replaces the entries with
    ``idTagInfo`` and removes those without."""
    result: LocalList = {} if update["updateType"] == "Full" else dict(held)
    for entry in update.get("localAuthorizationList") or ():
        info = entry.get("idTagInfo")
        if info is None:
            result.pop(entry["idTag"], None)
        else:
            result[entry["idTag"]] = dict(info)
    return result


def send_local_list(version: int, update_type: str, entries: list[Payload]) -> Payload:
    """One SendLocalList request, its keys in the schema's order."""
    return {"listVersion": version, "localAuthorizationList": entries, "updateType": update_type}


@dataclass(frozen=True, slots=True)
class Update:
    """The messages of one update and the version the charger's list has after them."""

    messages: list[Payload]
    version: int


def full_update(wanted: Mapping[str, Any], after_version: int, send_max: int) -> Update:
    """A Full update to ``wanted``, split into messages of at most ``send_max`` entries;
    the first message's version is ``after_version + 1``. An empty list is one Full
    message with no entries (which empties the charger's list)."""
    entries: list[Payload] = [{"idTag": tag, "idTagInfo": info} for tag, info in wanted.items()]
    chunks = _chunks(entries, send_max) or [[]]
    messages = [
        send_local_list(after_version + i + 1, "Full" if i == 0 else "Differential", chunk)
        for i, chunk in enumerate(chunks)
    ]
    return Update(messages, after_version + len(messages))


def differential_update(
    held: Mapping[str, Any], wanted: Mapping[str, Any], version: int, send_max: int
) -> Update:
    """The Differential messages (none when ``held`` is ``wanted``) from a charger at
    ``version`` holding ``held`` to ``wanted``, at most ``send_max`` entries each."""
    chunks = _chunks(differences(held, wanted), send_max)
    messages = [
        send_local_list(version + i + 1, "Differential", chunk) for i, chunk in enumerate(chunks)
    ]
    return Update(messages, version + len(messages))


def _chunks(entries: list[Payload], size: int) -> list[list[Payload]]:
    size = max(size, 1)
    return [entries[i : i + size] for i in range(0, len(entries), size)]
