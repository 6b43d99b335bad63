"""Feature profiles are plug-ins: a profile declared in a test module, and nothing else
changed, is served whole: its charger-initiated message is handled, its command is in the
API (route and OpenAPI variant), on the dashboard and in ``voltaro command``, and the
command's effect is applied to the answer before the operator sees it; its background task
runs (and may send commands), its listing is an API route and a dashboard page, and its
charge point facts are in the charge point's detail and on its page.

The test profiles use actions no real profile of Voltaro offers (security extension and
Smart Charging messages), so that they stay served alongside every real one."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import voltaro.store.migrations
from tests.e2e import e2e_settings, ws_url
from tests.harness import RawCharger
from voltaro.app import Voltaro, start_voltaro
from voltaro.central.commands import CommandCatalog
from voltaro.central.domain import Charger, Domain
from voltaro.central.domain_events import Booted, CommandAnswered
from voltaro.central.profile import (
    CONNECTOR_NOTES,
    Command,
    Field,
    Listing,
    Profile,
    ProfileContext,
)
from voltaro.central.profile_tasks import FIRST_BACKOFF, supervised
from voltaro.central.profiles import PROFILES
from voltaro.cli_command import add_command_command
from voltaro.config import Settings
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt 1"}
STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}

answers_kept: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
logs_heard: list[tuple[str, str]] = []


async def keep_answer(
    domain: Domain, charge_point_id: str, request: dict[str, Any], result: dict[str, Any]
) -> None:
    answers_kept.append((charge_point_id, request, result))


async def log_status(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    logs_heard.append((charger.id, payload["status"]))
    return {}


DEMO = Profile(
    name="Demo",
    inbound={"LogStatusNotification": log_status},
    accepted_only=frozenset({"LogStatusNotification"}),
    commands=(
        Command(
            "ClearChargingProfile",
            "Clear the charger's charging profiles",
            effect=keep_answer,
        ),
        Command(
            "GetDiagnostics",
            "Ask for a diagnostics upload",
            (Field("location", "Upload URL", required=True), Field("retries", "Retries", "int")),
        ),
    ),
)


def test_a_profile_declares_what_it_handles_and_offers() -> None:
    catalog = CommandCatalog((*PROFILES, DEMO))
    assert catalog.actions[-2:] == ("ClearChargingProfile", "GetDiagnostics")
    with pytest.raises(ValueError, match="offered by two profiles"):
        CommandCatalog((*PROFILES, DEMO, DEMO))
    with pytest.raises(ValueError, match="not sent by the Central System"):
        CommandCatalog(
            (Profile("Bad", {}, commands=(Command("Heartbeat", "no"),)),),
        )
    with pytest.raises(ValueError, match="accepted_only names unhandled"):
        Profile("Bad", {}, accepted_only=frozenset({"Authorize"}))
    with pytest.raises(ValueError, match="handled by two profiles"):
        from voltaro.central import CentralSystem

        CentralSystem(Settings(), profiles=(*PROFILES, Profile("Again", dict(PROFILES[0].inbound))))


def test_the_cli_offers_every_declared_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="voltaro")
    add_command_command(parser.add_subparsers(dest="command"), (*PROFILES, DEMO))
    args = parser.parse_args(
        ["command", "GetDiagnostics", "CP-1", "--location", "ftp://x/", "--retries", "3"]
    )
    assert args.command.action == "GetDiagnostics"
    assert args.command.payload({"location": args.field_location, "retries": args.field_retries})
    with pytest.raises(SystemExit):
        parser.parse_args(["command", "GetDiagnostics", "CP-1"])  # --location is required
    assert "--location" in capsys.readouterr().err


async def test_a_profile_added_is_served_on_the_wire_in_the_api_and_on_the_dashboard(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    settings = e2e_settings(
        voltaro_settings, unknown_chargers="accept", admin_port=0, data_dir=tmp_path
    )
    voltaro: Voltaro = await nursery.start(start_voltaro, settings, (*PROFILES, DEMO))
    token = (tmp_path / "admin-token").read_text().strip()
    charger = await RawCharger.connect(nursery, ws_url(voltaro, "PLUG-1"))
    assert (await charger.call("BootNotification", BOOT))[0] == 3
    answer = await charger.call("LogStatusNotification", {"status": "Uploaded"})
    assert answer[0] == 3 and logs_heard == [("PLUG-1", "Uploaded")]

    async def answer_the_command() -> None:
        frame = await charger.receive()
        assert frame[0] == 2 and frame[2] == "ClearChargingProfile"
        await charger.send([3, frame[1], {"status": "Unknown"}])

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=voltaro.admin_url or "", headers=headers) as http:
        document = (await http.get("/api/v1/openapi.json")).json()
        path = "/api/v1/charge-points/{chargePointId}/commands/ClearChargingProfile"
        assert "post" in document["paths"][path]
        assert "ClearChargingProfileResponse" in document["components"]["schemas"]
        with voltaro.central.events.subscribe() as events:
            async with trio.open_nursery() as exchange:
                exchange.start_soon(answer_the_command)
                sent = await http.post(
                    "/api/v1/charge-points/PLUG-1/commands/ClearChargingProfile", json={}
                )
            assert sent.status_code == 200 and sent.json() == {"result": {"status": "Unknown"}}
            event = await events.receive()
        assert event == CommandAnswered(
            charge_point_id="PLUG-1",
            action="ClearChargingProfile",
            outcome="result",
            status="Unknown",
        )
        assert answers_kept == [("PLUG-1", {}, {"status": "Unknown"})]
        refused = await http.post(
            "/api/v1/charge-points/PLUG-1/commands/SetChargingProfile", json={}
        )
        assert refused.status_code == 400
        assert "ClearChargingProfile" in refused.json()["detail"]

    async with httpx.AsyncClient(base_url=voltaro.admin_url or "") as browser:
        signed_in = await browser.post("/login", data={"token": token, "next": "/"})
        assert signed_in.status_code == 302
        page = (await browser.get("/charge-points/PLUG-1")).text
        assert 'data-action="ClearChargingProfile"' in page
        assert 'data-action="GetDiagnostics"' in page and 'name="retries"' in page
        assert f"connected to {voltaro.central.instance_id}" in page  # which instance holds it


# ---- the seam's other parts: a task, a listing, charge point facts --------------------------

boots_seen: list[tuple[str, bool, str, dict[str, Any]]] = []
filters_asked: list[dict[str, Any]] = []
PLUGS = [
    {"plugId": 1, "chargePointId": "PLUG-2", "state": "Held", "active": True, "heldUntil": None},
    {"plugId": 2, "chargePointId": "PLUG-3", "state": "Gone", "active": False, "heldUntil": None},
]


async def greet_boots(ctx: ProfileContext) -> None:
    """On each boot of a charger held here, ask it something through ``ctx.send``."""
    with ctx.domain.events.subscribe() as events:
        async for event in events:
            if isinstance(event, Booted) and event.origin is None:
                answer = await ctx.send(event.charge_point_id, "ClearChargingProfile", {"id": 4})
                holds = ctx.holds(event.charge_point_id)
                boots_seen.append((event.charge_point_id, holds, ctx.instance_id, answer))


async def plugs(
    domain: Domain, filters: Mapping[str, Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    filters_asked.append(dict(filters))
    found = [
        plug for plug in PLUGS if all(plug.get(name) == value for name, value in filters.items())
    ]
    return found[offset : offset + limit], len(found)


async def plug_facts(domain: Domain, charge_point_id: str) -> dict[str, Any]:
    return {
        "plugCount": 2,
        "heldPlugs": [{"plugId": 1, "heldUntil": "2030-01-02T03:04:05Z"}],
        CONNECTOR_NOTES: {"1": "held for TAG-7", "4": "a connector not reported yet"},
    }


SEAM = Profile(
    name="Seam",
    inbound={},
    tasks=(greet_boots,),
    listings=(
        Listing(
            "plugs",
            "Plugs",
            (
                Field("chargePointId", "Charge point"),
                Field("state", "State", "select", ("Held", "Gone")),
                Field("active", "Active", "bool"),
                Field("plugId", "Plug", "int"),
            ),
            plugs,
            {
                "type": "object",
                "properties": {
                    "plugId": {"type": "integer", "title": "Plug #"},
                    "chargePointId": {"type": "string"},
                    "state": {"type": "string"},
                    "heldUntil": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        ),
    ),
    charge_point_facts=plug_facts,
    facts_schema={
        "plugCount": {"type": "integer", "title": "Plugs in all"},
        "heldPlugs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "plugId": {"type": "integer"},
                    "heldUntil": {"type": "string", "format": "date-time", "title": "Held until"},
                },
            },
        },
    },
)


async def test_a_profile_s_task_listing_and_facts_are_served(
    nursery: trio.Nursery, voltaro_settings: Settings, aio_loop: Any, tmp_path: Path
) -> None:
    settings = e2e_settings(
        voltaro_settings, unknown_chargers="accept", admin_port=0, data_dir=tmp_path
    )
    voltaro: Voltaro = await nursery.start(start_voltaro, settings, (*PROFILES, DEMO, SEAM))
    token = (tmp_path / "admin-token").read_text().strip()
    charger = await RawCharger.connect(nursery, ws_url(voltaro, "PLUG-2"))
    assert (await charger.call("BootNotification", BOOT))[0] == 3
    asked = await charger.receive()  # the task's command, sent because the charger booted
    assert asked[0] == 2 and asked[2:] == ["ClearChargingProfile", {"id": 4}]
    await charger.send([3, asked[1], {"status": "Accepted"}])
    with trio.fail_after(10):
        while not boots_seen:
            await trio.sleep(0.01)
    instance = voltaro.central.instance_id
    assert boots_seen == [("PLUG-2", True, instance, {"status": "Accepted"})]
    assert (await charger.call("StatusNotification", STATUS))[0] == 3

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=voltaro.admin_url or "", headers=headers) as http:
        listed = await http.get("/api/v1/plugs", params={"active": "true", "state": "Held"})
        assert listed.status_code == 200
        assert listed.json() == {"items": PLUGS[:1], "total": 1, "limit": 100, "offset": 0}
        assert filters_asked[-1] == {"active": True, "state": "Held"}
        paged = (await http.get("/api/v1/plugs", params={"limit": 1, "offset": 1})).json()
        assert paged == {"items": PLUGS[1:], "total": 2, "limit": 1, "offset": 1}
        for bad in ({"active": "maybe"}, {"state": "Lost"}, {"plugId": "x"}, {"colour": "red"}):
            refused = await http.get("/api/v1/plugs", params=bad)
            assert refused.status_code == 400, bad
            assert next(iter(bad)) in refused.json()["detail"]
        assert (await http.get("/api/v1/plugs", headers={"Authorization": ""})).status_code == 401

        document = (await http.get("/api/v1/openapi.json")).json()
        listing = document["paths"]["/api/v1/plugs"]["get"]
        assert listing["operationId"] == "listPlugs"
        assert {p["name"] for p in listing["parameters"]} == {
            "chargePointId",
            "state",
            "active",
            "plugId",
            "limit",
            "offset",
        }
        page_schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
        assert page_schema["properties"]["items"]["items"]["properties"]["plugId"]["title"] == (
            "Plug #"
        )
        detail_schema = document["components"]["schemas"]["ChargePointDetail"]
        assert "plugCount" in detail_schema["allOf"][-1]["properties"]

        detail = (await http.get("/api/v1/charge-points/PLUG-2")).json()
        assert detail["plugCount"] == 2 and detail["heldPlugs"][0]["plugId"] == 1
        assert detail["connectorNotes"] == {
            "1": "held for TAG-7",
            "4": "a connector not reported yet",
        }
        assert detail["connectors"][0]["connectorId"] == 1  # the core's detail is all there

    async with httpx.AsyncClient(base_url=voltaro.admin_url or "") as browser:
        assert (await browser.post("/login", data={"token": token, "next": "/"})).status_code == 302
        page = (await browser.get("/plugs", params={"state": "Gone"})).text
        assert '<a href="/plugs" aria-current="page">Plugs</a>' in page  # in the navigation
        assert '<th scope="col">Plug #</th>' in page and '<th scope="col">Held until</th>' in page
        assert '<a href="/charge-points/PLUG-3">PLUG-3</a>' in page and "PLUG-2</a>" not in page
        assert filters_asked[-1] == {"state": "Gone"}
        refused = await browser.get("/plugs", params={"active": "maybe"})
        assert refused.status_code == 400 and "active" in refused.json()["detail"]
        page = (await browser.get("/charge-points/PLUG-2")).text
        assert "<dt>Plugs in all</dt>" in page and 'data-fact="plugCount">2</dd>' in page
        assert "2030-01-02 03:04:05 UTC" in page  # a date-time column, shown as a time
        assert '<span class="note">held for TAG-7</span>' in page  # in connector 1's row
        assert "Connector 4: a connector not reported yet" in page


async def test_a_failing_task_is_restarted_after_a_back_off(autojump_clock: Any) -> None:
    runs: list[float] = []

    async def flaky(ctx: ProfileContext) -> None:
        runs.append(trio.current_time())
        if len(runs) < 4:
            raise RuntimeError("a bug in a profile")

    context = ProfileContext(domain=None, send=None, holds=bool, instance_id="i")  # type: ignore[arg-type]
    await supervised("Test.flaky", flaky, context)
    assert len(runs) == 4  # three failures, each followed by a restart; then it returned
    waits = [later - earlier for earlier, later in itertools.pairwise(runs)]  # virtual time
    assert waits == sorted(waits) and waits[0] >= FIRST_BACKOFF  # the back-off grows


def test_every_migration_belongs_to_exactly_one_profile() -> None:
    folder = Path(voltaro.store.migrations.__file__).parent
    files = sorted(path.name for path in folder.glob("*.sql"))
    claimed = [name for profile in PROFILES for name in profile.migrations]
    assert sorted(claimed) == files
