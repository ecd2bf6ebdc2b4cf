"""Approvals in a real browser: Approve clicked in one tab while another tab watches."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks, tool_calls_chunks
from tests.live_server import Deployment, Server
from tests.support.browser import ask, new_conversation, open_tab, sign_up, tool_card, wait_status

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = (
    ROOT / "docs" / "screenshot-approval.png"
    if os.environ.get("UPDATE_SCREENSHOT")
    else Path(tempfile.gettempdir()) / "agentchat-screenshot-approval.png"
)


@pytest.fixture(scope="module")
def refunds_server(deployment: Deployment, fake_openai_server: FakeOpenAI) -> Iterator[Server]:
    """A server of the shared deployment offering the Refunds assistant (for this module only)."""
    server = deployment.start_server(
        AGENT_ASSISTANTS="tests.assistants.example.Refunds",
        OPENAI_API_KEY="test",
        OPENAI_BASE_URL=fake_openai_server.base_url,
        OPENAI_MAX_RETRIES="0",
    )
    yield server
    deployment.stop_server(server)


def test_approve_in_one_tab_while_another_watches(
    context: BrowserContext, refunds_server: Server, fake_openai_server: FakeOpenAI, deployment: Deployment
):
    fake_openai_server.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "refund", ['{"order": ', "31}"])])),
        StreamResponse(content_chunks(["Order 31 ", "is refunded."])),
    )
    asker = context.new_page()
    username = sign_up(asker, refunds_server.http_url)
    url = new_conversation(asker, refunds_server.http_url)
    watcher = open_tab(context, url)

    ask(asker, "Refund order 31")
    for tab in (asker, watcher):
        card = tab.get_by_test_id("approval-card")
        expect(card).to_have_attribute("data-state", "pending")
        expect(card).to_contain_text("refund")
        expect(card).to_contain_text('"order": 31')
    watcher.set_viewport_size({"width": 800, "height": 600})
    watcher.screenshot(path=str(SCREENSHOT))
    stored = deployment.query(  # the refund's side effect: a conversation of the asker's, titled after it
        "SELECT count(*) FROM conversations_conversation c JOIN auth_user u ON u.id = c.owner_id "
        "WHERE u.username = %s AND c.title = 'refunded order 31'",
        username,
    )
    assert stored == [(0,)]  # nothing happens before a person says so

    watcher.get_by_test_id("approve-button").click()

    for tab in (asker, watcher):
        expect(tab.get_by_test_id("approval-card")).to_have_attribute("data-state", "approved")
        expect(tab.get_by_test_id("approval-card")).to_contain_text("Approved by")
        expect(tool_card(tab, "refund").get_by_test_id("tool-result")).to_have_text("refunded order 31")
        wait_status(tab, "completed")
    expect(asker.get_by_test_id("approve-button")).to_have_count(0)
