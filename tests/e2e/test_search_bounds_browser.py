"""A search past the bounds in a real browser: the sidebar and the list page say what to do instead
of showing results, and the sidebar searches again as soon as the search is short enough."""

from __future__ import annotations

from urllib.parse import urlencode

from playwright.sync_api import BrowserContext, expect

from tests.live_server import Server
from tests.support.browser import ask, new_conversation, sign_up, wait_status

DESKTOP = {"width": 1200, "height": 900}  # wide enough for the sidebar
TOO_MANY_WORDS = " ".join(f"word{n}" for n in range(13))


def test_a_search_past_the_bounds_shows_the_message_instead_of_results(context: BrowserContext, server: Server):
    page = context.new_page()
    page.set_viewport_size(DESKTOP)
    base = server.http_url
    sign_up(page, base)
    new_conversation(page, base)
    ask(page, "What is 2 + 3?")
    wait_status(page, "completed")
    titles = page.locator('.side-list li:not([hidden]) [data-testid="conversation-link"]')
    expect(titles).to_have_count(1)

    page.get_by_test_id("sidebar-search").fill(TOO_MANY_WORDS)
    expect(page.get_by_test_id("sidebar-search-refused")).to_contain_text("at most 12 words")
    expect(titles).to_have_count(0)
    expect(page.get_by_test_id("sidebar-no-match")).to_be_hidden()
    page.get_by_test_id("sidebar-search").fill("what")
    expect(titles).to_have_count(1)
    expect(page.get_by_test_id("sidebar-search-refused")).to_be_hidden()

    page.goto(f"{base}/?{urlencode({'q': TOO_MANY_WORDS})}")
    expect(page.get_by_test_id("search-refused")).to_contain_text("at most 12 words")
    expect(page.get_by_test_id("list-search")).to_have_value(TOO_MANY_WORDS)
