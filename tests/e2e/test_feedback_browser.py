"""Feedback on an answer, in a real browser: thumbs down, a comment saved, kept over a reload, changeable,
shown in another tab; the bar fits a phone in the dark."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.live_server import Deployment, Server
from tests.support.browser import (
    WIDER_THAN_THE_SCREEN,
    ask,
    assistant,
    conversation_id,
    new_conversation,
    sign_up,
    wait_connected,
    wait_status,
)

PHONE = {"width": 390, "height": 844}
# Written to docs/ only when asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
)


def stored_feedback(deployment: Deployment, url: str) -> list[tuple]:
    return deployment.query(
        "SELECT f.rating, f.comment FROM conversations_feedback f JOIN conversations_message m ON m.id = f.message_id "
        "WHERE m.conversation_id = %s",
        conversation_id(url),
    )


def thumb(page: Page, which: str):
    return assistant(page).get_by_test_id(f"feedback-{which}")


def test_thumbs_down_with_a_comment_is_saved_kept_over_a_reload_and_changeable(
    context: BrowserContext, server: Server, deployment: Deployment
):
    page = context.new_page()
    base = server.http_url
    sign_up(page, base)
    url = new_conversation(page, base)
    ask(page, "What is 2 + 3?")
    wait_status(page, "completed")
    expect(thumb(page, "up")).to_have_attribute("aria-pressed", "false")
    expect(thumb(page, "down")).to_have_accessible_name("Bad answer")

    thumb(page, "down").click()  # an answer streamed in this tab: its id is looked up by its run
    expect(thumb(page, "down")).to_have_attribute("aria-pressed", "true")
    comment = assistant(page).get_by_test_id("feedback-comment")
    expect(comment).to_be_focused()
    comment.fill("The sum is right but it took three tools.")
    assistant(page).get_by_test_id("feedback-save").click()
    expect(assistant(page).get_by_test_id("feedback-form")).to_be_hidden()
    expect(assistant(page).get_by_test_id("feedback-comment-toggle")).to_be_focused()  # not lost to <body>
    note = assistant(page).get_by_test_id("feedback-note")
    expect(note).to_have_text("The sum is right but it took three tools.")
    assert stored_feedback(deployment, url) == [(-1, "The sum is right but it took three tools.")]
    assistant(page).screenshot(path=SHOTS / "screenshot-feedback-desktop-light.png")

    page.reload()
    wait_connected(page)
    expect(thumb(page, "down")).to_have_attribute("aria-pressed", "true")
    expect(thumb(page, "up")).to_have_attribute("aria-pressed", "false")
    expect(assistant(page).get_by_test_id("feedback-note")).to_have_text("The sum is right but it took three tools.")

    assistant(page).get_by_test_id("feedback-comment-toggle").click()  # the box opens with the stored comment
    expect(assistant(page).get_by_test_id("feedback-comment")).to_have_value(
        "The sum is right but it took three tools."
    )
    assistant(page).get_by_test_id("feedback-comment").press("Escape")
    expect(assistant(page).get_by_test_id("feedback-form")).to_be_hidden()

    other = context.new_page()  # another tab shows it from its snapshot
    other.goto(url)
    wait_connected(other)
    expect(thumb(other, "down")).to_have_attribute("aria-pressed", "true")

    thumb(page, "up").click()  # changed: the comment stays
    expect(thumb(page, "up")).to_have_attribute("aria-pressed", "true")
    expect(thumb(page, "down")).to_have_attribute("aria-pressed", "false")
    expect(assistant(page).get_by_test_id("feedback-form")).to_be_hidden()
    expect(assistant(page).get_by_test_id("feedback")).not_to_have_attribute("data-saving", "true")
    # The other tab, open all along, follows the change live.
    expect(thumb(other, "up")).to_have_attribute("aria-pressed", "true")
    expect(thumb(other, "down")).to_have_attribute("aria-pressed", "false")
    expect(assistant(other).get_by_test_id("feedback-note")).to_have_text("The sum is right but it took three tools.")
    page.reload()
    wait_connected(page)
    expect(thumb(page, "up")).to_have_attribute("aria-pressed", "true")
    assert stored_feedback(deployment, url) == [(1, "The sum is right but it took three tools.")]


def test_the_feedback_bar_and_comment_box_fit_a_phone_in_dark_mode(browser: Browser, server: Server):
    context = browser.new_context(viewport=PHONE, color_scheme="dark")
    try:
        page = context.new_page()
        sign_up(page, server.http_url)
        new_conversation(page, server.http_url)
        ask(page, "What is 2 + 3?")
        wait_status(page, "completed")
        thumb(page, "down").click()
        comment = assistant(page).get_by_test_id("feedback-comment")
        expect(comment).to_be_visible()
        comment.fill("x" * 300)
        assert page.evaluate(WIDER_THAN_THE_SCREEN) == []
        page.screenshot(path=SHOTS / "screenshot-feedback-phone-dark.png")
        background = comment.evaluate("(e) => getComputedStyle(e).backgroundColor")
        assert background != "rgb(255, 255, 255)"  # the dark surface, not a white box
    finally:
        context.close()
