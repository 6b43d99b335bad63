"""The sign-in throttle as an operator sees it, in a real Chromium: after too many wrong
passwords for an account the sign-in page says so, and how long to wait, instead of
"Wrong name or password" (and the right password does not get in meanwhile)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.admin.conftest import Live
from tests.dashboard.conftest import TIMEOUT
from tests.dashboard.test_dashboard import shot
from voltaro.config import Settings

PASSWORD = "a long passphrase 7"


def test_the_sign_in_page_says_when_an_account_is_blocked(browser: Any, live: Live) -> None:
    from playwright.sync_api import expect

    with live.client() as api:
        body = {"role": "viewer", "password": PASSWORD}
        assert api.put("/api/v1/accounts/dora", json=body).status_code == 201
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    try:
        page.goto(live.base + "/login")

        def attempt(password: str) -> None:
            page.get_by_label("Account").fill("dora")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()

        for n in range(Settings().sign_in_max_failures):
            attempt(f"not it {n}")
            expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
        attempt(PASSWORD)
        expect(page.get_by_role("alert")).to_have_text(
            "Too many failed sign-ins for this account: try again in 15 minutes."
        )
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        shot(page, "sign-in-blocked")
    finally:
        context.close()
    # the admin token still gets in from the same address
    with httpx.Client(base_url=live.base, timeout=30) as client:
        assert client.post("/login", data={"token": live.token}).status_code == 302
