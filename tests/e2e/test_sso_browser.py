"""Single sign-on in a real browser against a real provider (`tests/oidc_provider`): with password login
and sign-up off, the login page (only the button), the closed sign-up page, the password page and the
delete page of an SSO account pass axe-core light and dark, desktop and phone, fit the screen, and the
button works from the keyboard."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.live_server import Deployment, Server, free_port
from tests.oidc_provider.running import start_provider
from tests.support.browser import WIDER_THAN_THE_SCREEN, serious_violations

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 800}
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
)


@pytest.fixture(scope="module")
def sso_server(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    people = [
        {"username": f"person{n}", "password": "provider-pass-123", "email": f"p{n}@example.com", "groups": ["eng"]}
        for n in range(4)
    ]
    provider = start_provider(
        redirect_uri=f"http://127.0.0.1:{port}/accounts/sso/callback/",
        users=people,
        workdir=tmp_path_factory.mktemp("provider"),
    )
    try:
        yield deployment.start_server(
            port=port,
            **provider.product_env,
            OIDC_BUTTON_LABEL="Sign in with Example Corp",
            PASSWORD_LOGIN_ENABLED="0",
            SIGNUP_ENABLED="0",
        )
    finally:
        provider.stop()


def page_is_fine(page: Page) -> None:
    assert serious_violations(page) == []
    assert page.evaluate(WIDER_THAN_THE_SCREEN) == []


@pytest.mark.parametrize(
    ("n", "viewport", "scheme", "suffix"),
    [
        (0, DESKTOP, "light", "desktop-light"),
        (1, PHONE, "dark", "phone-dark"),
        (2, DESKTOP, "dark", None),
        (3, PHONE, "light", None),
    ],
)
def test_sso_pages_pass_axe_and_sign_in_works_from_the_keyboard(
    browser: Browser, sso_server: Server, n: int, viewport: dict, scheme: str, suffix: str | None
) -> None:
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(sso_server.http_url + "/accounts/signup/")
        expect(page.get_by_test_id("closed-message")).to_contain_text("Sign-up is closed")
        page_is_fine(page)

        page.goto(sso_server.http_url + "/accounts/login/")
        button = page.get_by_test_id("sso-login")
        expect(button).to_have_text("Sign in with Example Corp")
        assert page.locator("input[type=password]").count() == 0
        page_is_fine(page)
        if suffix:
            page.screenshot(path=str(SHOTS / f"screenshot-sso-login-{suffix}.png"))

        for _ in range(30):  # by keyboard: Tab to the button, Enter
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement?.dataset?.testid") == "sso-login":
                break
        else:
            pytest.fail("the sign-in button never got the keyboard focus")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
        page.fill("#id_username", f"person{n}")
        page.fill("#id_password", "provider-pass-123")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator(".user-chip")).to_have_attribute("title", f"Signed in as person{n}")

        page.goto(sso_server.http_url + "/accounts/password_change/")
        expect(page.get_by_test_id("passwords-managed")).to_be_visible()
        page_is_fine(page)
        page.goto(sso_server.http_url + "/accounts/delete/")
        expect(page.get_by_test_id("delete-account")).to_be_visible()  # signed in through the provider just now
        page_is_fine(page)
    finally:
        context.close()
