"""The product's pages in Chromium (Playwright's sync API), as a person uses them: sign up, a new
conversation, ask, and what the page shows of the answer."""

from __future__ import annotations

import re
import uuid

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks, split_text
from tests.live_server import PASSWORD, Server

EXPECT_TIMEOUT_MS = 20_000
"""How long an `expect` or a page action waits (a loaded machine is slow, a passing test does not wait)."""
WIDER_THAN_THE_SCREEN = """[document.body, ...document.querySelectorAll('body *')]
  .filter((e) => e.getBoundingClientRect().right > innerWidth + 1)
  .map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)
    + ' ' + getComputedStyle(e).display)"""
"""A script listing the elements that reach past the right edge of the window (none on a phone)."""


def counting(n: int) -> tuple[str, str]:
    """A slow question for the offline model and its exact answer."""
    return f"count to {n}", ", ".join(str(i) for i in range(1, n + 1)) + "."


def sign_up(page: Page, base_url: str) -> str:
    """Create an account through the sign-up form; the new username (logged in, unique)."""
    username = f"e2e{uuid.uuid4().hex[:10]}"
    page.goto(f"{base_url}/accounts/signup/")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page).to_have_url(f"{base_url}/")
    expect(page.get_by_test_id("username")).to_have_text(username)
    return username


def new_conversation(page: Page, base_url: str) -> str:
    """Create a conversation with the list page's button; its URL, open and connected."""
    page.goto(f"{base_url}/")
    page.get_by_test_id("new-conversation").first.click()
    expect(page).to_have_url(re.compile(r"/conversations/\d+/$"))
    wait_connected(page)
    return page.url


def conversation_id(url: str) -> int:
    match = re.search(r"/conversations/(\d+)/", url)
    assert match, url
    return int(match.group(1))


def open_tab(context: BrowserContext, url: str) -> Page:
    """Another tab of the same browser on `url`, connected."""
    page = context.new_page()
    page.goto(url)
    wait_connected(page)
    return page


def wait_connected(page: Page) -> None:
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")


def ask(page: Page, text: str) -> None:
    page.get_by_test_id("composer-input").fill(text)
    page.get_by_test_id("send-button").click()


def assistant(page: Page, index: int = -1) -> Locator:
    messages = page.locator('[data-testid="message"][data-role="assistant"]')
    return messages.last if index == -1 else messages.nth(index)


def answer_of(page: Page, index: int = -1) -> Locator:
    return assistant(page, index).get_by_test_id("answer")


def wait_status(page: Page, status: str, index: int = -1) -> None:
    expect(assistant(page, index)).to_have_attribute("data-status", status)


def tool_card(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="tool-card"][data-tool-name="{name}"]')


def record_dialogs(page: Page) -> list[str]:
    """Every alert/confirm/prompt the page opens (dismissed at once)."""
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


def hostile_answer_page(
    context: BrowserContext, server: Server, fake: FakeOpenAI, answer: str, question: str, pieces: int
) -> tuple[Page, list[str], list[str]]:
    """A new user's page that asked `question` and got `answer` streamed in `pieces` pieces; the
    page, the dialogs it opened and the URLs it fetched (recorded from the start)."""
    fake.enqueue(StreamResponse(content_chunks(split_text(answer, pieces)), delay=0.005))
    page = context.new_page()
    dialogs = record_dialogs(page)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    sign_up(page, server.http_url)
    new_conversation(page, server.http_url)
    ask(page, question)
    wait_status(page, "completed")
    return page, dialogs, fetched


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now (none is the bar)."""
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
