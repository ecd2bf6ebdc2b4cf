"""Staff review in a real browser: the transcript reads like the chat on one screen, markup in model
output stays text, and the usage page shows the stored figures and downloads them as CSV."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.review_seed import PASSWORD, REVIEWER
from tests.live_server import Deployment, Server
from tests.support.deployments import live_deployment

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
WIDE = {"width": 1280, "height": 1080}
ONE_SCREEN_PX = 1200
"""The featured conversation (8 messages, 5 tool steps) must read within about one screen at 1280 px."""
ASSISTANTS = (
    "agent_runtime.assistants.ArithmeticAssistant,conversations.builtin_assistants.HistoryAssistant,"
    "tests.assistants.example.Refunds"
)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """A deployment of its own: the usage page sums every stored answer, which must be the seeded ones only."""
    with live_deployment() as deployment:
        yield deployment


@pytest.fixture(scope="module")
def seeded(deployment: Deployment) -> dict[str, int]:
    """The demo month of conversations; the ids of the featured and the hostile one."""
    out = deployment.manage(
        "shell",
        "-c",
        "from tests.e2e.review_seed import seed_hostile, seed_review_demo; "
        "print(seed_review_demo().pk, seed_hostile().pk)",
    )
    featured, hostile = out.split()[-2:]
    return {"featured": int(featured), "hostile": int(hostile)}


@pytest.fixture(scope="module")
def review_server(deployment: Deployment, seeded: dict[str, int]) -> Server:
    return deployment.start_server(AGENT_ASSISTANTS=ASSISTANTS)


@pytest.fixture
def reviewer(browser: Browser, review_server: Server) -> Iterator[Page]:
    """A wide tab logged in to the admin as the seeded superuser; any dialog fails the test."""
    context: BrowserContext = browser.new_context(viewport=WIDE, accept_downloads=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{review_server.http_url}/admin/login/")
    page.locator("#id_username").fill(REVIEWER)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    expect(page.get_by_test_id("review-links")).to_be_visible()
    try:
        yield page
    finally:
        context.close()
    assert dialogs == [], "a script from stored model output ran"


def test_the_transcript_reads_like_the_chat_on_about_one_screen(reviewer: Page, review_server, seeded):
    page = reviewer
    page.goto(f"{review_server.http_url}/admin/conversations/conversation/{seeded['featured']}/change/")

    expect(page.get_by_test_id("turn")).to_have_count(8)
    refund = page.locator("[data-testid=tool-step][data-tool=refund]")
    expect(refund.get_by_test_id("approval")).to_contain_text("approved by alice")
    expect(page.locator("[data-testid=tool-step][data-tool=multiply]").first).to_contain_text("error: Invalid")
    expect(page.locator("[data-status=cancelled] [data-testid=status-mark]")).to_contain_text("Stopped")
    expect(page.locator("[data-status=error] [data-testid=status-mark]")).to_contain_text("429")
    expect(page.get_by_test_id("turn").nth(1).get_by_test_id("turn-figures")).to_contain_text("412 in")
    expect(page.get_by_test_id("turn").nth(1).locator("strong").first).to_have_text("(3 + 4) × 2³ = 56.")
    expect(page.get_by_test_id("turn").nth(2)).to_contain_text("<b>Urgent</b>")
    assert page.evaluate("document.documentElement.scrollHeight") < ONE_SCREEN_PX
    page.screenshot(path=str(SHOTS / "screenshot-review.png"))


def test_markup_in_model_output_is_shown_as_text_and_nothing_is_fetched(reviewer: Page, review_server, seeded):
    page = reviewer
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(f"{review_server.http_url}/admin/conversations/conversation/{seeded['hostile']}/change/")

    answer = page.get_by_test_id("answer")
    expect(answer).to_contain_text("<script>alert('script')</script>")
    expect(answer).to_contain_text("<img src=x onerror=alert('img')>")
    expect(answer).to_contain_text("[a link](javascript:alert('link'))")
    expect(answer.locator("a, img, script")).to_have_count(0)
    expect(page.get_by_test_id("tool-step")).to_contain_text("<script>alert('args')</script>")
    assert not [url for url in fetched if "pixel.png" in url]


def test_the_usage_page_shows_the_stored_figures_and_downloads_them(
    reviewer: Page, review_server, seeded, deployment: Deployment
):
    page = reviewer
    page.get_by_test_id("usage-link").click()

    [(answers, tokens_in)] = deployment.query(
        "SELECT count(*), sum(CAST(json_extract(usage, '$.input_tokens') AS INTEGER)) FROM conversations_message "
        "WHERE role = 'assistant' AND status != 'generating'"
    )
    expect(page.get_by_test_id("total-answers")).to_have_text(f"{answers:,}")
    expect(page.get_by_test_id("total-input")).to_have_text(f"{tokens_in:,}")
    expect(page.locator("svg.chart")).to_have_count(4)
    expect(page.get_by_test_id("slowest-total").locator("tbody tr").first).to_contain_text("14.80 s")
    page.screenshot(path=str(SHOTS / "screenshot-usage.png"), full_page=True)

    with page.expect_download() as download:
        page.get_by_test_id("csv-link").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sum(int(r["answers"]) for r in rows) == answers
    assert sum(int(r["input_tokens"]) for r in rows) == tokens_in
