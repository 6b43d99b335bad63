"""Feature profiles are plug-ins: a profile declared in a test module, and nothing else
changed, is served whole: its charger-initiated message is handled, its command is in the
API (route and OpenAPI variant), on the dashboard and in ``voltaro command``, and the
command's effect is applied to the answer before the operator sees it."""

from __future__ import annotations

import argparse
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
from voltaro.central.domain_events import CommandAnswered
from voltaro.central.profile import Command, Field, Profile
from voltaro.central.profiles import PROFILES
from voltaro.cli_command import add_command_command
from voltaro.config import Settings
from voltaro.store.testing import aio_loop, database_url, pg_server, voltaro_settings

__all__ = ["aio_loop", "database_url", "pg_server", "voltaro_settings"]

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt 1"}

versions_kept: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
diagnostics_heard: list[tuple[str, str]] = []


async def keep_list_version(
    domain: Domain, charge_point_id: str, request: dict[str, Any], result: dict[str, Any]
) -> None:
    versions_kept.append((charge_point_id, request, result))


async def diagnostics_status(charger: Charger, payload: dict[str, Any]) -> dict[str, Any]:
    diagnostics_heard.append((charger.id, payload["status"]))
    return {}


DEMO = Profile(
    name="Demo",
    inbound={"DiagnosticsStatusNotification": diagnostics_status},
    accepted_only=frozenset({"DiagnosticsStatusNotification"}),
    commands=(
        Command(
            "GetLocalListVersion",
            "Ask the charger for its local list version",
            effect=keep_list_version,
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
    assert catalog.actions[-2:] == ("GetLocalListVersion", "GetDiagnostics")
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
    answer = await charger.call("DiagnosticsStatusNotification", {"status": "Uploaded"})
    assert answer[0] == 3 and diagnostics_heard == [("PLUG-1", "Uploaded")]

    async def answer_the_command() -> None:
        frame = await charger.receive()
        assert frame[0] == 2 and frame[2] == "GetLocalListVersion"
        await charger.send([3, frame[1], {"listVersion": 7}])

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=voltaro.admin_url or "", headers=headers) as http:
        document = (await http.get("/api/v1/openapi.json")).json()
        path = "/api/v1/charge-points/{chargePointId}/commands/GetLocalListVersion"
        assert "post" in document["paths"][path]
        assert "GetLocalListVersionResponse" in document["components"]["schemas"]
        with voltaro.central.events.subscribe() as events:
            async with trio.open_nursery() as exchange:
                exchange.start_soon(answer_the_command)
                sent = await http.post(
                    "/api/v1/charge-points/PLUG-1/commands/GetLocalListVersion", json={}
                )
            assert sent.status_code == 200 and sent.json() == {"result": {"listVersion": 7}}
            event = await events.receive()
        assert event == CommandAnswered(
            charge_point_id="PLUG-1", action="GetLocalListVersion", outcome="result"
        )
        assert versions_kept == [("PLUG-1", {}, {"listVersion": 7})]
        refused = await http.post("/api/v1/charge-points/PLUG-1/commands/ReserveNow", json={})
        assert refused.status_code == 400
        assert "GetLocalListVersion" in refused.json()["detail"]

    async with httpx.AsyncClient(base_url=voltaro.admin_url or "") as browser:
        signed_in = await browser.post("/login", data={"token": token, "next": "/"})
        assert signed_in.status_code == 302
        page = (await browser.get("/charge-points/PLUG-1")).text
        assert 'data-action="GetLocalListVersion"' in page
        assert 'data-action="GetDiagnostics"' in page and 'name="retries"' in page
        assert f"connected to {voltaro.central.instance_id}" in page  # which instance holds it


def test_every_migration_belongs_to_exactly_one_profile() -> None:
    folder = Path(voltaro.store.migrations.__file__).parent
    files = sorted(path.name for path in folder.glob("*.sql"))
    claimed = [name for profile in PROFILES for name in profile.migrations]
    assert sorted(claimed) == files
