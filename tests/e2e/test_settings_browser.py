"""The settings page in a real browser, from the keyboard alone: a display name in the header, a
theme that wins over the system's (light while the system is dark, and the reverse), a default
assistant that a new conversation gets; axe-core finds no serious or critical violation on the
settings page (with and without errors) or the chat page, in either theme, at desktop and phone widths."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.live_server import Server
from tests.support.browser import WIDER_THAN_THE_SCREEN, serious_violations, sign_up, wait_connected

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 800}
# Written to docs/ only when asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
)
BACKGROUND = {"light": "rgb(255, 255, 255)", "dark": "rgb(22, 23, 27)"}
THEME_ORDER = ["system", "light", "dark"]


def tab_to(page: Page, element_id: str, presses: int = 40) -> None:
    """Press Tab until the element with this id (or data-testid) has the focus."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(
            f"[document.activeElement?.id, document.activeElement?.dataset?.testid].includes({element_id!r})"
        ):
            return
    pytest.fail(f"{element_id} never got the keyboard focus")


def background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def check_page(page: Page) -> None:
    # The chat's empty state rises in (opacity from 0): axe measures contrast once it has settled.
    page.evaluate("Promise.all(document.getAnimations().map((a) => a.finished))")
    assert serious_violations(page) == []
    assert page.evaluate(WIDER_THAN_THE_SCREEN) == []


@pytest.mark.parametrize(
    ("viewport", "size", "theme", "system"),
    [
        (DESKTOP, "desktop", "light", "dark"),
        (DESKTOP, "desktop", "dark", "light"),
        (PHONE, "phone", "light", "dark"),
        (PHONE, "phone", "dark", "light"),
    ],
)
def test_settings_by_keyboard_theme_wins_over_the_system_and_pages_pass_axe(
    browser: Browser, server: Server, viewport: dict, size: str, theme: str, system: str
):
    base = server.http_url
    context = browser.new_context(viewport=viewport, color_scheme=system)
    try:
        page = context.new_page()
        email = f"{sign_up(page, base)}@example.com"  # the server is shared: an address nobody has
        page.goto(f"{base}/accounts/settings/")
        expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
        expect(page.locator("html")).not_to_have_attribute("data-theme", re.compile(".*"))
        assert background(page) == BACKGROUND[system]  # "Same as the system" until a choice is saved
        check_page(page)

        # A bad email first: the error, what was typed kept, nothing saved.
        tab_to(page, "id_display_name")
        page.keyboard.type("Ada Lovelace")
        tab_to(page, "id_email")
        page.keyboard.type("not an address")
        tab_to(page, "settings-save")
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("error-email")).to_have_text("Enter a valid email address.")
        expect(page.get_by_label("Display name")).to_have_value("Ada Lovelace")
        check_page(page)

        page.get_by_label("Email (optional)").focus()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type(email)
        tab_to(page, "id_theme_0")  # the checked radio of the group takes the focus
        for _ in range(THEME_ORDER.index(theme)):
            page.keyboard.press("ArrowDown")
        expect(page.locator(f"#id_theme_{THEME_ORDER.index(theme)}")).to_be_checked()
        tab_to(page, "id_default_assistant_id")
        page.keyboard.press("ArrowDown")  # from the site's default to the first assistant named
        page.keyboard.press("ArrowDown")  # and on to the second
        chosen = page.locator("#id_default_assistant_id").input_value()
        chosen_name = page.locator(f'#id_default_assistant_id option[value="{chosen}"]').inner_text()
        assert chosen
        tab_to(page, "settings-save")
        page.keyboard.press("Enter")

        expect(page.get_by_text("Your settings were saved.")).to_be_visible()
        assert page.url == f"{base}/accounts/settings/"
        expect(page.locator("html")).to_have_attribute("data-theme", theme)
        assert background(page) == BACKGROUND[theme]
        expect(page.get_by_test_id("username")).to_have_text("Ada Lovelace")
        expect(page.get_by_label("Email (optional)")).to_have_value(email)
        check_page(page)
        # The header's Settings link, on a phone too (where it stands in for Password and My data).
        expect(page.get_by_test_id("settings-link")).to_be_visible()
        expect(page.get_by_role("link", name="Change your password")).to_be_visible()
        page.screenshot(path=SHOTS / f"screenshot-settings-{theme}-{size}.png", full_page=True)

        # The chat page in the chosen theme, with the chosen assistant for a new conversation.
        page.goto(f"{base}/")
        page.get_by_test_id("new-conversation").first.click()
        expect(page).to_have_url(re.compile(r"/conversations/\d+/$"))
        wait_connected(page)
        expect(page.get_by_test_id("assistant-badge")).to_have_text(chosen_name)
        assert background(page) == BACKGROUND[theme]
        check_page(page)
        page.screenshot(path=Path(tempfile.gettempdir()) / f"agentchat-chat-{theme}-{size}.png")
    finally:
        context.close()
