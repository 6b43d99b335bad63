"""The overview's charts and a charge point's use, status history and links, in a real
headless Chromium, over known data (the stats API test's: tests/admin/test_stats.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest

from tests.admin.conftest import Live
from tests.admin.test_stats import CP, seed
from tests.dashboard.conftest import TIMEOUT
from tests.dashboard.test_dashboard import shot
from voltaro.store.testing import TestPostgres


@pytest.fixture(scope="module")
def seeded(live: Live, pg_server: TestPostgres) -> datetime:
    # on a thread of its own: Playwright keeps an asyncio loop running on this one
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(seed, live, pg_server).result()


@pytest.fixture(scope="module")
def page(seeded: datetime, page: Any) -> Any:
    """The signed-in page, opened after the data is seeded (the stats are cached a while)."""
    return page


def test_the_overview_shows_the_charts(page: Any, live: Live, seeded: datetime) -> None:
    from playwright.sync_api import expect

    page.goto(live.base + "/")
    energy = page.locator("#chart-energy svg")
    expect(energy).to_have_attribute("role", "img")
    expect(energy.locator("rect.bar")).to_have_count(30)
    today = seeded.date().isoformat()
    expect(energy.locator("rect.bar").last.locator("title")).to_have_text(f"{today}: 13 kWh")
    expect(energy).to_have_attribute("aria-label", "Energy per day, last 30 days; total 17.50 kWh")
    page.locator("#chart-energy summary").click()
    expect(page.locator("#chart-energy tbody tr").first).to_contain_text("13.00 kWh")

    online = page.locator("#chart-online svg")
    expect(online.locator("polyline.line.online")).not_to_have_count(0)  # the two samples
    expect(online.locator("polyline.line.charging")).not_to_have_count(0)

    sessions = page.locator("#chart-sessions svg rect.bar")
    expect(sessions).to_have_count(24)
    expect(page.locator("#chart-sessions figcaption")).to_contain_text("3 in the last 24 hours")
    shot(page, "20-overview-charts")
    page.get_by_role("link", name="7 days").click()
    expect(sessions).to_have_count(24 * 7)
    expect(page.locator("#chart-sessions figcaption")).to_contain_text("in the last 7 days")


def test_a_charge_points_use_history_and_transactions(
    page: Any, live: Live, seeded: datetime
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live.base}/charge-points/{CP}")
    use = page.locator("#use")
    # Charging for the last 6 hours of a connector known for longer: 6/168 and 6/720
    expect(use.locator("dt")).to_have_text(
        ["Utilisation, 7 days", "Utilisation, 30 days", "Energy, 30 days"]
    )
    expect(use.locator("dd").nth(0)).to_contain_text("3.6 %")
    expect(use.locator("dd").nth(1)).to_contain_text("0.8 %")
    expect(use.locator("dd").nth(2)).to_have_text("16.50 kWh in 3 sessions")
    expect(use.locator("svg rect.bar")).to_have_count(30)
    history = page.locator("#status-history")
    expect(history.locator("tbody tr")).to_have_count(2)
    expect(history.locator("tbody tr").first).to_contain_text("Available → Charging")
    shot(page, "21-charge-point-use")

    history.get_by_role("link", name="All 2 status changes").click()
    expect(page.get_by_role("heading", name=f"Status history of {CP}")).to_be_visible()
    expect(page.locator("#history tbody tr")).to_have_count(2)
    page.locator("input[name=to]").fill("2000-01-01T00:00")  # the date filter, in the URL
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/status-history?*to=2000-01-01T00*")
    expect(page.locator("#history tbody")).to_have_text("No status change matches.")
    expect(page.get_by_role("navigation", name="Pages of status changes")).to_contain_text("0 of 0")

    page.goto(f"{live.base}/charge-points/{CP}")
    page.get_by_role("link", name=f"Transactions of {CP}").click()
    page.wait_for_url(f"**/transactions?chargePointId={CP}")
    expect(page.locator("main")).not_to_contain_text("OTHER-CP")
    expect(page.locator("main")).to_contain_text(CP)


def test_the_charts_fit_a_phone(browser: Any, live: Live, page: Any) -> None:
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.add_cookies(page.context.cookies())
    small = phone.new_page()
    for path in ("/", f"/charge-points/{CP}"):
        small.goto(live.base + path)
        small.locator("svg.chart").first.wait_for(timeout=TIMEOUT)
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways at phone width ({width}px)"
    small.goto(live.base + "/")
    small.locator("#chart-energy").scroll_into_view_if_needed()
    shot(small, "22-phone-overview-charts", full_page=False)
    phone.close()
