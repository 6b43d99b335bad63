"""What a new operator's pass over the dashboard found (issue 18): a charger accepted while
it was Pending is offered a BootNotification at once; the overview's feed opens without
meter values, its times saying their date; a favicon; a charger's pages stream only its
events."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import trio

from tests.admin.conftest import Live
from tests.dashboard.charger import ScriptedCharger
from tests.dashboard.conftest import TrioThread, connector_events
from tests.dashboard.test_dashboard import shot

RECORD = "() => { window.notReloaded = true; }"


class PendingAtBoot(ScriptedCharger):
    """A charger that booted while it was Pending: it reports no connectors until a
    BootNotification of its is answered Accepted (a triggered one, here)."""

    async def connect(self, nursery: trio.Nursery) -> None:
        from trio_websocket import connect_websocket_url

        self.websocket = await connect_websocket_url(nursery, self.url, subprotocols=["ocpp1.6"])
        nursery.start_soon(self._reader, nursery)
        await self.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})

    async def _answer(self, nursery: trio.Nursery, frame: list[Any]) -> None:
        _, message_id, action, payload = frame
        if action == "TriggerMessage" and payload["requestedMessage"] == "BootNotification":
            assert self.websocket is not None
            self.received.append(action)
            answer = [3, message_id, {"status": "Accepted"}]
            await self.websocket.send_message(orjson.dumps(answer).decode())
            nursery.start_soon(self._boot_and_report)
        else:
            await super()._answer(nursery, frame)

    async def _boot_and_report(self) -> None:
        answer = await self.call(
            "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
        )
        if answer["status"] == "Accepted":
            for connector in (0, 1):
                await self.status(connector, "Available")


def test_an_accepted_charger_without_connectors_is_offered_a_boot(
    page: Any, live: Live, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    charger = PendingAtBoot(live.ws_url("PASS-HINT"))
    chargers.run(charger.connect, chargers.nursery)
    page.goto(live.base + "/charge-points/PASS-HINT")
    expect(page.locator("#connectors")).to_contain_text("No status reported yet")
    hint = page.get_by_role("form", name="Ask for a BootNotification")
    expect(hint).to_contain_text("No connectors reported yet")
    expect(page.locator("#live-state")).to_have_text("live")
    hint.get_by_role("button", name="Ask for a BootNotification now").click()
    expect(hint.locator("output")).to_contain_text("Answer: Accepted")
    expect(page.locator('#connectors tr[data-connector="1"]')).to_contain_text("Available")
    assert charger.received == ["TriggerMessage"]
    shot(page, "20-boot-asked-for")
    page.reload()
    expect(page.get_by_role("form", name="Ask for a BootNotification")).to_have_count(0)
    chargers.run(charger.close)


def test_the_feed_opens_without_meter_values_and_dates_its_times(
    page: Any, live: Live, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    charger = ScriptedCharger(live.ws_url("PASS-FEED"))
    chargers.run(charger.start, chargers.nursery)
    answer = chargers.run(
        charger.call,
        "StartTransaction",
        {"connectorId": 1, "idTag": "FEED", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"},
    )
    meter = {
        "connectorId": 1,
        "transactionId": answer["transactionId"],
        "meterValue": [{"timestamp": "2026-01-01T00:01:00Z", "sampledValue": [{"value": "5"}]}],
    }
    for _ in range(60):  # more than the feed holds
        chargers.run(charger.call, "MeterValues", meter)
    chargers.run(charger.close)

    page.goto(live.base + "/")
    feed = page.locator("#feed li")
    expect(feed.first).to_contain_text("PASS-FEED")
    expect(page.locator("#feed li.ev-meterValues")).to_have_count(0)
    expect(page.locator("#feed")).to_contain_text("transaction #")  # what came before them
    time = feed.first.locator("time")
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2} UTC", time.inner_text())  # today's: the time
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", time.get_attribute("title"))
    shown = page.evaluate("() => [...document.querySelectorAll('#feed time')].map(t => t.title)")
    assert shown and all(title.endswith(" UTC") for title in shown)


def test_a_favicon_is_served(live: Live) -> None:
    with httpx.Client(base_url=live.base, timeout=10, follow_redirects=True) as client:
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.text.startswith("<svg")
        login = client.get("/login").text
        assert re.search(r'<link rel="icon" type="image/svg\+xml" href="/static/favicon.svg', login)
        assert '<link rel="icon"' in client.get("/api/docs").text


def test_a_chargers_stream_carries_only_its_events(live: Live, chargers: TrioThread) -> None:
    """``/events?chargePointId=`` (a charger's pages) leaves out the rest of the fleet."""
    with httpx.Client(base_url=live.base, timeout=10) as client:
        assert client.post("/login", data={"token": live.token}).status_code == 302
        params = {"types": "status", "chargePointId": "PASS-MINE"}
        with client.stream("GET", "/events", params=params) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 1000"
            other = ScriptedCharger(live.ws_url("PASS-OTHER"))
            chargers.run(other.start, chargers.nursery)  # its statuses first
            mine = ScriptedCharger(live.ws_url("PASS-MINE"))
            chargers.run(mine.start, chargers.nursery)
            seen = connector_events(lines, 3)
    chargers.run(other.close)
    chargers.run(mine.close)
    assert seen == [("status", "PASS-MINE", n) for n in (0, 1, 2)]


def test_a_live_region_updates_with_the_focus_in_it_and_keeps_a_payload_open(
    page: Any, live: Live, chargers: TrioThread
) -> None:
    """The charge point's recent messages: the operator opened a payload (the focus on its
    summary); the charger's next message still shows, the payload stays open and the focus
    where it was."""
    from playwright.sync_api import expect

    charger = ScriptedCharger(live.ws_url("PASS-FOCUS"))
    chargers.run(charger.start, chargers.nursery)
    recent = page.locator("#recent-messages")
    page.goto(live.base + "/charge-points/PASS-FOCUS")
    for _ in range(50):  # the boot's frames are written with the writer's next batch
        if recent.locator("tr[data-message]").count() >= 8:
            break
        page.wait_for_timeout(100)
        page.reload()
    expect(page.locator("#live-state")).to_have_text("live")
    opened = recent.locator("tr[data-message]").first
    message = opened.get_attribute("data-message")
    opened.locator("summary").click()
    page.evaluate(RECORD)

    chargers.run(charger.call, "DataTransfer", {"vendorId": "focus.example"})
    chargers.run(charger.status, 2, "Unavailable")
    expect(recent).to_contain_text("focus.example")  # updated with the focus inside
    row = recent.locator(f'tr[data-message="{message}"]')
    expect(row.locator("details")).to_have_attribute("open", "")
    focused = page.evaluate(
        "() => document.activeElement.closest('tr[data-message]')?.dataset.message"
    )
    assert focused == message
    assert page.evaluate("window.notReloaded") is True
    chargers.run(charger.close)
