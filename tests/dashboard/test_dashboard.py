"""The dashboard in a real headless Chromium: sign in, watch a charger come online live,
operate it (Reset, remote start and stop), see the transaction and its chart, manage id
tags. Screenshots go to ``tests/dashboard/screenshots/`` (kept as CI artifacts)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.admin.conftest import Live, run_sql
from tests.dashboard.charger import ScriptedCharger
from tests.dashboard.conftest import SCREENSHOTS, TIMEOUT, TrioThread, sign_in

CHARGER = "DASH-CP-1"


def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture(scope="module")
def charger(live: Live, chargers: TrioThread) -> ScriptedCharger:
    """The charger, not yet connected (test_charger_appears_live connects it)."""
    return ScriptedCharger(live.ws_url(CHARGER))


def connected(charger: ScriptedCharger, chargers: TrioThread) -> ScriptedCharger:
    if charger.websocket is None:
        chargers.run(charger.start, chargers.nursery)
    return charger


def test_sign_in_session_cookie_and_sign_out(browser: Any, live: Live) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto(live.base + "/transactions")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Ftransactions$"))
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong token.")
    shot(page, "01-login-wrong-token")
    page.get_by_label("Admin token").fill(live.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Transactions")).to_be_visible()

    (cookie,) = [c for c in context.cookies() if c["name"] == "voltaro_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert live.token not in cookie["value"]

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(live.base + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    context.close()


def test_actions_need_the_csrf_token(browser: Any, live: Live) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, live)
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    context.close()
    with httpx.Client(base_url=live.base, cookies=cookies) as client:
        assert client.get("/id-tags").status_code == 200  # the session itself is valid
        refused = client.post("/id-tags", data={"idTag": "CSRF1"})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert "CSRF" in refused.json()["detail"]
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text)
        assert csrf is not None
        cross = client.post(
            "/id-tags",
            data={"idTag": "CSRF1", "csrf": csrf.group(1)},
            headers={"Origin": "http://evil.example"},
        )
        assert cross.status_code == 403
    with httpx.Client(base_url=live.base) as anonymous:
        assert anonymous.get("/events").status_code == 401
        refused = anonymous.post("/id-tags", data={"idTag": "X"})
        assert (refused.status_code, refused.headers["location"]) == (302, "/login?next=%2F")
        asset = anonymous.get("/static/dashboard.css")
        assert asset.status_code == 200
        assert "max-age=604800" in asset.headers["cache-control"]


def test_charger_appears_and_goes_online_live(
    page: Any, live: Live, charger: ScriptedCharger, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    page.goto(live.base + "/charge-points")
    expect(page.get_by_text("No charge points yet")).to_be_visible()
    expect(page.locator("#live-state")).to_have_text("live")
    page.evaluate("window.notReloaded = true")

    connected(charger, chargers)

    row = page.locator(f'tr[data-cp="{CHARGER}"]')
    expect(row.locator(".badge.online")).to_have_text("online")
    expect(row.locator(".badge.s-available")).to_have_count(2)  # connectors 1 and 2
    expect(row).to_contain_text("Dashboard Tester")
    expect(row).to_contain_text("1.2.3")
    assert page.evaluate("window.notReloaded") is True  # updated live, not reloaded
    shot(page, "02-charge-points-live")

    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#feed")).to_contain_text(f"{CHARGER}booted: Voltaro Dashboard Tester")
    expect(page.locator("#stats")).to_contain_text("1online")
    shot(page, "03-overview")


def test_detail_page_reset_shows_the_chargers_answer(
    page: Any, live: Live, charger: ScriptedCharger, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    connected(charger, chargers)
    page.goto(live.base + "/charge-points")
    page.get_by_role("link", name=CHARGER).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(CHARGER)
    expect(page.locator("#connectors")).to_contain_text("Available")

    reset = page.locator('form[data-action="Reset"]')
    reset.get_by_label("Type").select_option("Hard")
    page.once("dialog", lambda dialog: dialog.accept())  # Reset asks first
    reset.get_by_role("button", name="Send Reset").click()
    expect(reset.locator("output.answer")).to_contain_text("Answer: Accepted")
    assert "Reset" in charger.received

    config = page.locator('form[data-action="GetConfiguration"]')
    config.get_by_role("button").click()
    expect(config.locator("output.answer")).to_contain_text("MeterValueSampleInterval")
    expect(page.locator("#configuration")).to_contain_text("HeartbeatInterval")
    page.get_by_role("button", name="Change HeartbeatInterval").click()
    change = page.locator('form[data-action="ChangeConfiguration"]')
    expect(change.get_by_label("Key")).to_have_value("HeartbeatInterval")
    change.get_by_label("Value").fill("120")
    change.get_by_role("button").click()
    expect(change.locator("output.answer")).to_contain_text("Answer: Accepted")
    expect(page.locator("#configuration tr").filter(has_text="HeartbeatInterval")).to_contain_text(
        "120"
    )

    stop = page.locator('form[data-action="RemoteStopTransaction"]').first
    stop.get_by_label("Transaction id").fill("999")
    page.once("dialog", lambda dialog: dialog.accept())
    stop.get_by_role("button").click()
    expect(stop.locator("output.answer")).to_contain_text("Answer: Rejected")
    expect(page.locator("#recent-messages")).to_contain_text("RemoteStopTransaction")
    shot(page, "04-charge-point-detail")


def test_trigger_and_reserve_answers_show_under_their_buttons(
    page: Any, live: Live, charger: ScriptedCharger, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    connected(charger, chargers)
    page.goto(live.base + f"/charge-points/{CHARGER}")
    trigger = page.locator('form[data-action="TriggerMessage"]')
    trigger.get_by_label("Message").select_option("MeterValues")
    trigger.get_by_role("button").click()
    answer = trigger.locator("output.answer")
    expect(answer).to_contain_text("Answer: NotImplemented")
    expect(answer).to_have_class(re.compile(r"\bbad\b"))  # shown as a refusal
    trigger.get_by_label("Message").select_option("Heartbeat")
    trigger.get_by_role("button").click()
    expect(answer).to_contain_text("Answer: Accepted")
    expect(answer).to_have_class(re.compile(r"\bok\b"))

    reserve = page.locator('form[data-action="ReserveNow"]')
    reserve.get_by_label("Id tag", exact=True).fill("DASH-RES")
    reserve.get_by_label("Expires (e.g. 2030-01-31T18:00:00Z)").fill("2030-01-31T18:00:00Z")
    reserve.get_by_role("button").click()
    expect(reserve.locator("output.answer")).to_contain_text(
        re.compile(r"Answer: Accepted \(sent with reservationId \d+\)")
    )
    expect(page.locator("#profile-facts")).to_contain_text("DASH-RES")
    expect(page.locator("#connectors")).to_contain_text("reserved for DASH-RES")
    shot(page, "04b-charge-point-reserved")

    page.get_by_role("navigation").get_by_role("link", name="Reservations").click()
    page.get_by_label("Holding a connector now").select_option("yes")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("table", name="Reservations").locator("tbody tr").first
    expect(row).to_contain_text("DASH-RES")
    expect(row).to_contain_text("Requested · ")  # its history
    shot(page, "04c-reservations")


def test_id_tags_add_and_block(page: Any, live: Live) -> None:
    from playwright.sync_api import expect

    page.goto(live.base + "/id-tags")
    form = page.locator("#add-id-tag")
    form.get_by_label("Id tag", exact=True).fill("DASH-TAG-1")
    form.get_by_label("Expires (UTC, optional)").fill("2030-01-31T12:00")
    form.get_by_role("button", name="Save").click()
    row = page.locator('tr[data-id-tag="DASH-TAG-1"]')
    expect(row.locator(".badge")).to_have_text("Accepted")
    expect(row).to_contain_text("2030-01-31 12:00:00 UTC")

    form.get_by_label("Id tag", exact=True).fill("DASH-TAG-2")
    form.get_by_role("button", name="Save").click()
    row2 = page.locator('tr[data-id-tag="DASH-TAG-2"]')
    row2.get_by_role("button", name="Block DASH-TAG-2").click()
    expect(row2.locator(".badge")).to_have_text("Blocked")
    with live.client() as api:
        assert api.get("/api/v1/id-tags/DASH-TAG-2").json()["status"] == "Blocked"
    shot(page, "05-id-tags")

    row2.get_by_role("button", name="Expire DASH-TAG-2").click()
    expect(row2.locator(".badge")).to_have_text("Expired")
    page.once("dialog", lambda dialog: dialog.accept())
    row2.get_by_role("button", name="Delete DASH-TAG-2").click()
    expect(row2).to_have_count(0)


def test_remote_start_and_stop_show_the_transaction_and_its_chart(
    page: Any, live: Live, charger: ScriptedCharger, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    connected(charger, chargers)
    with live.client() as api:
        api.put("/api/v1/id-tags/DASH-TAG-1", json={"status": "Accepted"}).raise_for_status()
    page.goto(f"{live.base}/charge-points/{CHARGER}")
    start = page.locator('form[data-action="RemoteStartTransaction"]')
    start.get_by_label("Id tag").fill("DASH-TAG-1")
    start.get_by_label("Connector").fill("1")
    start.get_by_role("button").click()
    expect(start.locator("output.answer")).to_contain_text("Answer: Accepted")

    connectors = page.locator("#connectors")
    expect(connectors.locator('tr[data-connector="1"]')).to_contain_text("Charging")
    stop_button = connectors.get_by_role("button", name=re.compile(r"^Stop #\d+$"))
    expect(stop_button).to_be_visible()
    transaction_id = int(stop_button.inner_text().removeprefix("Stop #"))
    page.wait_for_function(  # the running energy, from the MeterValues, shown live
        """() => {
            const m = /([0-9.]+) kWh/.exec(document.querySelector('#connectors').innerText);
            return m !== null && parseFloat(m[1]) >= 0.05;
        }"""
    )
    shot(page, "06-charging")

    page.once("dialog", lambda dialog: dialog.accept())
    stop_button.click()
    expect(connectors.locator('tr[data-connector="1"]')).to_contain_text("Available")
    expect(connectors).to_contain_text("None.")

    page.get_by_role("link", name="Transactions", exact=True).click()
    row = page.locator(f'tr[data-transaction="{transaction_id}"]')
    expect(row).to_contain_text("DASH-TAG-1")
    expect(row).to_contain_text("Remote")
    csv = page.get_by_role("link", name="Download CSV")
    assert csv.get_attribute("href") == "/transactions.csv"
    with page.expect_download() as download:
        csv.click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.startswith("transactionId,chargePointId")
    assert f"{transaction_id},{CHARGER},1,DASH-TAG-1" in text
    shot(page, "07-transactions")

    row.get_by_role("link", name=f"#{transaction_id}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"#{transaction_id}")
    energy = page.locator("svg.chart.energy")
    expect(energy).to_be_visible()
    assert energy.locator("circle.dot").count() >= 3
    expect(energy.locator("polyline.line")).to_have_count(1)
    expect(page.locator("svg.chart.power polyline.line")).to_have_count(1)
    shot(page, "08-transaction-chart")


def test_message_log_and_phone_width(browser: Any, live: Live, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live.base}/charge-points/{CHARGER}/messages")
    page.get_by_label("Action").fill("RemoteStartTransaction")
    page.get_by_label("Direction").select_option("out")
    page.get_by_role("button", name="Filter").click()
    table = page.locator("#message-log")
    expect(table).to_contain_text("1 message, newest first")  # the CALL (its answer is "in")
    expect(table).not_to_contain_text("StatusNotification")
    table.locator("summary").last.click()
    expect(table.locator("pre").last).to_contain_text('"idTag": "DASH-TAG-1"')
    shot(page, "09-message-log")

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.add_cookies(page.context.cookies())
    small = phone.new_page()
    small.goto(f"{live.base}/charge-points/{CHARGER}")
    expect(small.get_by_role("button", name="Send Reset")).to_be_visible()
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"
    shot(small, "10-phone-detail", full_page=False)
    small.goto(f"{live.base}/charge-points")
    expect(small.locator(f'tr[data-cp="{CHARGER}"] .badge.online')).to_be_visible()
    shot(small, "11-phone-charge-points", full_page=False)
    phone.close()


def test_a_pending_charger_is_accepted_from_the_list(page: Any, live: Live) -> None:
    from playwright.sync_api import expect

    with live.client() as api:
        created = api.put(
            "/api/v1/charge-points/DASH-PENDING", json={"registrationStatus": "Pending"}
        )
        assert created.status_code == 201
    page.goto(live.base + "/charge-points?registrationStatus=Pending")
    row = page.locator('tr[data-cp="DASH-PENDING"]')
    expect(row.locator(".badge.r-pending")).to_have_text("Pending")
    row.get_by_role("button", name="Accept DASH-PENDING").click()
    expect(page.get_by_role("status").filter(has_text="registration Accepted")).to_be_visible()
    expect(row).to_have_count(0)  # back on the filtered list: no longer pending
    with live.client() as api:
        detail = api.get("/api/v1/charge-points/DASH-PENDING").json()
        assert detail["registrationStatus"] == "Accepted"


def test_event_stream_without_a_browser(live: Live, chargers: TrioThread) -> None:
    """``/events`` itself (runs without Chromium too): a charger's connect, boot and status
    changes arrive as server-sent events."""
    with httpx.Client(base_url=live.base, timeout=10) as client:
        signed_in = client.post("/login", data={"token": live.token, "next": "/id-tags"})
        assert signed_in.status_code == 302
        assert signed_in.headers["location"] == "/id-tags"
        with client.stream("GET", "/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == "retry: 1000"  # subscribed from here on
            sse_charger = ScriptedCharger(live.ws_url("DASH-SSE"))
            chargers.run(sse_charger.start, chargers.nursery)
            seen: list[tuple[str, Any]] = []
            for line in lines:
                if not line.startswith("data: "):
                    continue
                event = orjson.loads(line.removeprefix("data: "))
                if event["chargePointId"] == "DASH-SSE":
                    seen.append((event["type"], event.get("connectorId")))
                if ("status", 2) in seen:
                    break
    assert seen == [
        ("connected", None),
        ("boot", None),
        ("status", 0),
        ("status", 1),
        ("status", 2),
    ]


def test_a_charger_going_offline_shows_live(
    page: Any, live: Live, charger: ScriptedCharger, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    connected(charger, chargers)
    page.goto(live.base + "/")
    page.evaluate("window.notReloaded = true")
    chargers.run(charger.close)
    expect(page.locator("#feed li").first).to_contain_text(f"{CHARGER}disconnected")
    page.get_by_role("link", name="Charge points").click()
    row = page.locator(f'tr[data-cp="{CHARGER}"]')
    expect(row.locator(".badge.offline")).to_have_text("offline")
    expect(row.locator(".badge.stale").first).to_be_visible()  # last known states, faded
    shot(page, "12-offline")


def test_a_charger_recorded_offline_while_connected_comes_back_live(
    page: Any, live: Live, chargers: TrioThread
) -> None:
    """Something marked a connected charger offline (SQL by hand, here); its next message
    puts it back online, and the list shows it without a reload (the ``online`` event)."""
    from playwright.sync_api import expect

    back = ScriptedCharger(live.ws_url("DASH-BACK"))
    chargers.run(back.start, chargers.nursery)
    presence = live.voltaro.central.presence
    deadline = time.monotonic() + 30
    while "DASH-BACK" in presence._heard:  # a restore round since it booted: it is not heard
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run_sql(live, "UPDATE charge_points SET online = false WHERE id = 'DASH-BACK'")
    page.goto(live.base + "/charge-points")
    expect(page.locator("#live-state")).to_have_text("live")
    page.evaluate("window.notReloaded = true")
    row = page.locator('tr[data-cp="DASH-BACK"]')
    expect(row.locator(".badge.offline")).to_have_text("offline")
    chargers.run(back.call, "Heartbeat", {})  # heard: the next round (every 5 s) puts it online
    expect(row.locator(".badge.online")).to_have_text("online", timeout=TIMEOUT)
    assert page.evaluate("window.notReloaded") is True
    chargers.run(back.close)
