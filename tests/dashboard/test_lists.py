"""The dashboard's list pages in a real Chromium: paging, sortable headers, search and date
filters as URL parameters; live updates that fetch only the rows shown; the refused id tags
with their Add button."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.admin.conftest import Live
from tests.dashboard.charger import ScriptedCharger
from tests.dashboard.conftest import TrioThread, connector_events
from tests.dashboard.test_dashboard import shot

FLEET = [f"ROW-{n:02d}" for n in range(30)]  # more than a page of 25

RECORD_FETCHES = """() => {
    window.fetched = [];
    const original = window.fetch;
    window.fetch = function (url, options) {
        window.fetched.push(String(url));
        return original(url, options);
    };
    window.notReloaded = true;
}"""


@pytest.fixture(scope="module")
def fleet(live: Live) -> list[str]:
    with live.client() as api:
        for charge_point_id in FLEET:
            assert api.put(f"/api/v1/charge-points/{charge_point_id}", json={}).is_success
    return FLEET


def row_ids(page: Any, attribute: str) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        f"tbody tr[{attribute}]", f"rows => rows.map(r => r.getAttribute('{attribute}'))"
    )
    return ids


def test_an_event_updates_only_the_row_shown(
    page: Any, live: Live, fleet: list[str], chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    page.goto(live.base + "/charge-points?q=row-&limit=25")
    assert row_ids(page, "data-cp") == FLEET[:25]  # a full page: sorted by id, in the URL
    expect(page.locator("nav.pager")).to_contain_text("1\u201325 of 30 charge points")
    expect(page.locator("#live-state")).to_have_text("live")
    page.evaluate(RECORD_FETCHES)

    shown = ScriptedCharger(live.ws_url(FLEET[0]))
    chargers.run(shown.start, chargers.nursery)
    row = page.locator(f'tr[data-cp="{FLEET[0]}"]')
    expect(row.locator(".badge.online")).to_have_text("online")
    expect(row).to_contain_text("Dashboard Tester")

    hidden = ScriptedCharger(live.ws_url(FLEET[-1]))  # on page 2: not shown
    chargers.run(hidden.start, chargers.nursery)
    # An event for the shown row after the hidden charger's: once it is on the page, the
    # page has had (and ignored) every event of the hidden one.
    chargers.run(shown.status, 1, "Unavailable")
    expect(row.locator(".badge.s-unavailable")).to_have_count(1)

    fetched: list[str] = page.evaluate("window.fetched")
    assert fetched, "the shown row was not fetched"
    assert all(url.startswith(f"/charge-points/{FLEET[0]}/row?") for url in fetched), fetched
    assert page.evaluate("window.notReloaded") is True  # no full reload either
    assert row_ids(page, "data-cp") == FLEET[:25]
    chargers.run(shown.close)
    chargers.run(hidden.close)


def test_sort_search_and_pages_are_url_parameters(page: Any, live: Live, fleet: list[str]) -> None:
    from playwright.sync_api import expect

    page.goto(live.base + "/charge-points")
    page.get_by_label("Search").fill("row-2")
    page.get_by_role("button", name="Filter").click()
    assert row_ids(page, "data-cp") == [f"ROW-2{n}" for n in range(10)]
    assert "q=row-2" in page.url

    # sorted by id already: the header's link turns it round
    page.get_by_role("link", name="Charge point", exact=True).click()
    expect(page.locator('th[aria-sort="descending"]')).to_contain_text("Charge point")
    assert row_ids(page, "data-cp") == [f"ROW-2{n}" for n in reversed(range(10))]
    assert "order=desc" in page.url and "q=row-2" in page.url

    page.goto(live.base + "/charge-points?q=row-&limit=25")
    page.get_by_role("link", name="next \u203a").click()
    assert row_ids(page, "data-cp") == FLEET[25:]
    assert "page=1" in page.url
    expect(page.locator("nav.pager")).to_contain_text("26\u201330 of 30")
    shot(page, "13-charge-points-page-2")

    refused = httpx.get(live.base + "/charge-points?sort=password", follow_redirects=False)
    assert refused.status_code == 302  # not signed in: to the sign-in page
    bad = page.request.get(live.base + "/charge-points?sort=password")
    assert bad.status == 400
    assert "chargePointId" in bad.text()


def test_transactions_newest_first_with_date_filters(
    page: Any, live: Live, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    charger = ScriptedCharger(live.ws_url("ROW-TX"))
    chargers.run(charger.start, chargers.nursery)
    started = []
    for timestamp in ("2026-03-01T10:00:00Z", "2026-03-02T10:00:00Z", "2026-03-03T10:00:00Z"):
        answer = chargers.run(
            charger.call,
            "StartTransaction",
            {"connectorId": 1, "idTag": "ROWTAG", "meterStart": 0, "timestamp": timestamp},
        )
        started.append(str(answer["transactionId"]))
    chargers.run(charger.close)

    page.goto(live.base + "/transactions")
    assert row_ids(page, "data-transaction")[:3] == started[::-1]  # newest first
    page.get_by_label("Started from (UTC)").fill("2026-03-02T00:00")
    page.get_by_label("to", exact=True).fill("2026-03-03T00:00")
    page.get_by_role("button", name="Filter").click()
    assert row_ids(page, "data-transaction") == [started[1]]
    expect(page.get_by_label("Started from (UTC)")).to_have_value("2026-03-02T00:00")

    page.goto(live.base + "/transactions?q=row-t&sort=startTimestamp&order=asc")
    assert row_ids(page, "data-transaction") == started


def test_refused_id_tags_listed_with_an_add_button(
    page: Any, live: Live, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    charger = ScriptedCharger(live.ws_url("ROW-AUTH"))
    chargers.run(charger.start, chargers.nursery)
    answer = chargers.run(charger.call, "Authorize", {"idTag": "WHO-ARE-YOU"})
    assert answer["idTagInfo"]["status"] == "Invalid"
    chargers.run(charger.close)

    page.goto(live.base + "/id-tags")
    refused = page.locator('tr[data-refused-tag="WHO-ARE-YOU"]')
    for _ in range(50):  # posted with the writer's next batch
        if refused.count():
            break
        page.wait_for_timeout(100)
        page.reload()
    expect(refused).to_contain_text("unknown")
    expect(refused).to_contain_text("ROW-AUTH")
    refused.get_by_role("link", name="Add WHO-ARE-YOU").click()
    expect(page.get_by_label("Id tag", exact=True)).to_have_value("WHO-ARE-YOU")
    page.get_by_role("button", name="Save").click()
    expect(refused.locator(".badge")).to_contain_text(["unknown", "Accepted"])
    shot(page, "14-refused-id-tags")

    page.goto(live.base + "/messages?q=row-auth&action=Authorize")
    expect(page.locator("#message-log")).to_contain_text("2 messages, newest first")
    expect(page.locator("#message-log tbody tr").first).to_contain_text("ROW-AUTH")


def test_the_event_stream_keeps_only_the_kinds_asked_for(live: Live, chargers: TrioThread) -> None:
    """A list page's stream (``/events?types=...``) carries only the kinds it asked for."""
    with httpx.Client(base_url=live.base, timeout=10) as client:
        assert client.post("/login", data={"token": live.token}).status_code == 302
        with client.stream("GET", "/events", params={"types": "status"}) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 1000"
            charger = ScriptedCharger(live.ws_url("ROW-SSE"))
            chargers.run(charger.start, chargers.nursery)  # connected, boot, 3 x status
            seen = connector_events(lines, 3)
    chargers.run(charger.close)
    assert seen == [("status", "ROW-SSE", n) for n in (0, 1, 2)]


def test_a_full_page_of_the_newest_says_there_is_newer(
    page: Any, live: Live, chargers: TrioThread
) -> None:
    from playwright.sync_api import expect

    charger = ScriptedCharger(live.ws_url("ROW-NEWS"))
    chargers.run(charger.start, chargers.nursery)

    def start(n: int) -> str:
        payload = {
            "connectorId": 1,
            "idTag": "NEWS",
            "meterStart": n,
            "timestamp": f"2026-04-01T10:{n:02d}:00Z",
        }
        return str(chargers.run(charger.call, "StartTransaction", payload)["transactionId"])

    started = [start(n) for n in range(26)]
    page.goto(live.base + "/transactions?limit=25")
    assert row_ids(page, "data-transaction") == started[::-1][:25]
    expect(page.locator("#live-state")).to_have_text("live")
    page.evaluate(RECORD_FETCHES)
    news = page.locator("#list-news")
    expect(news).to_be_hidden()

    newest = start(30)
    expect(news).to_be_visible()  # told, not reshuffled
    assert newest not in row_ids(page, "data-transaction")
    fetched: list[str] = page.evaluate("window.fetched")
    # at most the shown active rows' energies (every 10 s), never the page or the new row
    assert all(url.startswith("/transactions/rows?ids=") for url in fetched), fetched
    assert not any(
        newest in url.removeprefix("/transactions/rows?ids=").split(",") for url in fetched
    )
    news.get_by_role("link").click()
    assert row_ids(page, "data-transaction")[0] == newest

    with httpx.Client(base_url=live.base, timeout=10) as client:
        assert client.post("/login", data={"token": live.token}).status_code == 302
        rows = client.get("/transactions/rows", params={"ids": f"{started[0]},{newest}"})
        assert rows.status_code == 200
        assert rows.text.count("<tr ") == 2 and rows.text.count('data-active="1"') == 2
        chargers.run(
            charger.call,
            "StopTransaction",
            {"transactionId": int(newest), "meterStop": 99, "timestamp": "2026-04-01T11:00:00Z"},
        )
        stopped = client.get("/transactions/rows", params={"ids": newest})
        assert 'data-active="1"' not in stopped.text and "Local" in stopped.text  # stopped
        assert client.get("/charge-points/NOBODY-HERE/row").status_code == 404
        cp_row = client.get("/charge-points/ROW-NEWS/row", params={"back": "//evil.example/"})
        assert 'data-cp="ROW-NEWS"' in cp_row.text and "evil.example" not in cp_row.text
        for bad in ("", "x", "1,,-2", ",".join(["1"] * 201), str(2**31)):
            assert client.get("/transactions/rows", params={"ids": bad}).status_code == 400
    chargers.run(charger.close)


def test_id_tags_filtered_by_expiry_dates_kept_in_the_url(page: Any, live: Live) -> None:
    from playwright.sync_api import expect

    with live.client() as api:
        for tag, expiry in (
            ("EXP-2027", "2027-06-01T00:00:00Z"),
            ("EXP-2028", "2028-06-01T00:00:00Z"),
        ):
            assert api.put(f"/api/v1/id-tags/{tag}", json={"expiryDate": expiry}).is_success
        assert api.put("/api/v1/id-tags/EXP-NEVER", json={}).is_success

    page.goto(live.base + "/id-tags?q=exp-")
    assert row_ids(page, "data-id-tag") == ["EXP-2027", "EXP-2028", "EXP-NEVER"]
    filters = page.get_by_role("search").first
    filters.get_by_label("Date").select_option(label="Expires")
    filters.get_by_label("from (UTC)").fill("2027-01-01T00:00")
    filters.get_by_label("to", exact=True).fill("2028-01-01T00:00")
    filters.get_by_role("button", name="Filter").click()
    assert row_ids(page, "data-id-tag") == ["EXP-2027"]
    assert "dateField=expiryDate" in page.url and "from=2027-01-01T00" in page.url

    page.reload()  # the view is the URL: the same rows, the inputs as they were
    assert row_ids(page, "data-id-tag") == ["EXP-2027"]
    expect(filters.get_by_label("from (UTC)")).to_have_value("2027-01-01T00:00")
    expect(filters.get_by_label("to", exact=True)).to_have_value("2028-01-01T00:00")
    shot(page, "15-id-tags-by-expiry")

    # registered after the tags: none of them; a link with a zone shows in the inputs as UTC
    page.goto(live.base + "/id-tags?q=exp-&dateField=createdAt&from=2999-01-01T01:30:00%2B01:00")
    assert row_ids(page, "data-id-tag") == []
    expect(page.locator("table[aria-label='Id tags'] tbody")).to_contain_text("match the filter")
    expect(filters.get_by_label("Date")).to_have_value("createdAt")
    expect(filters.get_by_label("from (UTC)")).to_have_value("2999-01-01T00:30")
    bad = page.request.get(live.base + "/id-tags?from=soon")
    assert bad.status == 400 and "is not a date-time" in bad.text()


def test_a_chargers_message_log_shows_new_frames_without_a_reload(
    page: Any, live: Live, chargers: TrioThread
) -> None:
    """The first page of a charger's message log gets the frames logged since its newest
    row, put on top: no reload (a marker on ``window`` survives), the rows shown stay as
    they are (an expanded payload stays open), and only that charger's events come."""
    from playwright.sync_api import expect

    charger = ScriptedCharger(live.ws_url("ROW-LOG"))
    chargers.run(charger.start, chargers.nursery)  # boot, three statuses: logged
    other = ScriptedCharger(live.ws_url("ROW-LOG-OTHER"))
    log = page.locator("table.messages tbody")
    page.goto(live.base + "/charge-points/ROW-LOG/messages?limit=100")
    for _ in range(50):  # the boot's frames are written with the writer's next batch
        if log.locator("tr[data-message]").count() >= 8:
            break
        page.wait_for_timeout(100)
        page.reload()
    expect(page.locator("#live-state")).to_have_text("live")
    shown_before = log.locator("tr[data-message]").count()
    oldest = log.locator("tr[data-message]").last
    oldest.locator("summary").click()  # the operator reads a payload
    expect(oldest.locator("details")).to_have_attribute("open", "")
    page.evaluate(RECORD_FETCHES)

    chargers.run(other.start, chargers.nursery)  # another charger: not this page's
    chargers.run(charger.call, "DataTransfer", {"vendorId": "marker.example"})  # no event
    chargers.run(charger.status, 1, "Unavailable")  # an event: fetch the new frames
    newest = log.locator("tr[data-message]").first
    expect(newest).to_contain_text("StatusNotification")
    expect(log).to_contain_text("marker.example")  # the frame without an event came along
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("tr[data-message] details[open]")).to_have_count(1)  # still open
    # Voltaro's own local list sync may add frames at any moment: count what is shown, and
    # the count above the table with it (both change in one go)
    shown, count, pager = page.evaluate(
        """() => [document.querySelectorAll("table.messages tbody tr[data-message]").length,
                  document.getElementById("message-count").textContent,
                  document.querySelector("nav.pager span").textContent]"""
    )
    assert shown >= shown_before + 4  # DataTransfer and StatusNotification, each answered
    assert count == f"{shown} messages"
    assert pager == f"1\u2013{shown} of {shown} messages"  # an en dash
    fetched: list[str] = page.evaluate("window.fetched")
    assert fetched and all(
        url.startswith("/charge-points/ROW-LOG/messages/rows?") for url in fetched
    ), fetched
    assert "ROW-LOG-OTHER" not in log.inner_text()
    shot(page, "16-message-log-live")
    chargers.run(charger.close)
    chargers.run(other.close)

    with httpx.Client(base_url=live.base, timeout=10) as client:
        assert client.post("/login", data={"token": live.token}).status_code == 302
        rows = client.get(
            "/charge-points/ROW-LOG/messages/rows",
            params={"action": "DataTransfer", "limit": 25},
        )
        assert rows.status_code == 200 and rows.text.count("<tr ") == 2  # the call, the answer
        later = client.get(
            "/charge-points/ROW-LOG/messages/rows", params={"from": "2999-01-01T00:00:00Z"}
        )
        assert later.status_code == 200 and "<tr " not in later.text
        assert client.get("/charge-points/NOBODY-HERE/messages/rows").status_code == 404
        assert client.get("/charge-points/ROW-LOG/messages/rows?from=x").status_code == 400
        # a page that is not the newest first has nowhere to put new rows: not live
        older = client.get("/charge-points/ROW-LOG/messages", params={"order": "asc"})
        assert older.status_code == 200 and "data-tail" not in older.text
        assert "data-tail" in client.get("/charge-points/ROW-LOG/messages").text
