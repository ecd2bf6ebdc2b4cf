"""Changing and resetting a password in Chromium, light and dark, desktop and phone: every page
passes axe-core with no serious or critical violation, the forms work from the keyboard, the reset
email's link sets a new password once, and nothing is wider than a phone's screen."""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from email import message_from_bytes
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.live_server import PASSWORD, Deployment, Server
from tests.support.browser import WIDER_THAN_THE_SCREEN
from tests.support.mail import smtp_server

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
NEW_PASSWORD = "a-brand-new-passphrase-9"
LINK = re.compile(r"https?://[^/\s]+(/accounts/reset/[^/\s]+/[^/\s]+/)")
# Written to docs/ only when asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
)
AXE = Axe()


class Inbox:
    def __init__(self) -> None:
        self.bodies: dict[str, str] = {}

    async def handle_DATA(self, server, session, envelope) -> str:
        for to in envelope.rcpt_tos:
            self.bodies[to] = message_from_bytes(envelope.content).get_payload(decode=True).decode()
        return "250 OK"

    def link_for(self, address: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while address not in self.bodies and time.monotonic() < deadline:
            time.sleep(0.05)
        return LINK.search(self.bodies[address])[1]


@pytest.fixture(scope="module")
def inbox():
    handler = Inbox()
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture(scope="module")
def mail_server(deployment: Deployment, inbox) -> Server:
    """A server of the shared deployment that sends its email to `inbox`."""
    return deployment.start_server(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(inbox[1]))


def no_serious_violations(page: Page) -> None:
    violations = AXE.run(page).response["violations"]
    serious = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{page.url}: {serious}"


def tab_to(page: Page, selector: str, limit: int = 30) -> None:
    """Press Tab until the element matching `selector` has the focus (keyboard only)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


@pytest.mark.parametrize(
    ("viewport", "scheme"),
    [(DESKTOP, "light"), (DESKTOP, "dark"), (PHONE, "light"), (PHONE, "dark")],
    ids=["desktop-light", "desktop-dark", "phone-light", "phone-dark"],
)
def test_change_and_reset_a_password_with_the_keyboard_on_accessible_pages(
    browser: Browser, mail_server: Server, inbox, viewport, scheme
):
    handler, _ = inbox
    base = mail_server.http_url
    username = f"pw{uuid.uuid4().hex[:10]}"
    email = f"{username}@example.com"
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    name = f"{'desktop' if viewport is DESKTOP else 'phone'}-{scheme}"
    try:
        page = context.new_page()
        # Sign up with an email.
        page.goto(f"{base}/accounts/signup/")
        expect(page.locator("input[name=email]")).to_have_attribute("dir", "auto")
        no_serious_violations(page)
        page.locator("input[name=username]").fill(username)
        page.locator("input[name=email]").fill(email)
        page.locator("input[name=password1]").fill(PASSWORD)
        page.locator("input[name=password2]").fill(PASSWORD)
        page.get_by_test_id("signup-submit").click()
        expect(page.get_by_test_id("username")).to_have_text(username)

        # Change the password, keyboard only.
        page.goto(f"{base}/accounts/password_change/")
        expect(page.locator("input[name=old_password]")).to_have_attribute("dir", "auto")
        no_serious_violations(page)
        if viewport is PHONE:
            assert page.evaluate(WIDER_THAN_THE_SCREEN) == []
        if name in ("desktop-light", "phone-dark"):
            page.screenshot(path=SHOTS / f"screenshot-password-{name}.png", full_page=True)
        tab_to(page, "input[name=old_password]")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Tab")
        page.keyboard.type(NEW_PASSWORD)
        tab_to(page, "input[name=new_password2]")
        page.keyboard.type(NEW_PASSWORD)
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("password-changed")).to_be_visible()
        no_serious_violations(page)

        # Log out other sessions with the keyboard.
        page.goto(f"{base}/accounts/password_change/")
        tab_to(page, "[data-testid=logout-other-sessions]")
        page.keyboard.press("Enter")
        expect(page.get_by_text("Your other sessions were logged out.")).to_be_visible()
        no_serious_violations(page)

        # Log out; "Forgot your password?" from the login page, keyboard only.
        page.get_by_test_id("logout-button").click()
        expect(page).to_have_url(f"{base}/accounts/login/")
        no_serious_violations(page)
        tab_to(page, "[data-testid=forgot-password]")
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{base}/accounts/password_reset/")
        expect(page.locator("input[name=email]")).to_have_attribute("dir", "auto")
        no_serious_violations(page)
        if viewport is PHONE:
            assert page.evaluate(WIDER_THAN_THE_SCREEN) == []
        tab_to(page, "input[name=email]")
        page.keyboard.type(email)
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("password-reset-sent")).to_be_visible()
        no_serious_violations(page)

        # The email's link: a new password, once.
        link = handler.link_for(email)
        page.goto(base + link)
        expect(page.locator("input[name=new_password1]")).to_be_visible()
        no_serious_violations(page)
        tab_to(page, "input[name=new_password1]")
        page.keyboard.type("x" + NEW_PASSWORD)
        tab_to(page, "input[name=new_password2]")  # past the "Password rules" summary
        page.keyboard.type("x" + NEW_PASSWORD)
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("password-reset-complete")).to_be_visible()
        no_serious_violations(page)
        page.goto(base + link)
        expect(page.get_by_test_id("password-reset-invalid")).to_be_visible()
        no_serious_violations(page)

        # The new password logs in.
        page.goto(f"{base}/accounts/login/")
        page.locator("input[name=username]").fill(username)
        page.locator("input[name=password]").fill("x" + NEW_PASSWORD)
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("username")).to_have_text(username)
    finally:
        context.close()
