"""The model choice in a real browser, on a server started against the tests' OpenAI-compatible server
with an assistant offering two models: the header's select switches the model, a second tab shows the
change at once, the model server hears it. The header passes axe-core, light and dark, desktop and
phone, and the select works from the keyboard. (Over a bare socket: tests/conversations/test_model_choice_live.py.)"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.conversations.test_model_choice_assistants import TWO_MODELS
from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks
from tests.live_server import Deployment, Server
from tests.support.browser import ask, new_conversation, open_tab, serious_violations, sign_up, wait_status

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 800}
# Written to docs/ only when asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
)
SETTLED = "() => document.getAnimations().every((a) => a.playState !== 'running')"
HEADER_OVERFLOW = """Array.from(document.querySelectorAll('.chat__header, .chat__header *'))
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .map((e) => e.tagName + '.' + e.className)"""
"""The header's elements that reach past the window's right edge (none, on a phone too)."""


@pytest.fixture(scope="module")
def two_models_server(deployment: Deployment, fake_openai_server: FakeOpenAI) -> Iterator[Server]:
    """A server of the shared deployment whose one assistant offers gpt-4o-mini and gpt-4o."""
    server = deployment.start_server(
        AGENT_ASSISTANTS=TWO_MODELS,
        OPENAI_API_KEY="test",
        OPENAI_BASE_URL=fake_openai_server.base_url,
        OPENAI_MAX_RETRIES="0",
    )
    yield server
    deployment.stop_server(server)


def test_the_select_switches_the_model_and_a_second_tab_shows_it(
    context: BrowserContext, two_models_server: Server, fake_openai_server: FakeOpenAI
):
    fake_openai_server.enqueue(StreamResponse(content_chunks(["Answered ", "by the big one."])))
    page = context.new_page()
    sign_up(page, two_models_server.http_url)
    url = new_conversation(page, two_models_server.http_url)
    watcher = open_tab(context, url)
    select = page.get_by_label("Model for the next answers")
    expect(select).to_have_value("gpt-4o-mini")
    expect(watcher.get_by_test_id("model-select")).to_have_value("gpt-4o-mini")

    select.select_option("gpt-4o")

    expect(watcher.get_by_test_id("model-select")).to_have_value("gpt-4o")
    ask(watcher, "Which model?")
    wait_status(watcher, "completed")
    assert fake_openai_server.requests[-1]["model"] == "gpt-4o"
    later = open_tab(context, url)  # a tab opened later shows the stored choice
    expect(later.get_by_test_id("model-select")).to_have_value("gpt-4o")


@pytest.mark.parametrize(
    ("viewport", "scheme", "name"),
    [(DESKTOP, "light", "desktop"), (DESKTOP, "dark", "desktop"), (PHONE, "light", "phone"), (PHONE, "dark", "phone")],
)
def test_the_header_select_passes_axe_fits_and_works_from_the_keyboard(
    browser: Browser, two_models_server: Server, viewport: dict, scheme: str, name: str
):
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    try:
        page = context.new_page()
        sign_up(page, two_models_server.http_url)
        url = new_conversation(page, two_models_server.http_url)
        select = page.get_by_test_id("model-select")
        expect(select).to_be_visible()
        page.wait_for_function(SETTLED)  # axe judges colours as they end, not mid-fade
        assert serious_violations(page) == []
        assert page.evaluate(HEADER_OVERFLOW) == []

        select.focus()
        page.keyboard.press("ArrowDown")  # a closed select changes its value from the keyboard
        expect(select).to_have_value("gpt-4o")
        second = open_tab(context, url)
        expect(second.get_by_test_id("model-select")).to_have_value("gpt-4o")
        second.close()
        page.locator(".chat__header").screenshot(path=SHOTS / f"screenshot-model-choice-{scheme}-{name}.png")
    finally:
        context.close()


def test_one_model_shows_the_badge_and_no_select(context: BrowserContext, server: Server):
    page = context.new_page()
    sign_up(page, server.http_url)
    new_conversation(page, server.http_url)
    expect(page.get_by_test_id("model-badge")).to_be_visible()
    expect(page.get_by_test_id("model-select")).to_have_count(0)
