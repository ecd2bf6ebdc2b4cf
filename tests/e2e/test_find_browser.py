"""Conversations you can find, in a real browser: rename, search, export, delete from the chat
page, no empty conversation left behind by "New chat", and the small fixes around them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect

from tests.live_server import Deployment, Server
from tests.support.browser import (
    WIDER_THAN_THE_SCREEN,
    ask,
    conversation_id,
    new_conversation,
    sign_up,
    wait_connected,
    wait_status,
)

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1200, "height": 900}  # wide enough for the sidebar


def chat_with(page: Page, base: str, question: str) -> str:
    """A new conversation with `question` asked and answered; its URL."""
    url = new_conversation(page, base)
    ask(page, question)
    wait_status(page, "completed")
    return url


def sidebar_titles(page: Page):
    return page.locator('.side-list li:not([hidden]) [data-testid="conversation-link"] .side-link__title')


def test_rename_inline_saves_on_enter_cancels_on_escape_and_survives_a_reload(
    context: BrowserContext, server: Server, deployment: Deployment
):
    page = context.new_page()
    base = server.http_url
    sign_up(page, base)
    url = chat_with(page, base, "What is 2 + 3?")
    title = page.get_by_test_id("chat-title")
    expect(title).to_have_text("What is 2 + 3?")
    other = context.new_page()  # a second tab on the same conversation sees the rename live
    other.goto(url)
    wait_connected(other)

    title.click()
    page.get_by_test_id("rename-input").fill("Throwaway")
    page.get_by_test_id("rename-input").press("Escape")
    expect(page.get_by_test_id("rename-input")).to_have_count(0)
    expect(title).to_have_text("What is 2 + 3?")

    page.get_by_test_id("rename-button").click()
    page.get_by_test_id("rename-input").fill("  Small sums  ")
    page.get_by_test_id("rename-input").press("Enter")
    expect(page.get_by_test_id("rename-input")).to_have_count(0)
    expect(page.get_by_test_id("chat-title")).to_have_text("Small sums")
    expect(page).to_have_title("Small sums · Agent Chat")
    current = page.locator('[data-testid="conversation-link"][aria-current="page"]')
    expect(current).to_contain_text("Small sums")
    expect(other.get_by_test_id("chat-title")).to_have_text("Small sums")
    expect(other).to_have_title("Small sums · Agent Chat")
    expect(other.locator('[data-testid="conversation-link"][aria-current="page"]')).to_contain_text("Small sums")

    page.reload()
    wait_connected(page)
    expect(page.get_by_test_id("chat-title")).to_have_text("Small sums")
    assert deployment.query(
        "SELECT title, title_set_by_user FROM conversations_conversation WHERE id = %s", conversation_id(url)
    ) == [("Small sums", 1)]


def test_sidebar_search_filters_as_you_type_and_the_list_page_searches_too(context: BrowserContext, server: Server):
    page = context.new_page()
    page.set_viewport_size(DESKTOP)
    base = server.http_url
    sign_up(page, base)
    chat_with(page, base, "What is 2 + 3?")
    chat_with(page, base, "count to 3")
    expect(sidebar_titles(page)).to_have_count(2)

    page.get_by_test_id("sidebar-search").fill("COUNT")
    expect(sidebar_titles(page)).to_have_text(["count to 3"])
    page.get_by_test_id("sidebar-search").fill("what 3")
    expect(sidebar_titles(page)).to_have_text(["What is 2 + 3?"])
    page.get_by_test_id("sidebar-search").fill("nothing like this")
    expect(sidebar_titles(page)).to_have_count(0)
    expect(page.get_by_test_id("sidebar-no-match")).to_be_visible()
    page.get_by_test_id("sidebar-search").fill("")
    expect(sidebar_titles(page)).to_have_count(2)

    page.goto(f"{base}/")
    page.get_by_test_id("list-search").fill("count")
    page.get_by_test_id("list-search").press("Enter")
    expect(page).to_have_url(re.compile(r"\?q=count$"))
    expect(page.locator(".conv-row__title")).to_have_text(["count to 3"])
    expect(page.locator(".conv-row time")).to_have_text(["just now"])


def test_export_downloads_markdown_and_json_from_the_chat_menu(context: BrowserContext, server: Server):
    page = context.new_page()
    base = server.http_url
    sign_up(page, base)
    url = chat_with(page, base, "What is 2 + 3?")
    number = conversation_id(url)

    page.get_by_test_id("chat-menu").locator("summary").click()
    with page.expect_download() as markdown:
        page.get_by_test_id("export-md").click()
    assert markdown.value.suggested_filename == f"conversation-{number}-what-is-2-3.md"
    text = Path(markdown.value.path()).read_text(encoding="utf-8")
    assert text.startswith("# What is 2 + 3?\n") and "## You" in text and "## Assistant" in text
    assert '"name": "add"' in text

    summary = page.get_by_test_id("chat-menu").locator("summary")
    expect(summary).to_be_focused()  # choosing closed the menu and gave its button the focus back
    summary.click()
    with page.expect_download() as exported:
        page.get_by_test_id("export-json").click()
    assert exported.value.suggested_filename == f"conversation-{number}-what-is-2-3.json"
    data = json.loads(Path(exported.value.path()).read_text(encoding="utf-8"))
    assert data["id"] == number
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["tool_steps"][0]["name"] == "add"


def test_delete_from_the_chat_page_asks_first_and_lands_on_the_list(
    context: BrowserContext, server: Server, deployment: Deployment
):
    page = context.new_page()
    base = server.http_url
    sign_up(page, base)
    url = chat_with(page, base, "What is 2 + 3?")
    questions: list[str] = []

    def answer(dialog, accept: bool) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.get_by_test_id("chat-menu").locator("summary").click()
    page.get_by_test_id("delete-from-chat").click()
    expect(page).to_have_url(url)

    page.once("dialog", lambda d: answer(d, True))
    page.get_by_test_id("delete-from-chat").click()
    expect(page).to_have_url(f"{base}/")
    assert len(questions) == 2 and questions[0].startswith("Delete this conversation?")
    assert deployment.query("SELECT id FROM conversations_conversation WHERE id = %s", conversation_id(url)) == []


def test_new_chat_twice_leaves_no_empty_conversation_behind(
    context: BrowserContext, server: Server, deployment: Deployment
):
    page = context.new_page()
    page.set_viewport_size(DESKTOP)
    base = server.http_url
    username = sign_up(page, base)
    first = chat_with(page, base, "What is 2 + 3?")

    page.get_by_test_id("new-conversation").click()
    expect(page).to_have_url(re.compile(r"/conversations/\d+/$"))
    empty = page.url
    assert empty != first
    page.get_by_test_id("new-conversation").click()
    expect(page).to_have_url(empty)
    page.goto(f"{base}/")
    page.get_by_test_id("new-conversation").first.click()
    expect(page).to_have_url(empty)

    rows = deployment.query(
        "SELECT c.id, COUNT(m.id) FROM conversations_conversation c JOIN auth_user u ON u.id = c.owner_id "
        "LEFT JOIN conversations_message m ON m.conversation_id = c.id WHERE u.username = %s GROUP BY c.id",
        username,
    )
    assert sorted(count for _, count in rows) == [0, 2]
    page.goto(f"{base}/")
    expect(page.get_by_test_id("conversation-link")).to_have_count(1)


def test_a_new_token_has_a_copy_button_and_the_pages_fit_a_phone(context: BrowserContext, server: Server):
    page = context.new_page()
    base = server.http_url
    sign_up(page, base)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.set_viewport_size(PHONE)
    page.goto(f"{base}/account/tokens/")
    page.locator("input[name=name]").fill("a program with a rather long name")
    page.get_by_test_id("create-token").click()
    secret = page.get_by_test_id("new-token-value").inner_text().strip()

    page.get_by_test_id("copy-token").click()
    expect(page.get_by_test_id("copy-token")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    for path in ("/account/tokens/", "/"):
        page.goto(f"{base}{path}")
        wide = page.evaluate(WIDER_THAN_THE_SCREEN)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], (path, wide)
        header = page.locator(".topbar").bounding_box()
        assert header is not None and header["height"] <= 60, (path, header)
        for button in ("api-tokens-link", "logout-button"):
            box = page.get_by_test_id(button).bounding_box()
            assert box is not None and box["height"] <= 40, (path, button, box)
