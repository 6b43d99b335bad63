"""The dashboard's who-does-what in a real Chromium: destructive actions ask first (and a
"no" sends nothing), a rejected charger is accepted again, charge points are added, given a
password and removed, accounts and their tokens are managed by an admin, a viewer sees and
may only look, sessions end everywhere, the audit page shows who did what, and /api/docs
loads with the dashboard's session."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.admin.conftest import Live
from tests.dashboard.charger import ScriptedCharger
from tests.dashboard.conftest import TIMEOUT, TrioThread
from tests.dashboard.test_dashboard import shot

CHARGER = "CONFIRM-CP-1"
PASSWORD = "viewer password 1"


class Dialogs:
    """Answers every dialog of a page as told, and keeps what each asked."""

    def __init__(self, page: Any) -> None:
        self.asked: list[str] = []
        self.accept = False
        page.on("dialog", self._answer)

    def _answer(self, dialog: Any) -> None:
        self.asked.append(dialog.message)
        if self.accept:
            dialog.accept()
        else:
            dialog.dismiss()


@pytest.fixture(scope="module")
def admin_page(page: Any) -> Any:
    """The conftest's page, signed in with the admin token."""
    return page


def account_page(browser: Any, live: Live, name: str, password: str) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto(live.base + "/login")
    page.get_by_label("Account").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


def test_destructive_commands_ask_first(admin_page: Any, live: Live, chargers: TrioThread) -> None:
    from playwright.sync_api import expect

    page = admin_page
    charger = ScriptedCharger(live.ws_url(CHARGER))
    chargers.run(charger.start, chargers.nursery)
    dialogs = Dialogs(page)
    page.goto(f"{live.base}/charge-points/{CHARGER}")
    expect(page.locator("#connectors")).to_contain_text("Available")

    reset = page.locator('form[data-action="Reset"]')
    reset.get_by_role("button", name="Send Reset").click()
    page.wait_for_function("() => true")  # a round trip: the dialog was handled by now
    assert dialogs.asked == ["Reset the charger? Charging on it stops while it reboots."]
    expect(reset.locator("output.answer")).to_have_text("")
    dialogs.accept = True
    reset.get_by_role("button", name="Send Reset").click()
    expect(reset.locator("output.answer")).to_contain_text("Answer: Accepted")
    assert charger.received.count("Reset") == 1  # the "no" sent nothing

    availability = page.locator('form[data-action="ChangeAvailability"]')
    availability.get_by_label("Type").select_option("Operative")
    availability.get_by_role("button").click()
    expect(availability.locator("output.answer")).to_contain_text("Answer: Accepted")
    assert len(dialogs.asked) == 2  # Operative takes nothing out of service: not asked
    dialogs.accept = False
    availability.get_by_label("Type").select_option("Inoperative")
    availability.get_by_role("button").click()
    page.wait_for_function("() => true")
    assert dialogs.asked[-1].startswith("Take it out of service?")
    assert charger.received.count("ChangeAvailability") == 1

    unlock = page.locator('form[data-action="UnlockConnector"]')
    unlock.get_by_role("button").click()
    page.wait_for_function("() => true")
    assert dialogs.asked[-1].startswith("Unlock the connector?")
    assert "UnlockConnector" not in charger.received
    shot(page, "20-confirm-asked")
    page.remove_listener("dialog", dialogs._answer)


def test_rejected_charger_accepted_again_added_given_a_password_and_removed(
    admin_page: Any, live: Live
) -> None:
    from playwright.sync_api import expect

    page = admin_page
    dialogs = Dialogs(page)
    dialogs.accept = True
    page.goto(live.base + "/charge-points")
    page.get_by_role("link", name="Add a charge point").click()
    form = page.locator("#add-charge-point")
    form.get_by_label("Charge point id").fill("DASH-NEW-1")
    form.get_by_label("Registration").select_option("Pending")
    form.get_by_label("Password").fill("cp-secret-1")
    form.get_by_role("button", name="Add charge point").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("DASH-NEW-1")
    registration = page.locator("#registration")
    expect(registration).to_contain_text("Pending")
    expect(registration).to_contain_text("has a password")

    registration.get_by_role("button", name="Reject").click()
    expect(registration).to_contain_text("Rejected")
    assert dialogs.asked[-1].startswith("Reject DASH-NEW-1?")
    registration.get_by_role("button", name="Accept").click()
    expect(registration).to_contain_text("Accepted")
    with live.client() as api:
        assert api.get("/api/v1/charge-points/DASH-NEW-1").json()["registrationStatus"] == (
            "Accepted"
        )
    registration.get_by_label("New password").fill("another-secret")
    registration.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status").filter(has_text="password set")).to_be_visible()
    shot(page, "21-registration")

    page.locator("#registration").get_by_role("button", name="Remove charge point").click()
    expect(page).to_have_url(re.compile(r"/charge-points$"))
    assert dialogs.asked[-1].startswith("Remove DASH-NEW-1?")
    with live.client() as api:
        assert api.get("/api/v1/charge-points/DASH-NEW-1").status_code == 404

    page.get_by_role("link", name="Audit").click()
    rows = page.locator("tr[data-audit]").filter(has_text="DASH-NEW-1")
    expect(rows).to_have_count(5)  # added, rejected, accepted, password, removed
    expect(rows.first).to_contain_text("deleteChargePoint")
    expect(rows.first).to_contain_text("@admin-token (admin, dashboard)")
    expect(rows.last).to_contain_text("created")
    assert "cp-secret-1" not in page.content() and "another-secret" not in page.content()
    shot(page, "22-audit")
    page.remove_listener("dialog", dialogs._answer)


def test_accounts_tokens_and_a_viewers_limits(admin_page: Any, browser: Any, live: Live) -> None:
    from playwright.sync_api import expect

    page = admin_page
    page.get_by_role("link", name="Accounts").click()
    form = page.locator("#add-account")
    form.get_by_label("Name").fill("vic")
    form.get_by_label("Role").select_option("viewer")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Save account").click()
    vic = page.locator('section[data-account="vic"]')
    expect(vic).to_contain_text("viewer")
    vic.get_by_label("New token label for vic").fill("grafana")
    vic.get_by_role("button", name="Make a token for vic").click()
    token = page.locator("#new-token").inner_text()
    assert token.startswith("vlt_")
    shot(page, "23-accounts-new-token")
    with live.client(token) as api:
        assert api.get("/api/v1/me").json()["name"] == "vic"
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)  # shown once
    expect(page.locator('section[data-account="vic"]')).to_contain_text("grafana")

    viewer = account_page(browser, live, "vic", PASSWORD)
    try:
        expect(viewer.locator("header .who")).to_have_text("vic (viewer)")
        expect(viewer.get_by_role("link", name="Accounts")).to_have_count(0)
        viewer.goto(f"{live.base}/charge-points/{CHARGER}")
        expect(viewer.get_by_text("Your role (viewer) can look, not act")).to_be_visible()
        expect(viewer.locator('form[data-action="Reset"]')).to_have_count(0)
        expect(viewer.locator("#registration")).to_have_count(0)
        viewer.goto(live.base + "/id-tags")
        viewer.locator("#add-id-tag").get_by_label("Id tag", exact=True).fill("VIC-TAG")
        viewer.locator("#add-id-tag").get_by_role("button", name="Save").click()
        expect(viewer.get_by_role("alert")).to_contain_text("putIdTag needs the role operator")
        viewer.get_by_role("link", name="My tokens").click()
        expect(viewer.locator("section[data-account]")).to_have_count(1)
        shot(viewer, "24-viewer-tokens")

        # /api/docs uses the dashboard's session: no token asked for.
        viewer.goto(live.base + "/api/docs")
        expect(viewer.get_by_text("Voltaro admin API 1")).to_be_visible()
        expect(viewer.locator("#token")).to_be_hidden()

        # The admin ends vic's sessions: vic's next page is the sign-in page.
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator('section[data-account="vic"]').get_by_role(
            "button", name="End the sessions of vic"
        ).click()
        expect(page.get_by_role("status").filter(has_text="signed out everywhere")).to_be_visible()
        viewer.goto(live.base + "/")
        expect(viewer).to_have_url(re.compile(r"/login"))
    finally:
        viewer.context.close()
    with live.client(token) as api:  # tokens are not sessions: still valid
        assert api.get("/api/v1/me").status_code == 200


def test_end_all_my_sessions(browser: Any, live: Live) -> None:
    from playwright.sync_api import expect

    with live.client() as api:
        api.put("/api/v1/accounts/olga", json={"role": "operator", "password": PASSWORD})
    laptop = account_page(browser, live, "olga", PASSWORD)
    phone = account_page(browser, live, "olga", PASSWORD)
    try:
        laptop.once("dialog", lambda dialog: dialog.accept())
        laptop.get_by_role("button", name="End all sessions").click()
        expect(laptop.get_by_role("heading", name="Sign in")).to_be_visible()
        phone.goto(live.base + "/transactions")
        expect(phone).to_have_url(re.compile(r"/login"))
    finally:
        laptop.context.close()
        phone.context.close()
