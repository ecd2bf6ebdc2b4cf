"""The Content-Security-Policy in Chromium: under it an answer streams and renders with its Markdown,
code, table and math, and every page (the chat's, the account's, the admin's) loads without one
violation reported, in the console or as a `securitypolicyviolation` event."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks, split_text
from tests.live_server import PASSWORD, Deployment, Server
from tests.support.browser import answer_of, ask, conversation_id, new_conversation, sign_up, wait_status

ANSWER = (
    "## Two sums\n\n"
    "| x | x + x |\n|:--|--:|\n| 1 | 2 |\n| 10 | 20 |\n\n"
    "- **bold**, *italic* and `code`\n- a [link](https://example.com/)\n\n"
    "```python\nprint(10 + 10)\n```\n\n"
    "Energy is $E=mc^2$, and\n\n"
    "$$\\int_0^1 x\\,dx = \\frac{1}{2}$$\n"
)
RECORD_VIOLATIONS_JS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`);
});
"""
# KaTeX's boxes took their inline styles, markdown-it's right-aligned column its own.
STYLES_APPLIED_JS = """(answer) => {
  const strut = answer.querySelector(".katex .katex-strut, .katex .strut");
  return {
    strutHeight: strut.style.height,
    strutComputed: getComputedStyle(strut).height,
    cellAlign: getComputedStyle(answer.querySelector("td:last-child")).textAlign,
  };
}"""


class ViolationLog:
    """Every report of the policy in a browser profile: console messages and violation events."""

    def __init__(self, context: BrowserContext) -> None:
        self.console: list[str] = []
        self.pages: list[Page] = []
        context.add_init_script(RECORD_VIOLATIONS_JS)
        context.on("page", self.watch)

    def watch(self, page: Page) -> None:
        self.pages.append(page)
        page.on("console", self.on_console)

    def on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def events(self, page: Page) -> list[str]:
        return page.evaluate("() => window.__cspViolations")


@pytest.fixture
def violations(context: BrowserContext) -> ViolationLog:
    return ViolationLog(context)


def visit(page: Page, url: str, violations: ViolationLog) -> None:
    """Load `url`, check it answered with the policy, and that it reported no violation."""
    response = page.goto(url)
    assert response is not None and response.ok, (url, response and response.status)
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    page.wait_for_load_state("networkidle")
    assert violations.events(page) == [], url


def test_an_answer_with_markdown_and_math_renders_with_no_violation(
    context: BrowserContext, openai_server: Server, fake_openai_server: FakeOpenAI, violations: ViolationLog
):
    fake_openai_server.enqueue(StreamResponse(content_chunks(split_text(ANSWER, 4)), delay=0.01))
    page = context.new_page()
    sign_up(page, openai_server.http_url)
    new_conversation(page, openai_server.http_url)
    ask(page, "Two sums and a formula, please")
    wait_status(page, "completed")

    answer = answer_of(page)
    expect(answer.locator("h2")).to_have_text("Two sums")
    expect(answer.locator("table td")).to_have_count(4)
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.get_by_test_id("code-block")).to_contain_text("print(10 + 10)")
    expect(answer.locator(".katex")).to_have_count(2)
    expect(answer.locator(".katex-display")).to_have_count(1)
    styles = answer.evaluate(STYLES_APPLIED_JS)
    assert styles["strutHeight"].endswith("em") and styles["strutComputed"] != "auto", styles
    assert styles["cellAlign"] == "right", styles

    page.reload()
    wait_status(page, "completed")
    expect(answer_of(page).locator(".katex")).to_have_count(2)
    page.wait_for_load_state("networkidle")
    assert violations.events(page) == []
    assert violations.console == []


def test_every_page_and_the_admin_load_with_no_violation(
    context: BrowserContext, deployment: Deployment, server: Server, violations: ViolationLog
):
    page = context.new_page()
    for path in ["/accounts/login/", "/accounts/signup/"]:
        visit(page, server.http_url + path, violations)
    sign_up(page, server.http_url)
    chat = new_conversation(page, server.http_url)
    ask(page, "What is 10 + 10?")
    wait_status(page, "completed")
    for path in ["/", "/?q=sum", chat.removeprefix(server.http_url), "/account/tokens/"]:
        visit(page, server.http_url + path, violations)

    admin = f"csp{uuid.uuid4().hex[:10]}"
    deployment.manage(
        "shell",
        "-c",
        f"from django.contrib.auth.models import User; User.objects.create_superuser({admin!r}, password={PASSWORD!r})",
    )
    visit(page, f"{server.http_url}/admin/login/", violations)
    page.locator("#id_username").fill(admin)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    expect(page.get_by_test_id("review-links")).to_be_visible()
    admin_pages = [
        "/admin/",
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{conversation_id(chat)}/change/",
        "/admin/conversations/conversation/usage/",
        "/admin/api/apitoken/",
        "/admin/auth/user/",
        "/admin/auth/user/add/",
    ]
    for path in admin_pages:
        visit(page, server.http_url + path, violations)
    assert violations.console == []
