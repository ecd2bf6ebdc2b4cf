"""The assistant's answer as Markdown, in Chromium: rendered while it streams, in two tabs and after a
reload; raw HTML, scripts, images and `javascript:` links from the model stay inert; and the page fixes
around a running answer (Esc stops it, focus after Stop, the busy notice, the sidebar's live dot, tool
results on a phone)."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks, split_text
from tests.live_server import Server
from tests.support.browser import (
    EXPECT_TIMEOUT_MS,
    answer_of,
    ask,
    assistant,
    counting,
    hostile_answer_page,
    new_conversation,
    open_tab,
    sign_up,
    tool_card,
    wait_connected,
    wait_status,
)

CODE = 'def greet(name: str) -> str:\n    """Say hello."""\n    return f"Hello, {name}!"\n\nprint(greet("world"))'
MARKDOWN_ANSWER = (
    "Here is a **comparison** of the three options, with `inline code`:\n\n"
    "| Option | Speed | Memory |\n"
    "|:-------|------:|-------:|\n"
    "| Lists | fast | 12 MB |\n"
    "| Dicts | faster | 20 MB |\n"
    "| Sets | fastest | 18 MB |\n\n"
    f"```python\n{CODE}\n```\n\n"
    "Things to remember:\n\n"
    "- measure before you optimise\n"
    "- prefer the *simplest* structure\n"
    "- read the [Python docs](https://docs.python.org/3/) for details\n\n"
    "> Premature optimisation is the root of all evil.\n\n"
    "That is all there is to it: pick the structure that matches how the data is read, keep it simple, "
    "and measure again after every change so the numbers, not the guesses, decide."
)
HOSTILE_ANSWER = (
    "<img src=x onerror=alert(1)>\n\n"
    "<script>alert(2)</script>\n\n"
    "Click [x](javascript:alert(1)) or [y](data:text/html,<b>hi</b>).\n\n"
    "![a picture](http://127.0.0.1:9/x.png)"
)

# Every element the answer should have, found in the last assistant message while it still streams.
RENDERED_WHILE_STREAMING_JS = """() => {
  const msgs = document.querySelectorAll('[data-testid="message"][data-role="assistant"]');
  const msg = msgs[msgs.length - 1];
  if (!msg || msg.dataset.status !== "generating") return false;
  const a = msg.querySelector('[data-testid="answer"]');
  const ok = a.querySelector("table tbody tr") && a.querySelector("pre code.language-python .hljs-keyword")
    && a.querySelector("ul li") && a.querySelector('a[href="https://docs.python.org/3/"]');
  if (ok) window.__firstTable = a.querySelector("table");
  return !!ok;
}"""


def expect_markdown(page: Page) -> None:
    answer = answer_of(page)
    expect(answer.locator("table th")).to_have_text(["Option", "Speed", "Memory"])
    expect(answer.locator("table tbody tr")).to_have_count(3)
    expect(answer.locator("table td").nth(1)).to_have_css("text-align", "right")
    expect(answer.locator("strong")).to_have_text("comparison")
    expect(answer.locator("p code")).to_have_text("inline code")
    code = answer.locator("pre code.language-python")
    expect(code).to_have_text(CODE)
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    expect(answer.get_by_test_id("code-copy")).to_have_count(1)
    expect(answer.locator("ul > li")).to_have_count(3)
    expect(answer.locator("em")).to_have_text("simplest")
    link = answer.locator("a", has_text="Python docs")
    expect(link).to_have_attribute("href", "https://docs.python.org/3/")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(answer.locator("blockquote")).to_contain_text("Premature optimisation")
    # Markdown syntax is not left over as text.
    expect(answer).not_to_contain_text("```")
    expect(answer).not_to_contain_text("|---")
    expect(answer).not_to_contain_text("**")


def test_markdown_renders_while_it_streams_in_two_tabs_and_after_reload(
    browser: Browser, openai_server: Server, fake_openai_server: FakeOpenAI
):
    context = browser.new_context(
        viewport={"width": 1100, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    try:
        fake_openai_server.enqueue(StreamResponse(content_chunks(split_text(MARKDOWN_ANSWER, 3)), delay=0.012))
        page = context.new_page()
        sign_up(page, openai_server.http_url)
        url = new_conversation(page, openai_server.http_url)
        other = open_tab(context, url)
        ask(page, "Compare lists, dicts and sets")

        for tab in (page, other):
            # Rendered as Markdown before the answer ends, in both tabs.
            tab.wait_for_function(RENDERED_WHILE_STREAMING_JS, polling="raf")
            # The sidebar's row of this conversation shows its "generating" dot live.
            current = tab.locator('[data-testid="conversation-link"][aria-current="page"]')
            if current.count():
                expect(current).to_have_class(re.compile(r"\bis-generating\b"))

        for tab in (page, other):
            wait_status(tab, "completed")
            expect_markdown(tab)
            # The finished blocks kept their DOM while the rest streamed in (no re-render of the whole answer).
            assert tab.evaluate("() => window.__firstTable.isConnected")
            current = tab.locator('[data-testid="conversation-link"][aria-current="page"]')
            if current.count():
                expect(current).not_to_have_class(re.compile(r"\bis-generating\b"))

        # The code block's copy button copies the code, and the message's copy button the Markdown.
        page.get_by_test_id("code-copy").click()
        expect(page.get_by_test_id("code-copy")).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == CODE
        assistant(page).locator(".msg__copy").click()
        assert page.evaluate("() => navigator.clipboard.readText()") == MARKDOWN_ANSWER

        other.reload()
        wait_connected(other)
        wait_status(other, "completed")
        expect_markdown(other)
    finally:
        context.close()


def test_html_scripts_images_and_javascript_links_from_the_model_stay_inert(
    context: BrowserContext, openai_server: Server, fake_openai_server: FakeOpenAI
):
    page, dialogs, fetched = hostile_answer_page(
        context, openai_server, fake_openai_server, HOSTILE_ANSWER, "Say something hostile", 5
    )

    def check() -> None:
        answer = answer_of(page)
        expect(answer).to_contain_text("<img src=x onerror=alert(1)>")
        expect(answer).to_contain_text("<script>alert(2)</script>")
        expect(answer).to_contain_text("[x](javascript:alert(1))")
        messages = page.get_by_test_id("message-list")
        expect(messages.locator("img")).to_have_count(0)
        expect(messages.locator("script")).to_have_count(0)
        expect(messages.locator("[onerror]")).to_have_count(0)
        for a in answer.locator("a").all():
            href = (a.get_attribute("href") or "").strip().lower()
            assert not href.startswith(("javascript:", "data:")), href
        # The model's image is a link named by its alt text, never loaded.
        expect(answer.locator("a.md-image")).to_have_text("a picture")
        page.wait_for_timeout(300)
        assert not [u for u in fetched if u.endswith("/x") or u.endswith("x.png") or u.startswith("javascript:")]
        assert dialogs == []

    check()
    page.reload()
    wait_connected(page)
    check()


def test_esc_stops_focus_returns_to_the_composer_and_the_busy_notice_clears(context: BrowserContext, server: Server):
    page = context.new_page()
    sign_up(page, server.http_url)
    new_conversation(page, server.http_url)
    composer = page.get_by_test_id("composer-input")
    current = page.locator('[data-testid="conversation-link"][aria-current="page"]')

    # Esc in the composer stops the running answer.
    ask(page, counting(60)[0])
    expect(answer_of(page)).not_to_have_text("")
    composer.focus()
    page.keyboard.press("Escape")
    wait_status(page, "cancelled")
    expect(composer).to_be_focused()

    # Stop by mouse: the focus ends in the composer, not on <body>.
    ask(page, counting(60)[0])
    expect(answer_of(page)).not_to_have_text("")
    if current.count():
        expect(current).to_have_class(re.compile(r"\bis-generating\b"))
    page.get_by_test_id("stop-button").click()
    wait_status(page, "cancelled")
    expect(composer).to_be_focused()
    if current.count():
        expect(current).not_to_have_class(re.compile(r"\bis-generating\b"))

    # "Still answering" clears itself when the answer ends.
    ask(page, counting(12)[0])
    expect(answer_of(page)).not_to_have_text("")
    composer.fill("another question")
    composer.press("Enter")
    busy = page.locator('[data-testid="notice"][data-code="busy"]')
    expect(busy).to_be_visible()
    wait_status(page, "completed")
    expect(busy).to_have_count(0)
    expect(composer).to_have_value("another question")


def test_tool_results_are_not_cut_on_a_phone(browser: Browser, server: Server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_up(page, server.http_url)
        new_conversation(page, server.http_url)
        ask(page, "What is (3 + 4) * 2?")
        wait_status(page, "completed")
        for name, result in (("add", "7"), ("multiply", "14")):
            shown = tool_card(page, name).get_by_test_id("tool-result")
            expect(shown).to_have_text(result)
            assert shown.evaluate("e => e.scrollWidth <= e.clientWidth"), f"{name}'s result is cut"
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()
