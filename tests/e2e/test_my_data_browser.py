"""My data in a real browser: the download page and the delete page, light and dark, desktop and phone,
pass axe-core (no serious or critical violation), fit the screen and work from the keyboard; the
download is a zip; deleting with the password lands on the login page with the message."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.live_server import PASSWORD, Server
from tests.support.browser import WIDER_THAN_THE_SCREEN, ask, new_conversation, serious_violations, sign_up, wait_status

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 800}
# Written to docs/ only when asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
)


def tab_to(page: Page, test_id: str, presses: int = 40) -> None:
    """Press Tab until the element with `test_id` has the focus."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement?.dataset?.testid") == test_id:
            return
    pytest.fail(f"{test_id} never got the keyboard focus")


@pytest.mark.parametrize(
    ("viewport", "scheme", "shot"),
    [
        (DESKTOP, "light", "screenshot-my-data-desktop-light.png"),
        (PHONE, "dark", "screenshot-my-data-phone-dark.png"),
        (DESKTOP, "dark", None),
        (PHONE, "light", None),
    ],
)
def test_both_pages_pass_axe_fit_the_screen_and_work_from_the_keyboard(
    browser: Browser, server: Server, viewport: dict, scheme: str, shot: str | None
):
    context = browser.new_context(viewport=viewport, color_scheme=scheme, accept_downloads=True)
    try:
        page = context.new_page()
        sign_up(page, server.http_url)
        new_conversation(page, server.http_url)
        ask(page, "What is 12 times 34?")
        wait_status(page, "completed")

        page.goto(server.http_url + "/accounts/export/")
        expect(page.get_by_role("heading", name="Download my data")).to_be_visible()
        assert serious_violations(page) == []
        assert page.evaluate(WIDER_THAN_THE_SCREEN) == []
        tab_to(page, "export-download")
        with page.expect_download() as info:
            page.keyboard.press("Enter")
        download = info.value
        assert download.suggested_filename.startswith("agentchat-") and download.suggested_filename.endswith(".zip")
        archive = zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes()))
        assert "profile.json" in archive.namelist() and "README.txt" in archive.namelist()

        page.goto(server.http_url + "/accounts/delete/")
        expect(page.get_by_role("heading", name="Delete my account")).to_be_visible()
        expect(page.get_by_test_id("count-conversations")).to_have_text("1")
        expect(page.locator(".my-data__titles li")).to_have_attribute("dir", "auto")
        assert serious_violations(page) == []
        assert page.evaluate(WIDER_THAN_THE_SCREEN) == []
        if shot:
            page.screenshot(path=SHOTS / shot, full_page=True)

        # A wrong password, typed and sent from the keyboard: the error, and nothing deleted.
        page.get_by_label("Your password, to confirm").fill("not it")
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("delete-error")).to_contain_text("Nothing was deleted")
        assert serious_violations(page) == []
        expect(page.get_by_label("Your password, to confirm")).to_be_focused()  # autofocus: type again

        page.keyboard.type(PASSWORD)
        tab_to(page, "delete-account")
        page.keyboard.press("Enter")
        expect(page.get_by_text("Your account and everything in it was deleted.")).to_be_visible()
        assert "/accounts/login/" in page.url
        assert serious_violations(page) == []
    finally:
        context.close()
