"""Fixtures for the browser tests: a whole Voltaro on a thread (as ``tests/admin``), a
scripted charger on another, and a headless Debian Chromium driven by Playwright.

Without Chromium (or Playwright) the tests skip, unless ``VOLTARO_REQUIRE_BROWSER=1``
(CI), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.admin import conftest as admin_fixtures
from tests.admin.conftest import Live
from tests.threaded import trio_in_thread

SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def no_browser(reason: str) -> None:
    if os.environ.get("VOLTARO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (VOLTARO_REQUIRE_BROWSER=1: the browser tests must run)")
    pytest.skip(f"{reason}: install Debian's chromium package to run the browser tests")


live = admin_fixtures.live  # one whole Voltaro per test module, as the admin API tests
TIMEOUT = 10_000  # ms: generous for loaded CI machines; live updates take well under 1 s


def sign_in(page: Any, live: Live) -> None:
    page.goto(live.base + "/")
    page.get_by_label("Admin token").fill(live.token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def page(browser: Any, live: Live) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    sign_in(page, live)
    yield page
    context.close()


@pytest.fixture(scope="module")
def browser(live: Live) -> Iterator[Any]:
    """Chromium; after ``live`` (set up before and torn down after it, as its database
    calls need an asyncio loop of their own and Playwright keeps one marked running)."""
    executable = chromium_path()
    if executable is None:
        no_browser("chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("playwright is not installed (pip install -e '.[test]')")
    SCREENSHOTS.mkdir(exist_ok=True)
    # trio-asyncio (imported by Voltaro) makes new asyncio loops its own kind, which
    # Playwright's synchronous API cannot drive; a policy set here holds for this thread.
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        asyncio.set_event_loop_policy(None)


class TrioThread:
    """A trio run on a thread with a nursery, for chargers the tests start when they like."""

    def __init__(self, nursery: trio.Nursery, token: trio.lowlevel.TrioToken) -> None:
        self.nursery = nursery
        self.token = token

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return trio.from_thread.run(fn, *args, trio_token=self.token)


@pytest.fixture(scope="module")
def chargers() -> Iterator[TrioThread]:
    async def start(nursery: trio.Nursery) -> TrioThread:
        nursery.start_soon(trio.sleep_forever)  # keep the run going until the fixture ends
        return TrioThread(nursery, trio.lowlevel.current_trio_token())

    with trio_in_thread(start) as thread:
        yield thread


def connector_events(lines: Iterator[str], count: int) -> list[tuple[str, str, int]]:
    """The first ``count`` events of a ``/events`` stream's lines, as (type, charge point,
    connector)."""
    import orjson

    seen = []
    for line in lines:
        if line.startswith("data: "):
            event = orjson.loads(line.removeprefix("data: "))
            seen.append((event["type"], event["chargePointId"], event["connectorId"]))
            if len(seen) == count:
                break
    return seen
