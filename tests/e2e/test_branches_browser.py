"""Regenerate and edit in Chromium, with two tabs: the second tab follows live, the "1 / 2" arrows show
earlier versions in both tabs, and the model (the local OpenAI-compatible server) is given only the
branch on screen."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks, split_text
from tests.live_server import Server
from tests.support.browser import (
    EXPECT_TIMEOUT_MS,
    WIDER_THAN_THE_SCREEN,
    answer_of,
    ask,
    assistant,
    new_conversation,
    open_tab,
    sign_up,
    wait_status,
)

# Written to docs/ only when asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
)
PHONE = {"width": 390, "height": 844}


def said(request: dict) -> list[str]:
    """What the model was given, without the instructions."""
    return [m["content"] for m in request["messages"] if m["role"] != "system"]


def user_messages(page: Page):
    return page.locator('[data-testid="message"][data-role="user"]')


def expect_branch(page: Page, texts: list[str]) -> None:
    """The messages on screen, in order (user messages and answers)."""
    messages = page.get_by_test_id("message")
    expect(messages).to_have_count(len(texts))
    for i, text in enumerate(texts):
        expect(messages.nth(i)).to_contain_text(text)


def test_regenerate_edit_and_versions_follow_live_in_a_second_tab(
    browser: Browser, openai_server: Server, fake_openai_server: FakeOpenAI
):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    fake = fake_openai_server
    try:
        page = context.new_page()
        sign_up(page, openai_server.http_url)
        url = new_conversation(page, openai_server.http_url)
        other = open_tab(context, url)
        fake.enqueue(StreamResponse(content_chunks(["Paris."])), StreamResponse(content_chunks(["About 2.1 million."])))
        ask(page, "Capital of France?")
        wait_status(page, "completed")
        ask(page, "How many people live there?")
        expect(answer_of(page)).to_have_text("About 2.1 million.")
        wait_status(other, "completed")

        # Regenerate in the first tab: the second tab watches the new answer stream in.
        regenerated = "Roughly 2.1 million people live in Paris."
        fake.enqueue(StreamResponse(content_chunks(split_text(regenerated, 4)), delay=0.03))
        assistant(page).get_by_test_id("regenerate-button").click()
        for tab in (page, other):
            expect(answer_of(tab)).to_have_text(regenerated)
            wait_status(tab, "completed")
            expect(assistant(tab).get_by_test_id("version-label")).to_have_text("2 / 2")
        assert said(fake.requests[-1]) == ["Capital of France?", "Paris.", "How many people live there?"]

        # The earlier answer is still there: the arrows show it, in both tabs.
        other_switch = assistant(other).get_by_test_id("versions")
        other_switch.get_by_test_id("version-previous").click()
        for tab in (page, other):
            expect(answer_of(tab)).to_have_text("About 2.1 million.")
            expect(assistant(tab).get_by_test_id("version-label")).to_have_text("1 / 2")

        # Edit the first question in the second tab: a new branch, answered from that question alone.
        fake.enqueue(StreamResponse(content_chunks(split_text("Rome.", 2)), delay=0.03))
        first_question = user_messages(other).first
        first_question.hover()
        first_question.get_by_test_id("edit-button").click()
        editor = first_question.get_by_test_id("edit-input")
        expect(editor).to_be_focused()
        expect(editor).to_have_value("Capital of France?")
        editor.fill("Capital of Italy?")
        first_question.get_by_test_id("edit-save").click()
        for tab in (page, other):
            expect_branch(tab, ["Capital of Italy?", "Rome."])
            wait_status(tab, "completed")
            expect(user_messages(tab).first.get_by_test_id("version-label")).to_have_text("2 / 2")
        assert said(fake.requests[-1]) == ["Capital of Italy?"]
        user_messages(page).first.hover()
        page.screenshot(path=SHOTS / "screenshot-versions-desktop-light.png")

        # Back to the first question's version: its whole branch, with the answer last chosen.
        question = user_messages(page).first
        question.hover()
        question.get_by_test_id("version-previous").click()
        for tab in (page, other):
            expect_branch(tab, ["Capital of France?", "Paris.", "How many people live there?", "2.1 million"])
            expect(user_messages(tab).first.get_by_test_id("version-label")).to_have_text("1 / 2")

        # A new message follows the branch on screen, and the model hears only that branch.
        fake.enqueue(StreamResponse(content_chunks(["The Eiffel Tower."])))
        ask(other, "Its most famous sight?")
        for tab in (page, other):
            expect(answer_of(tab)).to_have_text("The Eiffel Tower.")
        assert said(fake.requests[-1])[0] == "Capital of France?"
        assert said(fake.requests[-1])[-1] == "Its most famous sight?"
        assert "Capital of Italy?" not in said(fake.requests[-1])

        # After a reload the same branch and versions are there.
        page.reload()
        first_branch = ["Capital of France?", "Paris.", "How many people live there?", "2.1 million"]
        expect_branch(page, [*first_branch, "Its most", "Eiffel"])
        expect(user_messages(page).first.get_by_test_id("version-label")).to_have_text("1 / 2")
    finally:
        context.close()


def test_regenerate_after_a_failed_answer(browser: Browser, openai_server: Server, fake_openai_server: FakeOpenAI):
    from tests.fake_openai import ErrorResponse

    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_up(page, openai_server.http_url)
        new_conversation(page, openai_server.http_url)
        fake_openai_server.enqueue(ErrorResponse(status=500, message="upstream broke"))  # no retries here
        ask(page, "Capital of France?")
        wait_status(page, "error")
        regenerate = assistant(page).get_by_test_id("regenerate-button")
        expect(regenerate).to_be_visible()

        fake_openai_server.enqueue(StreamResponse(content_chunks(["Paris."])))
        regenerate.click()
        expect(answer_of(page)).to_have_text("Paris.")
        wait_status(page, "completed")
        expect(assistant(page).get_by_test_id("version-label")).to_have_text("2 / 2")
        expect(page.get_by_test_id("run-error")).to_have_count(0)
    finally:
        context.close()


def test_versions_and_the_editor_fit_a_phone_in_dark_mode(
    browser: Browser, openai_server: Server, fake_openai_server: FakeOpenAI
):
    context = browser.new_context(viewport=PHONE, color_scheme="dark", has_touch=True)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_up(page, openai_server.http_url)
        new_conversation(page, openai_server.http_url)
        fake_openai_server.enqueue(
            StreamResponse(content_chunks(["Use a **list** when order matters."])),
            StreamResponse(content_chunks(["A list keeps order; a set keeps only distinct items, without order."])),
        )
        ask(page, "When should I use a list rather than a set in Python?")
        wait_status(page, "completed")
        assistant(page).get_by_test_id("regenerate-button").click()
        expect(assistant(page).get_by_test_id("version-label")).to_have_text("2 / 2")
        wait_status(page, "completed")
        # On a touch screen the Edit button is there without hovering.
        edit = user_messages(page).first.get_by_test_id("edit-button")
        expect(edit).to_be_visible()
        assert float(edit.evaluate("(e) => getComputedStyle(e.parentElement).opacity")) == 1
        edit.click()
        expect(page.get_by_test_id("edit-input")).to_be_focused()
        assert page.evaluate(WIDER_THAN_THE_SCREEN) == []
        page.screenshot(path=SHOTS / "screenshot-versions-phone-dark.png")
        background = page.get_by_test_id("edit-input").evaluate("(e) => getComputedStyle(e).backgroundColor")
        assert background != "rgb(255, 255, 255)"  # the dark surface, not a white box
        page.get_by_test_id("edit-cancel").click()
        expect(page.get_by_test_id("edit-form")).to_be_hidden()
        expect(user_messages(page).first.get_by_test_id("user-message")).to_have_text(
            "When should I use a list rather than a set in Python?"
        )
    finally:
        context.close()
