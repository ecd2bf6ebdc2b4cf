"""Assistants in a real browser: the picker, the header, a History search streaming in two tabs."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from playwright.sync_api import BrowserContext, expect

from tests.live_server import Server
from tests.support.browser import answer_of, ask, open_tab, sign_up, tool_card, wait_connected, wait_status

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = (
    ROOT / "docs" / "screenshot-assistants.png"
    if os.environ.get("UPDATE_SCREENSHOT")
    else Path(tempfile.gettempdir()) / "agentchat-screenshot-assistants.png"
)


def test_the_picker_starts_a_history_conversation_that_searches_only_my_own(context: BrowserContext, server: Server):
    base = server.http_url
    page = context.new_page()
    sign_up(page, base)
    page.goto(f"{base}/")
    page.get_by_test_id("new-conversation").first.click()
    wait_connected(page)
    ask(page, "count to 5")
    wait_status(page, "completed")

    page.goto(f"{base}/")
    page.get_by_test_id("assistant-picker").first.select_option("history")
    page.get_by_test_id("new-conversation").first.click()
    expect(page).to_have_url(re.compile(r"/conversations/\d+/$"))
    wait_connected(page)
    expect(page.get_by_test_id("assistant-badge")).to_have_text("History")
    watcher = open_tab(context, page.url)

    ask(page, "What did I ask about count last week?")

    for tab in (page, watcher):
        card = tool_card(tab, "search_my_conversations")
        expect(card).to_have_attribute("data-state", "done")
        expect(card.get_by_test_id("tool-args")).to_contain_text('"query": "count"')
        wait_status(tab, "completed")
        expect(answer_of(tab)).to_contain_text("count to 5")
    page.screenshot(path=str(SCREENSHOT), full_page=False)
