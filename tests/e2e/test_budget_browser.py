"""The token budget in a real browser: once less than a fifth is left, the page says so above the
message box; an answer ending updates it in every tab; a spent budget puts the refused text back
in the box with the server's reason. Light and dark, desktop and phone, no serious axe finding."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.live_server import Deployment, Server
from tests.support.browser import ask, new_conversation, open_tab, serious_violations, sign_up, wait_status

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 800}
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
)
SETTLED = "() => document.getAnimations().every((a) => a.playState !== 'running')"

SPEND = """
from django.contrib.auth import get_user_model
from conversations.models import Budget, Conversation, Message
user = get_user_model().objects.get(username={username!r})
Budget.objects.update_or_create(user=user, defaults={{"tokens_per_day": 1000}})
elsewhere = Conversation.objects.create(owner=user, title="Earlier work")
Message.objects.create(conversation=elsewhere, role="assistant", content="Done.",
                       usage={{"input_tokens": {tokens}, "output_tokens": 0}})
"""


@pytest.fixture(scope="module")
def budget_server(deployment: Deployment) -> Iterator[Server]:
    """A server of the shared deployment where an answer holds a reserve of 100 tokens."""
    server = deployment.start_server(QUOTA_RUN_RESERVE_TOKENS="100")
    yield server
    deployment.stop_server(server)


def spend(deployment: Deployment, username: str, tokens: int) -> None:
    """Give the user a day budget of 1,000 tokens and `tokens` spent in another conversation."""
    deployment.manage("shell", "-c", SPEND.format(username=username, tokens=tokens))


def test_a_low_budget_shows_above_the_box_and_a_spent_one_refuses_the_send(
    context: BrowserContext, deployment: Deployment, budget_server: Server
):
    page = context.new_page()
    username = sign_up(page, budget_server.http_url)
    url = new_conversation(page, budget_server.http_url)
    notice = page.get_by_test_id("budget-notice")
    expect(notice).to_be_hidden()  # no budget yet

    spend(deployment, username, 700)
    watcher = open_tab(context, url)
    ask(watcher, "What is 2 + 3?")
    wait_status(watcher, "completed")
    for tab in (page, watcher):  # the answer's end tells every tab: 700 + ~200 of 1,000 spent
        expect(tab.get_by_test_id("budget-notice")).to_contain_text("of today's 1,000 tokens left")

    spend(deployment, username, 500)
    page.reload()
    expect(notice).to_contain_text("You have used today's token budget")
    ask(page, "What is 3 + 3?")
    expect(page.locator(".notice")).to_contain_text("it renews in")
    expect(page.get_by_test_id("composer-input")).to_have_value("What is 3 + 3?")


@pytest.mark.parametrize(
    ("viewport", "scheme", "name"),
    [(DESKTOP, "light", "desktop-light"), (PHONE, "dark", "phone-dark")],
)
def test_the_notice_passes_axe_light_and_dark(
    context: BrowserContext, deployment: Deployment, budget_server: Server, viewport, scheme, name
):
    page = context.new_page()
    page.set_viewport_size(viewport)
    page.emulate_media(color_scheme=scheme)
    username = sign_up(page, budget_server.http_url)
    url = new_conversation(page, budget_server.http_url)
    spend(deployment, username, 850)
    page.goto(url)
    expect(page.get_by_test_id("budget-notice")).to_contain_text("150 of today's 1,000 tokens left")
    page.wait_for_function(SETTLED)
    assert serious_violations(page) == []
    page.screenshot(path=str(SHOTS / f"screenshot-budget-{name}.png"))
