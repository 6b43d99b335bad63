"""Local Authorization Lists kept in sync, against the `ocpp` package's v16 ChargePoint (it
checks every CALL against the official schemas on its side) playing a charger that keeps a
real list: Full, then Differential, then a VersionMismatch resynced, lists split by the
charger's SendLocalListMaxLength and cut to its LocalAuthListMaxLength; NotSupported
recorded (nothing more is sent), Failed retried, many tag changes debounced into one
Differential; the operator's commands, the listing and the charge point's facts."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from tests.admin.conftest import Live, booted_peer, live_settings
from tests.e2e import never_busy, start_voltaro_with_loop
from tests.threaded import run_asyncio, trio_in_thread
from tests.tools import counting_pool_operations
from voltaro.central import local_list_sync
from voltaro.central.local_list_entries import apply_update
from voltaro.store.testing import TestPostgres


@dataclasses.dataclass
class LiveLists(Live):
    database_url: str = ""


@contextlib.contextmanager
def live_voltaro(
    pg_server: TestPostgres, tmp_path: Path, debounce: float, **settings_: Any
) -> Iterator[LiveLists]:
    url = pg_server.new_database()
    settings = dataclasses.replace(
        live_settings(url, tmp_path / "data"), local_list_debounce=debounce, **settings_
    )
    try:
        with trio_in_thread(
            lambda nursery: nursery.start(start_voltaro_with_loop, settings)
        ) as voltaro:
            never_busy(voltaro)
            token = (tmp_path / "data" / "admin-token").read_text().strip()
            yield LiveLists(voltaro, voltaro.admin_url or "", token, url)
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def live(pg_server: TestPostgres, tmp_path: Path) -> Iterator[LiveLists]:
    with live_voltaro(pg_server, tmp_path, debounce=0.3) as running:
        yield running


class ListCharger(ChargePoint):  # type: ignore[misc]
    """A charger with a Local Authorization List, as OCPP 1.6 section 5.15 describes it.

    ``supported``: False answers SendLocalList NotSupported (GetLocalListVersion still says
    0, as some chargers do); ``version``: the list version it starts with; ``fail``: how
    many SendLocalLists to answer Failed first. ``received``: every CALL as (action,
    payload, the frame's text)."""

    def __init__(
        self,
        charge_point_id: str,
        connection: Any,
        *,
        send_max: int = 100,
        max_length: int = 1000,
        supported: bool = True,
        fail: int = 0,
        version: int = 0,
    ) -> None:
        super().__init__(charge_point_id, connection)
        self.configuration = {
            "LocalAuthListEnabled": "true",
            "LocalAuthListMaxLength": str(max_length),
            "SendLocalListMaxLength": str(send_max),
        }
        self.supported = supported
        self.fail = fail
        self.version = version  # -1: "no local list here", as GetLocalListVersion says it
        self.entries: dict[str, Any] = {}
        self.received: list[tuple[str, dict[str, Any], str]] = []
        self.accepted_hook: Callable[[], None] = lambda: None  # after each accepted update

    async def route_message(self, raw_msg: str) -> None:
        frame = orjson.loads(raw_msg)
        if frame[0] == 2:
            self.received.append((frame[2], frame[3], raw_msg))
        await super().route_message(raw_msg)

    def sent(self, action: str = "SendLocalList") -> list[dict[str, Any]]:
        return [payload for name, payload, _ in self.received if name == action]

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        keys = [k for k in self.configuration if not key or k in key]
        return call_result.GetConfiguration(
            configuration_key=[
                {"key": k, "readonly": True, "value": self.configuration[k]} for k in keys
            ]
        )

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self) -> Any:
        return call_result.GetLocalListVersion(list_version=self.version)

    @on(Action.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str, **_: Any) -> Any:
        update = self.sent()[-1]  # the payload as sent (the package hands it snake_cased)
        if not self.supported:
            return call_result.SendLocalList(status="NotSupported")
        if self.fail > 0:
            self.fail -= 1
            return call_result.SendLocalList(status="Failed")
        entries = update.get("localAuthorizationList") or []
        if len(entries) > int(self.configuration["SendLocalListMaxLength"]):
            return call_result.SendLocalList(status="Failed")
        if update_type == "Differential" and list_version <= self.version:
            return call_result.SendLocalList(status="VersionMismatch")
        result = apply_update(self.entries, update)
        if len(result) > int(self.configuration["LocalAuthListMaxLength"]):
            return call_result.SendLocalList(status="Failed")
        self.entries, self.version = result, list_version
        self.accepted_hook()
        return call_result.SendLocalList(status="Accepted")


def connected(
    live: Live, charge_point_id: str, **options: Any
) -> contextlib.AbstractAsyncContextManager[ListCharger]:
    return booted_peer(live, charge_point_id, lambda id_, ws: ListCharger(id_, ws, **options))


async def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for what the server does in the background (a condition, never a duration)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def sql(live: LiveLists, *statements: str) -> None:
    """Each statement committed on its own, as separate operator actions would be."""
    connection = await asyncpg.connect(live.database_url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def add_tags(*ids: str) -> str:
    values = ", ".join(f"('{tag}')" for tag in ids)
    return f"INSERT INTO id_tags (id_tag) VALUES {values}"


def accepted(*ids: str) -> dict[str, Any]:
    return {tag: {"status": "Accepted"} for tag in ids}


SCENARIO_LIMIT = 120.0  # seconds: a scenario that hangs fails, with where it waited


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(scenario(), SCENARIO_LIMIT)

    return run_asyncio(bounded())


async def lists(live: Live, **params: Any) -> dict[str, Any]:
    async with live.async_client() as http:
        answer = await http.get("/api/v1/local-lists", params=params)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


def test_full_then_differential_then_mismatch_resync_then_split(live: LiveLists) -> None:
    async def scenario() -> None:
        await sql(live, add_tags("TAG-A", "TAG-B", "TAG-C"))
        async with connected(live, "LL-1") as charger:
            # Online: its version asked, then the whole list as one Full.
            await until(lambda: charger.entries == accepted("TAG-A", "TAG-B", "TAG-C"), "Full")
            first = charger.sent()
            assert [(m["updateType"], m["listVersion"]) for m in first] == [("Full", 1)]
            assert charger.received[0][0] == "GetLocalListVersion"
            raw = next(text for action, _, text in charger.received if action == "SendLocalList")
            assert raw.index('"listVersion"') < raw.index('"localAuthorizationList"')
            assert raw.index('"localAuthorizationList"') < raw.index('"updateType"')

            # Tags change: one Differential with the changes; a removal has no idTagInfo.
            await sql(
                live,
                "UPDATE id_tags SET status = 'Blocked' WHERE id_tag = 'TAG-B'",
                "DELETE FROM id_tags WHERE id_tag = 'TAG-A'",
                "INSERT INTO id_tags (id_tag, parent_id_tag) VALUES ('TAG-D', 'TAG-C')",
            )
            wanted = {
                "TAG-B": {"status": "Blocked"},
                "TAG-C": {"status": "Accepted"},
                "TAG-D": {"parentIdTag": "TAG-C", "status": "Accepted"},
            }
            await until(lambda: charger.entries == wanted, "the differential")
            await until(lambda: recorded(live, "LL-1", version=2), "recorded")
            differential = charger.sent()[-1]
            assert differential["updateType"] == "Differential"
            assert differential["listVersion"] == 2
            assert differential["localAuthorizationList"][0] == {"idTag": "TAG-A"}
            page = await lists(live, chargePointId="LL-1")
            assert page["items"][0] | {"updatedAt": None} == {
                "chargePointId": "LL-1",
                "online": True,
                "state": "synced",
                "version": 2,
                "entries": 3,
                "inSync": True,
                "reportedVersion": 0,
                "lastAnswer": "Accepted",
                "updatedAt": None,
            }

            # The charger's list moved on without Voltaro (version 7): the next Differential
            # is a VersionMismatch, so Voltaro asks the version and sends a Full after it.
            charger.version = 7
            mark = len(charger.received)
            await sql(live, "UPDATE id_tags SET status = 'Accepted' WHERE id_tag = 'TAG-B'")
            wanted["TAG-B"] = {"status": "Accepted"}
            await until(lambda: charger.version == 8, "the resync")
            assert [(a, p.get("updateType"), p.get("listVersion")) for a, p, _ in
                    charger.received[mark:]] == [
                ("SendLocalList", "Differential", 3),
                ("GetLocalListVersion", None, None),
                ("SendLocalList", "Full", 8),
            ]  # fmt: skip
            assert charger.entries == wanted
            await until(lambda: recorded(live, "LL-1", version=8), "recorded in sync")

        # A charger that takes 2 entries a message and holds 4: a Full of its first 4 tags
        # (by id) in two messages, then the Differential of a change in as many as needed.
        async with connected(live, "LL-2", send_max=2, max_length=4) as small:
            await until(lambda: small.version == 2, "the split Full")
            assert [(m["updateType"], len(m["localAuthorizationList"])) for m in small.sent()] == [
                ("Full", 2),
                ("Differential", 1),
            ]
            assert sorted(small.entries) == ["TAG-B", "TAG-C", "TAG-D"]  # only 3 tags exist
            await sql(live, add_tags("TAG-0", "TAG-1", "TAG-2"))
            await until(
                lambda: sorted(small.entries) == ["TAG-0", "TAG-1", "TAG-2", "TAG-B"], "cut"
            )
            assert [len(m["localAuthorizationList"]) for m in small.sent()[2:]] == [2, 2, 1]
            await until(lambda: recorded(live, "LL-2", version=5), "recorded")
            page = await lists(live, chargePointId="LL-2")
            assert page["items"][0]["inSync"] is True and page["items"][0]["entries"] == 4

    run(scenario)


def recorded(live: Live, charge_point_id: str, *, version: int) -> bool:
    """Whether Voltaro records the charger's list at ``version`` and in sync (an answer is
    recorded after the charger sent it)."""
    with live.client() as api:
        item = api.get("/api/v1/local-lists", params={"chargePointId": charge_point_id}).json()
    return bool(item["items"][0]["version"] == version and item["items"][0]["inSync"])


def test_not_supported_is_recorded_and_nothing_more_is_sent(live: LiveLists) -> None:
    async def scenario() -> None:
        await sql(live, add_tags("TAG-A"))
        async with (
            connected(live, "LL-NO", supported=False) as refusing,
            connected(live, "LL-MINUS", version=-1) as minus,
            connected(live, "LL-YES") as listening,
        ):
            await until(lambda: listening.version == 1, "the supporting charger's Full")
            await until(lambda: len(refusing.sent()) == 1, "the refusing charger's Full")
            await until(lambda: run_listing(live, "LL-MINUS")["state"] == "not_supported", "-1")
            await sql(live, add_tags("TAG-B"))
            await until(lambda: listening.version == 2, "the next Differential")
            # Both were marked by the same change and looked at in the same round.
            page = await lists(live, state="not_supported")
            answers = {item["chargePointId"]: item["lastAnswer"] for item in page["items"]}
            assert answers == {"LL-MINUS": "listVersion -1", "LL-NO": "NotSupported"}
            assert not any(item["inSync"] for item in page["items"])
            assert len(refusing.sent()) == 1  # nothing after NotSupported
            assert minus.sent() == []  # a version of -1: never a list
            assert run_listing(live, "LL-MINUS")["reportedVersion"] == -1

        # A charger that does not know the profile at all (the package answers CALLERROR
        # NotImplemented for actions it has no handler for) is recorded the same way.
        async with websockets.connect(live.ws_url("LL-BARE"), subprotocols=["ocpp1.6"]) as ws:
            bare = ChargePoint("LL-BARE", ws)
            listener = asyncio.create_task(bare.start())
            try:
                await bare.call(
                    call.BootNotification(charge_point_model="M", charge_point_vendor="V")
                )
                await until(
                    lambda: run_listing(live, "LL-BARE")["state"] == "not_supported", "recorded"
                )
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
        assert run_listing(live, "LL-BARE")["lastAnswer"].startswith("CALLERROR")

    run(scenario)


def test_failed_is_retried_with_a_full_list(live: LiveLists) -> None:
    async def scenario() -> None:
        await sql(live, add_tags("TAG-A", "TAG-B"))
        async with connected(live, "LL-FAIL", fail=2) as charger:
            await until(lambda: charger.entries == accepted("TAG-A", "TAG-B"), "in the end")
            attempts = charger.sent()
            assert [(m["updateType"], m["listVersion"]) for m in attempts] == [
                ("Full", 1),
                ("Full", 1),
                ("Full", 1),
            ]  # each retry is the whole list again
            await until(lambda: recorded(live, "LL-FAIL", version=1), "recorded in sync")

    run(scenario)


def test_a_charger_whose_stored_list_is_gone_gets_the_whole_list(live: LiveLists) -> None:
    """A charger naming a stored list that was deleted (it moved to the list as the list was
    deleted, migration 0019): what it holds is not known, so the next change sends it the
    whole list rather than a Differential from entries Voltaro no longer has."""

    async def scenario() -> None:
        await sql(live, add_tags("TAG-A", "TAG-B"))
        async with connected(live, "LL-GONE") as charger:
            await until(lambda: recorded(live, "LL-GONE", version=1), "synced")
            await sql(live, "DELETE FROM local_list_contents", add_tags("TAG-C"))
            await until(lambda: recorded(live, "LL-GONE", version=2), "synced again")
            assert charger.entries == accepted("TAG-A", "TAG-B", "TAG-C")
            sent = [(m["updateType"], m["listVersion"]) for m in charger.sent()]
            assert sent == [("Full", 1), ("Full", 2)]

    run(scenario)


def test_many_tag_changes_give_one_differential(pg_server: TestPostgres, tmp_path: Path) -> None:
    with live_voltaro(pg_server, tmp_path, debounce=3.0) as live:

        async def scenario() -> None:
            async with connected(live, "LL-BURST") as charger:
                await until(lambda: recorded(live, "LL-BURST", version=1), "the first (empty) Full")
                assert charger.sent() == [
                    {"listVersion": 1, "localAuthorizationList": [], "updateType": "Full"}
                ]
                tags = [f"BURST-{i:02d}" for i in range(20)]
                await sql(live, *(add_tags(tag) for tag in tags))  # 20 commits
                await until(lambda: charger.entries == accepted(*tags), "all 20 tags")
                updates = charger.sent()[1:]
                assert len(updates) == 1  # one message for twenty changes
                assert updates[0]["updateType"] == "Differential"
                assert len(updates[0]["localAuthorizationList"]) == 20

        run(scenario)


def test_operator_commands_version_check_and_facts(live: LiveLists) -> None:
    async def scenario() -> None:
        await sql(live, add_tags("TAG-A"))
        async with connected(live, "LL-OP") as charger, live.async_client() as http:
            await until(lambda: recorded(live, "LL-OP", version=1), "synced")
            path = "/api/v1/charge-points/LL-OP/commands"
            # An operator's exact list (as a test tool sends it) is what the charger holds.
            mine = {
                "listVersion": 40,
                "localAuthorizationList": [{"idTag": "OWN", "idTagInfo": {"status": "Blocked"}}],
                "updateType": "Full",
            }
            answer = await http.post(f"{path}/SendLocalList", json=mine)
            assert answer.status_code == 200 and answer.json() == {"result": {"status": "Accepted"}}
            assert charger.entries == {"OWN": {"status": "Blocked"}} and charger.version == 40
            # ... and then Voltaro's list again, as a Differential from that version.
            await until(lambda: charger.entries == accepted("TAG-A"), "back in sync")
            assert charger.sent()[-1]["listVersion"] == 41
            assert charger.sent()[-1]["updateType"] == "Differential"

            # The charger lost its list: the operator's version check sees it and Voltaro
            # sends the whole list again.
            charger.entries, charger.version = {}, 0
            answer = await http.post(f"{path}/GetLocalListVersion", json={})
            assert answer.json() == {"result": {"listVersion": 0}}
            await until(lambda: charger.entries == accepted("TAG-A"), "the Full after the check")
            assert charger.sent()[-1]["updateType"] == "Full"
            await until(lambda: recorded(live, "LL-OP", version=charger.version), "recorded")

            detail = (await http.get("/api/v1/charge-points/LL-OP")).json()
            assert detail["localListVersion"] == charger.version
            assert detail["localListInSync"] is True and detail["localListEntries"] == 1
            await sql(live, "UPDATE id_tags SET status = 'Blocked'")
            await until(lambda: charger.entries == {"TAG-A": {"status": "Blocked"}}, "blocked")
        # Offline, a tag change leaves it out of sync until it comes back.
        await sql(live, add_tags("TAG-B"))
        await until(lambda: run_listing(live, "LL-OP")["inSync"] is False, "out of sync")
        assert (await lists(live, inSync="true"))["total"] == 0
        document = await openapi(live)
        assert "/api/v1/local-lists" in document["paths"]

    run(scenario)


def run_listing(live: Live, charge_point_id: str) -> dict[str, Any]:
    with live.client() as api:
        page = api.get("/api/v1/local-lists", params={"chargePointId": charge_point_id}).json()
    item: dict[str, Any] = page["items"][0]
    return item


async def openapi(live: Live) -> dict[str, Any]:
    async with live.async_client() as http:
        document: dict[str, Any] = (await http.get("/api/v1/openapi.json")).json()
        return document


def test_an_expiry_date_passing_turns_the_entry_expired(live: LiveLists) -> None:
    async def scenario() -> None:
        await sql(
            live,
            "INSERT INTO id_tags (id_tag, expiry_date) VALUES ('SOON', now() + interval '2 s')",
        )
        async with connected(live, "LL-EXP") as charger:
            await until(lambda: charger.version == 1, "the Full")
            assert charger.entries["SOON"]["status"] == "Accepted"
            # Nothing changes in the table: the time passing is the change.
            await until(lambda: charger.entries["SOON"]["status"] == "Expired", "expired")
            assert [m["updateType"] for m in charger.sent()] == ["Full", "Differential"]

    run(scenario)


def test_the_dashboard_lists_local_lists(live: LiveLists) -> None:
    async def scenario() -> None:
        async with connected(live, "LL-DASH") as charger:
            await until(lambda: recorded(live, "LL-DASH", version=charger.version), "synced")
        async with httpx.AsyncClient(base_url=live.base) as browser:
            signed_in = await browser.post("/login", data={"token": live.token, "next": "/"})
            assert signed_in.status_code == 302
            page = (await browser.get("/local-lists")).text
            assert '<a href="/charge-points/LL-DASH">LL-DASH</a>' in page
            assert '<th scope="col">In sync</th>' in page
            detail = (await browser.get("/charge-points/LL-DASH")).text
            assert "<dt>Local list in sync</dt>" in detail
            assert 'data-fact="localListInSync">yes</dd>' in detail

    run(scenario)


def test_the_operator_sends_voltaros_list_now(live: LiveLists) -> None:
    """A SendLocalList without a listVersion is Voltaro's list, sent now: the whole list for
    a Full, one version past the one Voltaro knows (the charger that lost its list silently
    is whole again without waiting for a change)."""

    async def scenario() -> None:
        blocked = "UPDATE id_tags SET status = 'Blocked' WHERE id_tag = 'TAG-A'"
        await sql(live, add_tags("TAG-A", "TAG-B"), blocked)
        async with connected(live, "LL-NOW") as charger, live.async_client() as http:
            await until(lambda: recorded(live, "LL-NOW", version=1), "synced")
            charger.entries, charger.version = {}, 0  # lost, and nobody was told
            mark = len(charger.received)
            path = "/api/v1/charge-points/LL-NOW/commands/SendLocalList"
            answer = await http.post(path, json={"updateType": "Full"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {
                "result": {"status": "Accepted"},
                "allocated": {"listVersion": 2},
            }
            assert charger.entries == accepted("TAG-A", "TAG-B") | {"TAG-A": {"status": "Blocked"}}
            assert [action for action, _, _ in charger.received[mark:]] == ["SendLocalList"]
            raw = charger.received[mark][2]
            assert raw.index('"listVersion"') < raw.index('"localAuthorizationList"')
            assert raw.index('"localAuthorizationList"') < raw.index('"updateType"')
            await until(lambda: recorded(live, "LL-NOW", version=2), "recorded in sync")

            # With a listVersion, the operator's list as given (a test tool's), as before.
            exact = {"listVersion": 9, "updateType": "Full"}
            answer = await http.post(path, json=exact)
            assert answer.json() == {"result": {"status": "Accepted"}}
            assert charger.sent()[-1] == exact and charger.version == 9

        # A list longer than one message takes: its first entries, then the rest as the
        # automatic updates' Differential.
        await sql(live, add_tags("TAG-C"))
        async with connected(live, "LL-NOW-2", send_max=2) as small, live.async_client() as http:
            await until(lambda: recorded(live, "LL-NOW-2", version=2), "synced in two")
            small.entries, small.version = {}, 0
            mark = len(small.sent())
            path = "/api/v1/charge-points/LL-NOW-2/commands/SendLocalList"
            answer = await http.post(path, json={"updateType": "Full"})
            assert answer.json()["allocated"] == {"listVersion": 3}
            await until(lambda: small.version == 4, "the rest")
            assert [(m["updateType"], len(m["localAuthorizationList"])) for m in
                    small.sent()[mark:]] == [("Full", 2), ("Differential", 1)]  # fmt: skip
            assert sorted(small.entries) == ["TAG-A", "TAG-B", "TAG-C"]

        document = await openapi(live)
        request = document["components"]["schemas"]["SendLocalListRequest"]
        assert request["required"] == ["updateType"]

    run(scenario)


LIST_READERS = ("voltaro.store.local_lists", "voltaro.store.charge_points")


def test_a_new_chargers_first_sync_reads_only_what_its_answers_changed(
    pg_server: TestPostgres, tmp_path: Path
) -> None:
    """In a storm of new chargers every one is looked at: what the round read at its start
    (no row, no limits) is not read again, and the commands' charge point is known from
    memory. Left: the row after the version answer, the limits after the configuration
    answer, the limit recorded (10 operations before, a read each of those and three
    charge point reads more), and the accepted Full recorded: one statement since migration
    0018 (before, a transaction of three, which this count did not see)."""
    with live_voltaro(pg_server, tmp_path, debounce=1.0) as live:

        async def scenario() -> None:
            database = live.voltaro.central.store.database
            async with connected(live, "LL-NEW") as charger:
                with counting_pool_operations(database, LIST_READERS) as count:
                    await until(lambda: charger.version == 1, "the first Full")
                await until(lambda: recorded(live, "LL-NEW", version=1), "recorded")
                assert [action for action, _, _ in charger.received] == [
                    "GetLocalListVersion",
                    "GetConfiguration",
                    "SendLocalList",
                ]
            assert count[0] <= 2 + 4  # the round's two reads, this charger's four (fewer: begun)

        run(scenario)


def test_a_charger_the_database_fails_is_looked_at_again_and_the_round_goes_on(
    pg_server: TestPostgres, tmp_path: Path
) -> None:
    """The database fails one charger's look (its connection cut while it waits for a row
    another transaction locked): that charger is looked at again,
    the other charger of the round is not disturbed (before, the whole task failed, and its
    restart asked every charger's version again)."""
    with live_voltaro(pg_server, tmp_path, debounce=0.3) as live:

        async def scenario() -> None:
            async with connected(live, "LL-LOCKED"):
                await until(lambda: recorded(live, "LL-LOCKED", version=1), "the first Full")
            lock = await asyncpg.connect(live.database_url)
            try:
                transaction = lock.transaction()
                await transaction.start()
                await lock.execute(
                    "SELECT * FROM local_lists WHERE charge_point_id = 'LL-LOCKED' FOR UPDATE"
                )
                waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted"
                async with (
                    connected(live, "LL-LOCKED") as locked,
                    connected(live, "LL-FREE") as free,
                ):
                    await until(lambda: free.version == 1, "the other charger's Full")
                    # its answer's recording waits for the lock: its connection is cut
                    await until_async(lambda: lock.fetchval(waiting), 1, "a waiter")
                    await lock.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE NOT granted"
                    )
                    await transaction.rollback()
                    await until(lambda: locked.version == 1, "the locked charger's Full")
                    assert locked.sent("GetLocalListVersion") == [{}, {}]  # asked again
                    assert free.sent("GetLocalListVersion") == [{}]  # not disturbed
            finally:
                await lock.close()

        run(scenario)


async def until_async(
    read: Callable[[], Awaitable[Any]], wanted: Any, what: str, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while await read() != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s: {what}")
        await asyncio.sleep(0.02)


def test_a_busy_instance_sends_lists_when_it_is_not_busy_or_after_the_limit(
    live: LiveLists, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lists give way to the chargers' own messages: while the instance is busy (here made
    so by a busy level every process is over) a charger's update waits, and goes out once
    the instance is not busy; on an instance busy all along, it goes out after the limit."""
    load = live.voltaro.central.load
    busy_level = load.busy_cpu_share
    monkeypatch.setattr(local_list_sync, "BUSY_WAIT_LIMIT", 3.0)

    async def scenario() -> None:
        await sql(live, add_tags("TAG-A", "TAG-B"))
        load.busy_cpu_share = -1.0
        async with connected(live, "LL-BUSY") as charger:
            await asyncio.sleep(1.5)  # debounce 0.3 s, so it would have begun by now
            assert charger.received == []
            load.busy_cpu_share = busy_level
            await until(lambda: charger.entries == accepted("TAG-A", "TAG-B"), "not busy")
        load.busy_cpu_share = -1.0
        async with connected(live, "LL-BUSY-ALL-ALONG") as charger:
            waited = time.monotonic()
            await until(lambda: charger.entries == accepted("TAG-A", "TAG-B"), "the limit")
            assert time.monotonic() - waited > 2.0  # the 3 s limit, less the debounce
        load.busy_cpu_share = busy_level

    run(scenario)


def test_an_update_of_many_messages_gives_way_between_them(live: LiveLists) -> None:
    """Each message of an update waits while the instance is busy: an update that went out
    whole once the instance was not busy made it busy again."""
    load = live.voltaro.central.load
    busy_level = load.busy_cpu_share

    def busy() -> None:
        load.busy_cpu_share = -1.0

    async def scenario() -> None:
        await sql(live, add_tags("TAG-A", "TAG-B", "TAG-C", "TAG-D", "TAG-E", "TAG-F"))
        try:
            async with connected(live, "LL-STEPS", send_max=2) as charger:
                charger.accepted_hook = busy  # busy from the first message's answer on
                await until(lambda: len(charger.sent()) == 1, "the first message")
                await asyncio.sleep(1.5)
                assert len(charger.sent()) == 1  # the rest wait
                charger.accepted_hook = lambda: None
                load.busy_cpu_share = busy_level
                wanted = accepted("TAG-A", "TAG-B", "TAG-C", "TAG-D", "TAG-E", "TAG-F")
                await until(lambda: charger.entries == wanted, "the rest")
                assert len(charger.sent()) == 3
        finally:
            load.busy_cpu_share = busy_level

    run(scenario)
