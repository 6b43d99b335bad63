"""The OCPP 1.6 Local Auth List Management profile: every charger holds the id tag table as
its Local Authorization List, and Voltaro keeps it so.

- Which tags: all of them (README, "Local authorization lists"), with their status (Expired
  once past their expiry date), expiry date and parent, as Authorize would answer; computed
  in :mod:`voltaro.central.local_list_entries`.
- Keeping in sync: the background task of :mod:`voltaro.central.local_list_sync`.
- Operator commands: ``SendLocalList`` (the payload as given: a test tool's exact list; without
  a ``listVersion``, Voltaro's whole list now, see :func:`complete_list`) and
  ``GetLocalListVersion`` (also Voltaro's own check: a version other than the one Voltaro
  recorded makes the task send the whole list again; an operator's "sync now").
- What Voltaro knows of each charger's list (its version, which list it holds, whether it
  is the list Voltaro wants) is the table ``local_lists`` (:mod:`voltaro.store.local_lists`;
  each distinct list's entries stored once, migration 0019), written by the commands'
  effects below, whoever sent the command; shown as the listing ``local-lists`` and as
  facts of the charge point. The lists no charger holds are deleted by
  :func:`forget_unused_lists`.

The states of a charger's list: ``unknown`` (nothing accepted yet), ``synced`` (its last
update was accepted), ``mismatch`` (it answered VersionMismatch: Voltaro asks its version and
sends a Full list), ``failed`` (Failed or no answer: retried after a back-off, with a Full
list), ``not_supported`` (it answered NotSupported, a version of -1, or a CALLERROR
NotImplemented/NotSupported: Voltaro stops trying until an operator's command is accepted).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import trio

from voltaro.central.commands import InvalidCommand
from voltaro.central.domain import Domain
from voltaro.central.local_list_entries import (
    full_update,
    send_local_list,
    wanted_list,
)
from voltaro.central.local_list_sync import (
    DEFAULT_SEND_MAX,
    REFUSED,
    failure_changes,
    keep_local_lists_in_sync,
)
from voltaro.central.profile import (
    Command,
    Failure,
    Field,
    Listing,
    Payload,
    Profile,
    ProfileContext,
)
from voltaro.central.timestamps import format_timestamp, utc_now
from voltaro.ocppj.errors import ErrorCode
from voltaro.ocppj.validation import Violation
from voltaro.store.errors import StoreError
from voltaro.store.list_digests import digest
from voltaro.store.local_lists import STATES, ListSummary, LocalListRecord, LocalListRepository
from voltaro.store.records import IdTagRecord

log = logging.getLogger(__name__)

LIST_KEY = "localAuthorizationList"

# ---- what the charger's answers change --------------------------------------------------


async def list_sent(
    domain: Domain, charge_point_id: str, request: Payload, result: Payload
) -> None:
    """SendLocalList answered: an accepted update is what the charger now holds; a refusal
    sets the state (see the module doc)."""
    lists = LocalListRepository(domain.store.database)
    status = result["status"]
    if status == "Accepted":
        await record_accepted(lists, charge_point_id, request)
    elif status == "VersionMismatch":
        await lists.update(
            charge_point_id,
            state="mismatch",
            needs_full=True,
            check_version=True,
            last_status=status,
        )
    elif status == "Failed":
        await lists.change(
            charge_point_id, failure_changes(status, domain.settings.local_list_debounce)
        )
    else:
        await lists.update(charge_point_id, state="not_supported", last_status=status)


async def record_accepted(
    lists: LocalListRepository, charge_point_id: str, request: Payload
) -> None:
    """The charger accepted SendLocalList ``request``: its list is the update applied, in
    sync. Recorded in SQL at the cost of the update alone: a Full list in many messages
    would otherwise read and write the whole list at every one of them."""
    full = request["updateType"] == "Full"
    await lists.record_update(
        charge_point_id,
        request,
        state="synced",
        version=request["listVersion"],
        check_version=False,
        failures=0,
        retry_at=None,
        last_status="Accepted",
        **({"needs_full": False} if full else {}),
    )


async def version_read(
    domain: Domain, charge_point_id: str, request: Payload, result: Payload
) -> None:
    """GetLocalListVersion answered: -1 is "no local list here"; another version than the
    one Voltaro recorded means its entries are not known (a Full list follows)."""
    lists = LocalListRepository(domain.store.database)
    reported: int = result["listVersion"]
    now = utc_now()
    if reported < 0:
        await lists.update(
            charge_point_id,
            state="not_supported",
            reported_version=reported,
            reported_at=now,
            last_status="listVersion -1",
        )
        return

    def reported_changes(record: LocalListRecord) -> dict[str, Any]:
        changes: dict[str, Any] = {
            "reported_version": reported,
            "reported_at": now,
            "check_version": False,
        }
        if record.state == "not_supported":
            changes["state"] = "unknown"
        if record.version != reported:
            changes |= {"version": reported, "needs_full": True}
        return changes

    await lists.change(charge_point_id, reported_changes)


async def complete_list(domain: Domain, charge_point_id: str, request: Payload) -> Payload:
    """An operator's SendLocalList without a ``listVersion`` (the operator's "send the list
    now"): Voltaro's version, one past the version it knows the charger holds (or that the
    charger reported), and for a Full without a ``localAuthorizationList`` the list Voltaro
    wants the charger to hold now, as the sync task computes it. A list longer than the
    charger takes in one message (``SendLocalListMaxLength``) goes as its first entries: the
    automatic updates send the rest as Differentials once the Full is accepted; with them off
    such a list is refused (nothing is sent). With a ``listVersion`` the request is sent as
    given (a test tool's exact list)."""
    if "listVersion" in request:
        return request
    lists = LocalListRepository(domain.store.database)
    record = await lists.get(charge_point_id)
    version = max(record.version or 0, record.reported_version or 0)
    if request["updateType"] != "Full" or LIST_KEY in request:
        return send_local_list(version + 1, request["updateType"], request.get(LIST_KEY, []))
    send_max, max_length = await lists.limits(charge_point_id)
    wanted = wanted_list(await domain.store.id_tags.list_all(), utc_now(), max_length)
    update = full_update(wanted, version, send_max or DEFAULT_SEND_MAX)
    if len(update.messages) > 1 and domain.settings.local_lists == "off":
        why = (
            f"Voltaro's list has {len(wanted)} entries, more than the charger takes in one "
            f"SendLocalList ({send_max or DEFAULT_SEND_MAX}); with VOLTARO_LOCAL_LISTS=off "
            "nothing sends the rest"
        )
        path = f"$.{LIST_KEY}"
        violation = Violation(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, path, f"{path}: {why}")
        raise InvalidCommand("SendLocalList", violation)
    return update.messages[0]


async def list_refused(
    domain: Domain, charge_point_id: str, request: Payload, failure: Failure
) -> None:
    """A list command got no valid answer: a CALLERROR NotImplemented / NotSupported says the
    charger has no lists, recorded whoever sent the command (an operator's too, with the
    automatic updates off). Other failures are the sync task's to retry (its own commands);
    an operator's is the operator's."""
    if failure.code in REFUSED:
        lists = LocalListRepository(domain.store.database)
        await lists.update(
            charge_point_id, state="not_supported", last_status=f"CALLERROR {failure.code}"
        )


# ---- the stored lists ---------------------------------------------------------------------

UNUSED_LIST_KEPT = timedelta(hours=1)  # a list no charger holds is kept this long after stored
FORGET_PERIOD = 3600.0  # seconds between deletions of the lists no charger holds


async def forget_unused_lists(ctx: ProfileContext) -> None:
    """Delete the stored lists that no charger holds (migration 0019: a list is stored once
    for all the chargers that hold it; a Full sent in ten messages leaves nine lists behind),
    once an hour on every instance (each deletes what is still there), the first time at
    once. A database outage postpones it to the next hour."""
    lists = LocalListRepository(ctx.domain.store.database)
    while True:
        try:
            forgotten = await lists.forget_unused(utc_now() - UNUSED_LIST_KEPT)
        except StoreError as error:
            log.debug("unused local lists kept for now: %s", error)
        else:
            if forgotten:
                log.info("deleted %d stored local lists that no charger holds", forgotten)
        await trio.sleep(FORGET_PERIOD)


# ---- what operators see -----------------------------------------------------------------


def _in_sync(summary: ListSummary, wanted_digests: Mapping[int | None, str]) -> bool:
    return (
        summary.state == "synced"
        and summary.needs_full is False
        and summary.digest == wanted_digests.get(summary.max_length)
    )


async def _wanted_digests(domain: Domain, summaries: list[ListSummary]) -> dict[int | None, str]:
    """The digest of the wanted list for each list length limit among ``summaries``."""
    records: list[IdTagRecord] = await domain.store.id_tags.list_all()
    now = utc_now()
    limits = {summary.max_length for summary in summaries if summary.state == "synced"}
    return {limit: digest(wanted_list(records, now, limit)) for limit in limits}


def _item(summary: ListSummary, in_sync: bool) -> Payload:
    return {
        "chargePointId": summary.charge_point_id,
        "online": summary.online,
        "state": summary.state or "unknown",
        "version": summary.version,
        "entries": summary.size,
        "inSync": in_sync,
        "reportedVersion": summary.reported_version,
        "lastAnswer": summary.last_status,
        "updatedAt": None if summary.updated_at is None else format_timestamp(summary.updated_at),
    }


ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "chargePointId": {"type": "string", "title": "Charge point"},
        "online": {"type": "boolean", "title": "Online"},
        "state": {"type": "string", "enum": list(STATES), "title": "State"},
        "version": {"type": ["integer", "null"], "title": "Version"},
        "entries": {"type": ["integer", "null"], "title": "Entries"},
        "inSync": {"type": "boolean", "title": "In sync"},
        "reportedVersion": {"type": ["integer", "null"], "title": "Reported version"},
        "lastAnswer": {"type": ["string", "null"], "title": "Last answer"},
        "updatedAt": {"type": ["string", "null"], "format": "date-time", "title": "Updated"},
    },
}


async def local_lists(
    domain: Domain, filters: Mapping[str, Any], limit: int, offset: int
) -> tuple[list[Payload], int]:
    """Every charge point's list: its version and whether it is the list Voltaro wants."""
    lists = LocalListRepository(domain.store.database)
    summaries = await lists.summaries(filters.get("chargePointId"))
    wanted = await _wanted_digests(domain, summaries)
    items = [_item(summary, _in_sync(summary, wanted)) for summary in summaries]
    if "state" in filters:
        items = [item for item in items if item["state"] == filters["state"]]
    if "inSync" in filters:
        items = [item for item in items if item["inSync"] is filters["inSync"]]
    return items[offset : offset + limit], len(items)


FACTS_SCHEMA: dict[str, Any] = {
    "localListVersion": {"type": ["integer", "null"], "title": "Local list version"},
    "localListInSync": {"type": "boolean", "title": "Local list in sync"},
    "localListState": {"type": "string", "enum": list(STATES), "title": "Local list state"},
    "localListEntries": {"type": ["integer", "null"], "title": "Local list entries"},
}


async def local_list_facts(domain: Domain, charge_point_id: str) -> Payload:
    lists = LocalListRepository(domain.store.database)
    summaries = await lists.summaries(charge_point_id)
    if not summaries:
        return {}
    item = _item(summaries[0], _in_sync(summaries[0], await _wanted_digests(domain, summaries)))
    return {
        "localListVersion": item["version"],
        "localListInSync": item["inSync"],
        "localListState": item["state"],
        "localListEntries": item["entries"],
    }


LOCAL_LIST = Profile(
    name="LocalAuthListManagement",
    inbound={},
    commands=(
        Command(
            "GetLocalListVersion",
            "Ask the charger's local list version; another than Voltaro's makes it resend the list",
            effect=version_read,
            failed=list_refused,
        ),
        Command(
            "SendLocalList",
            "Send a local list update as given; without a listVersion, Voltaro's whole list "
            "now (it keeps lists in sync by itself)",
            (
                Field("listVersion", "List version (leave out: Voltaro's whole list)", "int"),
                Field("updateType", "Update type", "select", ("Full", "Differential"), True),
            ),
            effect=list_sent,
            failed=list_refused,
            prepare=complete_list,
            fills={"listVersion": 1},
        ),
    ),
    migrations=(
        "0013_local_lists.sql",
        "0018_local_list_digest_sums.sql",
        "0019_local_list_contents.sql",
    ),
    tasks=(keep_local_lists_in_sync, forget_unused_lists),
    listings=(
        Listing(
            "local-lists",
            "Local lists",
            (
                Field("chargePointId", "Charge point"),
                Field("state", "State", "select", STATES),
                Field("inSync", "In sync", "bool"),
            ),
            local_lists,
            ITEM_SCHEMA,
        ),
    ),
    charge_point_facts=local_list_facts,
    facts_schema=FACTS_SCHEMA,
)
