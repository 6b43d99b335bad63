"""``/api/docs`` in a real headless Chromium: request bodies shown resolved (no ``$ref``),
with an example body and a curl line per operation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.admin.conftest import Live
from tests.dashboard.conftest import SCREENSHOTS

TIMEOUT = 10_000  # ms


@pytest.fixture(scope="module")
def docs(browser: Any, live: Live) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto(live.base + "/api/docs")
    page.locator("#token").fill(live.token)
    page.get_by_role("button", name="Load").click()
    page.get_by_text("Send Reset to the charge point").wait_for()
    yield page
    context.close()


def operation(page: Any, summary: str) -> Any:
    op = page.locator("details.op", has_text=summary).first
    op.locator("summary").first.click()
    return op


def test_a_command_body_is_shown_resolved_with_an_example(docs: Any, live: Live) -> None:
    reset = operation(docs, "Send Reset to the charge point")
    body = json.loads(reset.locator("pre").first.text_content())
    assert body["properties"]["type"]["enum"] == ["Hard", "Soft"]  # the OCPP schema itself
    assert json.loads(reset.locator("pre.example").text_content()) == {"type": "Hard"}
    curl = reset.locator("pre.curl").text_content()
    assert "curl -X POST" in curl and """-d '{"type":"Hard"}'""" in curl
    assert f"'{live.base}/api/v1/charge-points/{{chargePointId}}/commands/Reset'" in curl
    docs.screenshot(path=str(SCREENSHOTS / "api-docs-reset.png"), full_page=False)


def test_no_ref_is_left_anywhere(docs: Any) -> None:
    text = docs.locator("#doc").text_content()
    assert "Send ChangeAvailability" in text and "putIdTag" not in text
    assert "$ref" not in text
    id_tag = operation(docs, "Create or replace an id tag")
    assert json.loads(id_tag.locator("pre.example").text_content())["parentIdTag"] == "FLEET-1"
