"""Keyboard focus on the conversation page, in a real browser (issue #28, item 3): a conversation opens
with the composer focused (a titled one too, not only a new one), the ⋯ menu gives focus back to its
button when closed with Esc or by choosing an item, and the skip link lands on the composer, past the
sidebar."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from tests.live_server import Server
from tests.support.browser import new_conversation, sign_up, wait_connected

ACTIVE = "() => { const e = document.activeElement; return e ? (e.dataset.testid || e.tagName) : null; }"
MENU_BUTTON_FOCUSED = "() => document.activeElement === document.querySelector('details.chat-menu > summary')"


def titled_conversation(page: Page, base: str) -> str:
    """A new conversation, renamed (so the template gives its composer no autofocus); its URL."""
    url = new_conversation(page, base)
    page.get_by_test_id("rename-button").click()
    page.get_by_test_id("rename-input").fill("Focus checks")
    page.get_by_test_id("rename-input").press("Enter")
    expect(page.get_by_test_id("chat-title")).to_have_text("Focus checks")
    return url


def test_opening_a_conversation_focuses_the_composer(context: BrowserContext, server: Server):
    page = context.new_page()
    sign_up(page, server.http_url)
    url = titled_conversation(page, server.http_url)
    page.goto(url)
    expect(page.get_by_test_id("chat-title")).to_have_attribute("data-untitled", "false")
    wait_connected(page)
    page.wait_for_function("() => document.activeElement === document.querySelector('[data-testid=composer-input]')")
    assert page.evaluate(ACTIVE) == "composer-input"


def test_the_menu_gives_focus_back_to_its_button(context: BrowserContext, server: Server):
    page = context.new_page()
    sign_up(page, server.http_url)
    titled_conversation(page, server.http_url)
    menu = page.get_by_test_id("chat-menu")
    toggle = menu.locator("summary")

    # Esc from inside the open menu.
    toggle.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    assert page.evaluate(ACTIVE) == "export-md"
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    page.wait_for_function(MENU_BUTTON_FOCUSED)

    # Choosing an item that keeps the page (an export): the menu closes, focus on its button.
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    with page.expect_download():
        page.keyboard.press("Enter")
    expect(menu).not_to_have_attribute("open", "")
    page.wait_for_function(MENU_BUTTON_FOCUSED)


def test_the_skip_link_lands_on_the_composer(context: BrowserContext, server: Server):
    page = context.new_page()
    sign_up(page, server.http_url)
    titled_conversation(page, server.http_url)
    skip = page.locator("a.skip-link")
    expect(skip).to_have_attribute("href", "#composer-input")
    skip.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement === document.querySelector('[data-testid=composer-input]')")
