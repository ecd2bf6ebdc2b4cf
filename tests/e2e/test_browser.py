"""End-to-end tests in a real browser: two tabs, one live stream.

Headless Chromium drives the product served by daphne with the production settings, through
its pages only (forms, composer, buttons), and checks what a person would see: tool cards,
the answer growing, the same stream in every tab, stop, reconnection, errors and escaping.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.e2e.proxy import TcpProxy
from tests.fake_openai import FakeOpenAI, StreamResponse, split_text, tool_calls_chunks
from tests.live_server import PASSWORD, Deployment, Server
from tests.support.browser import (
    answer_of,
    ask,
    assistant,
    conversation_id,
    counting,
    new_conversation,
    open_tab,
    record_dialogs,
    sign_up,
    tool_card,
    wait_connected,
    wait_status,
)

ROOT = Path(__file__).resolve().parents[2]
# The README's picture is refreshed only when asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
SCREENSHOT = (
    ROOT / "docs" / "screenshot-two-tabs.png"
    if os.environ.get("UPDATE_SCREENSHOT")
    else Path(tempfile.gettempdir()) / "agentchat-screenshot-two-tabs.png"
)

ARITHMETIC = "What is (3 + 4) * 2?"
ERROR_PROMPT = "please simulate an error"
XSS_USER = "<img src=x onerror=alert(1)> and <script>alert(2)</script>"
XSS_ANSWER = "<img src=x onerror=alert(1)><script>alert(2)</script>"


# --- pages ---------------------------------------------------------------------------------------


def expect_arithmetic_tools(page: Page) -> None:
    """The two tool cards of (3 + 4) * 2, with their arguments and results."""
    expect(page.get_by_test_id("tool-card")).to_have_count(2)
    for name, args, result in (("add", '{"x": 3, "y": 4}', "7"), ("multiply", '{"x": 7, "y": 2}', "14")):
        card = tool_card(page, name)
        expect(card).to_have_attribute("data-state", "done")
        expect(card.get_by_test_id("tool-args")).to_have_text(args)
        expect(card.get_by_test_id("tool-result")).to_have_text(result)


LIVE_ANSWER_JS = """() => {
  const messages = document.querySelectorAll('[data-testid="message"][data-role="assistant"]');
  const msg = messages[messages.length - 1];
  if (!msg) return null;
  const text = msg.querySelector('[data-testid="answer"]').textContent;
  return msg.dataset.status === "generating" && text !== "" ? text : null;
}"""

ANSWER_STATE_JS = """() => {
  const messages = document.querySelectorAll('[data-testid="message"][data-role="assistant"]');
  const msg = messages[messages.length - 1];
  if (!msg) return null;
  return {status: msg.dataset.status, text: msg.querySelector('[data-testid="answer"]').textContent,
          tools: document.querySelectorAll('[data-testid="tool-card"]').length};
}"""


def live_answer(page: Page) -> str:
    """Wait until the last answer is shown while it is still being written; that partial text."""
    return page.wait_for_function(LIVE_ANSWER_JS, polling="raf").json_value()


def sample_answer(page: Page, timeout: float = 20) -> list[dict]:
    """Read the last answer as fast as possible until it is complete; every distinct state seen."""
    samples: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page.evaluate(ANSWER_STATE_JS)
        if state and (not samples or state != samples[-1]):
            samples.append(state)
        if state and state["status"] != "generating":
            return samples
    raise AssertionError(f"the answer did not finish in {timeout} s: {samples[-3:]}")


def stored_assistant_messages(deployment: Deployment, url: str) -> list[tuple]:
    return deployment.query(
        "SELECT status, content FROM conversations_message WHERE conversation_id = %s AND role = 'assistant' "
        "ORDER BY id",
        conversation_id(url),
    )


# --- scenarios ------------------------------------------------------------------------------------


def test_sign_up_log_in_ask_and_reload(context: BrowserContext, server: Server, deployment: Deployment):
    page = context.new_page()
    base = server.http_url
    username = sign_up(page, base)

    page.get_by_test_id("logout-button").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_test_id("logout-button")).to_have_count(0)
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_test_id("username")).to_have_text(username)

    url = new_conversation(page, base)
    expect(page.get_by_test_id("model-badge")).to_contain_text("Offline demo model")
    ask(page, ARITHMETIC)
    expect(page.get_by_test_id("user-message")).to_have_text(ARITHMETIC)
    samples = sample_answer(page)
    final = samples[-1]
    assert final["status"] == "completed", samples[-3:]
    assert final["text"].endswith("= 14."), final

    # The answer grew through several distinct prefixes, after both tool cards were there.
    texts = list(dict.fromkeys(s["text"] for s in samples if s["text"]))
    assert len(texts) >= 4, texts
    for shorter, longer in pairwise(texts):
        assert longer.startswith(shorter) and len(longer) > len(shorter), (shorter, longer)
    assert all(s["tools"] == 2 for s in samples if s["text"]), samples
    expect_arithmetic_tools(page)
    expect(answer_of(page)).to_have_text(final["text"])

    page.reload()
    wait_connected(page)
    expect(page.get_by_test_id("user-message")).to_have_text([ARITHMETIC])
    expect(page.locator('[data-testid="message"][data-role="assistant"]')).to_have_count(1)
    expect_arithmetic_tools(page)
    expect(answer_of(page)).to_have_text(final["text"])
    wait_status(page, "completed")
    assert stored_assistant_messages(deployment, url) == [("completed", final["text"])]


def test_two_tabs_show_one_live_stream(context: BrowserContext, server: Server, browser: Browser):
    tab1 = context.new_page()
    sign_up(tab1, server.http_url)
    url = new_conversation(tab1, server.http_url)
    tab2 = open_tab(context, url)

    ask(tab1, ARITHMETIC)
    expect(tab2.get_by_test_id("user-message")).to_have_text(ARITHMETIC)
    expect(tab2.get_by_test_id("tool-card")).to_have_count(2)
    partial = live_answer(tab2)
    assert partial and not partial.endswith("= 14."), partial

    wait_status(tab1, "completed")
    wait_status(tab2, "completed")
    for tab in (tab1, tab2):
        expect_arithmetic_tools(tab)
    final = answer_of(tab1).text_content()
    assert final.startswith(partial) and final.endswith("= 14."), (partial, final)
    expect(answer_of(tab2)).to_have_text(final)

    for tab in (tab1, tab2):  # a shorter window: the conversation fills the picture
        tab.set_viewport_size({"width": 800, "height": 580})
    save_side_by_side(browser, tab1.screenshot(), tab2.screenshot())


def save_side_by_side(browser: Browser, left: bytes, right: bytes) -> None:
    """Compose the two tabs' screenshots into one image for the docs."""

    def panel(png: bytes, title: str) -> str:
        data = base64.b64encode(png).decode()
        return f'<figure><figcaption>{title}</figcaption><img src="data:image/png;base64,{data}"></figure>'

    html = (
        "<style>body{margin:0;background:#1f2430}main{display:flex;gap:20px;padding:20px 20px 24px;"
        "background:#1f2430;font:600 16px system-ui,sans-serif;color:#e8eaf0}figure{margin:0;flex:1}"
        "figcaption{margin:0 0 10px}img{width:100%;display:block;border-radius:10px;"
        "box-shadow:0 8px 28px rgba(0,0,0,.45)}</style><main>"
        + panel(left, "Tab 1 — asks the question")
        + panel(right, "Tab 2 — the same conversation, live")
        + "</main>"
    )
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    try:
        page.set_content(html)
        page.locator("main").screenshot(path=str(SCREENSHOT))
    finally:
        page.close()


def test_tab_opened_mid_answer_catches_up_without_doubling(context: BrowserContext, server: Server):
    question, expected = counting(200)
    tab1 = context.new_page()
    sign_up(tab1, server.http_url)
    url = new_conversation(tab1, server.http_url)
    ask(tab1, question)
    expect(answer_of(tab1)).to_contain_text("20, 21, ")
    wait_status(tab1, "generating")

    tab3 = open_tab(context, url)
    already = live_answer(tab3)
    assert expected.startswith(already) and "20, 21, " in already, already

    wait_status(tab1, "completed")
    wait_status(tab3, "completed")
    expect(answer_of(tab3)).to_have_text(expected)
    expect(answer_of(tab1)).to_have_text(expected)
    expect(tab3.get_by_test_id("user-message")).to_have_text([question])
    expect(tab3.locator('[data-testid="message"][data-role="assistant"]')).to_have_count(1)


def test_stop_from_the_other_tab(context: BrowserContext, server: Server, deployment: Deployment):
    question, expected = counting(200)
    tab1 = context.new_page()
    sign_up(tab1, server.http_url)
    url = new_conversation(tab1, server.http_url)
    tab2 = open_tab(context, url)
    ask(tab1, question)
    expect(answer_of(tab2)).to_contain_text("10, 11, ")
    tab2.get_by_test_id("stop-button").click()

    for tab in (tab1, tab2):
        wait_status(tab, "cancelled")
        expect(assistant(tab).get_by_text("Stopped", exact=True)).to_be_visible()
        expect(tab.get_by_test_id("send-button")).to_be_visible()
    shown = answer_of(tab1).text_content()
    assert shown and expected.startswith(shown) and len(shown) < len(expected), shown
    expect(answer_of(tab2)).to_have_text(shown)
    # The answer is rendered as Markdown, which drops a paragraph's trailing space ("24, " shows as "24,").
    stored = [(status, text.rstrip()) for status, text in stored_assistant_messages(deployment, url)]
    assert stored == [("cancelled", shown)]


def test_reconnects_after_the_connection_drops_mid_answer(browser: Browser, server: Server):
    question, expected = counting(400)
    proxy = TcpProxy(server.port, lifetime=90).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_up(page, proxy.http_url)
        new_conversation(page, proxy.http_url)
        ask(page, question)
        expect(answer_of(page)).to_contain_text("10, 11, ")

        proxy.cut(refuse_seconds=2.0)
        status = page.get_by_test_id("connection-status")
        expect(status).to_have_attribute("data-state", "reconnecting")
        expect(page.locator("[data-reconnect-banner]")).to_be_visible()
        expect(page.locator("[data-reconnect-banner]")).to_contain_text("Reconnecting")
        expect(status).to_have_attribute("data-state", "open")
        expect(page.locator("[data-reconnect-banner]")).to_be_hidden()
        assert page.evaluate(ANSWER_STATE_JS)["status"] == "generating", "the answer ended before reconnection"

        wait_status(page, "completed")
        expect(answer_of(page)).to_have_text(expected)
        expect(page.get_by_test_id("user-message")).to_have_text([question])
        expect(page.locator('[data-testid="message"][data-role="assistant"]')).to_have_count(1)
    finally:
        context.close()
        proxy.stop()


def expect_shown_as_text(page: Page, locator: Locator, text: str) -> None:
    expect(locator).to_have_text(text)
    expect(locator).to_be_visible()
    message_list = page.get_by_test_id("message-list")
    expect(message_list.locator("img")).to_have_count(0)
    expect(message_list.locator("script")).to_have_count(0)


def test_user_message_html_is_shown_as_text(context: BrowserContext, server: Server):
    page = context.new_page()
    dialogs = record_dialogs(page)
    sign_up(page, server.http_url)
    new_conversation(page, server.http_url)
    ask(page, XSS_USER)
    wait_status(page, "completed")
    expect_shown_as_text(page, page.get_by_test_id("user-message"), XSS_USER)

    page.reload()  # from storage, and in the title and sidebar rendered by the server
    wait_connected(page)
    expect_shown_as_text(page, page.get_by_test_id("user-message"), XSS_USER)
    expect(page.get_by_test_id("conversation-link").first).to_contain_text("<img src=x")
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []


def test_model_answer_html_is_shown_as_text(
    context: BrowserContext, openai_server: Server, fake_openai_server: FakeOpenAI
):
    arguments = json.dumps({"answer": XSS_ANSWER, "tools_used": []})
    answer_step = tool_calls_chunks([("call_final", "final_answer", split_text(arguments, 7))])
    fake_openai_server.enqueue(StreamResponse(answer_step))
    page = context.new_page()
    dialogs = record_dialogs(page)
    sign_up(page, openai_server.http_url)
    new_conversation(page, openai_server.http_url)
    expect(page.get_by_test_id("model-badge")).to_contain_text("gpt-4o-mini")
    ask(page, XSS_USER)
    wait_status(page, "completed")
    expect_shown_as_text(page, answer_of(page), XSS_ANSWER)
    expect_shown_as_text(page, page.get_by_test_id("user-message"), XSS_USER)
    expect(page.get_by_test_id("tool-card")).to_have_count(0)

    page.reload()
    wait_connected(page)
    expect_shown_as_text(page, answer_of(page), XSS_ANSWER)
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []


SOCKET_PROBE_JS = """(url) => new Promise((resolve) => {
  const seen = {opened: false, frames: [], errored: false, closed: false, code: null};
  const ws = new WebSocket(url);
  const finish = () => resolve(seen);
  ws.onopen = () => { seen.opened = true; };
  ws.onmessage = (e) => { seen.frames.push(JSON.parse(e.data).type); ws.close(); };
  ws.onerror = () => { seen.errored = true; };
  ws.onclose = (e) => { seen.closed = true; seen.code = e.code; finish(); };
  setTimeout(finish, 10000);
})"""


def test_another_user_cannot_open_the_conversation(browser: Browser, context: BrowserContext, server: Server):
    owner = context.new_page()
    sign_up(owner, server.http_url)
    url = new_conversation(owner, server.http_url)
    ask(owner, ARITHMETIC)
    wait_status(owner, "completed")

    other_context = browser.new_context()
    try:
        other = other_context.new_page()
        sign_up(other, server.http_url)
        response = other.goto(url)
        assert response is not None and response.status == 404
        expect(other.get_by_text(ARITHMETIC)).to_have_count(0)

        own_url = new_conversation(other, server.http_url)  # its own socket works, from the same page
        ws_base = server.http_url.replace("http://", "ws://")
        own = other.evaluate(SOCKET_PROBE_JS, f"{ws_base}/ws/conversations/{conversation_id(own_url)}/")
        assert own["opened"] and own["frames"] == ["snapshot"], own
        foreign = other.evaluate(SOCKET_PROBE_JS, f"{ws_base}/ws/conversations/{conversation_id(url)}/")
        assert foreign["closed"] and not foreign["opened"] and foreign["frames"] == [], foreign
        assert foreign["errored"], foreign
    finally:
        other_context.close()


def test_model_failure_shows_a_readable_error_and_the_composer_recovers(context: BrowserContext, server: Server):
    page = context.new_page()
    sign_up(page, server.http_url)
    new_conversation(page, server.http_url)
    ask(page, ERROR_PROMPT)

    error = page.get_by_test_id("run-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("The model failed")
    expect(error).to_contain_text("failed on purpose")
    wait_status(page, "error")
    expect(assistant(page).get_by_text("Error", exact=True)).to_be_visible()

    composer = page.get_by_test_id("composer-input")
    expect(composer).to_be_enabled()
    ask(page, ARITHMETIC)
    wait_status(page, "completed", index=1)
    expect(answer_of(page, 1)).to_contain_text("= 14.")
    expect(page.get_by_test_id("user-message")).to_have_text([ERROR_PROMPT, ARITHMETIC])
    expect(page.get_by_test_id("run-error")).to_have_count(1)
