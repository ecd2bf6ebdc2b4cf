"""Markdown that fits (issue #28), in Chromium: a wide table scrolls sideways in its own focusable box and
no word in it breaks; a task list shows disabled checkboxes; `$$…$$` inside a line of prose is a display
formula; an Arabic paragraph takes its direction from its text (dir="auto"). Light desktop and dark phone,
no serious axe finding."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks, split_text
from tests.live_server import Server
from tests.support.browser import answer_of, ask, new_conversation, serious_violations, sign_up, wait_status

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 800}
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" if os.environ.get("UPDATE_SCREENSHOT") else Path(tempfile.gettempdir())
)
SETTLED = "() => document.getAnimations().every((a) => a.playState !== 'running')"

HEADER = ["Option", "Implementation", "Configuration", "Throughput", "Latency", "Durability", "Replication", "Notes"]
LONG = "Good for caches and queues, less so for data that must survive a restart of the server"
ROWS = [
    ["Postgres", "Relational", "Straightforward", "Thousands", "Milliseconds", "Transactional", "Streaming", "Mature"],
    ["Redis", "Key-value", "Minimal", "Hundreds-of-thousands", "Microseconds", "Configurable", "Asynchronous", LONG],
]
ARABIC = "هذه فقرة باللغة العربية تشرح الجدول أعلاه وتظهر من اليمين إلى اليسار."
ANSWER = "\n".join(
    [
        "Here is the comparison:",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in ROWS),
        "",
        "- [ ] measure the latency",
        "- [x] read the docs",
        "",
        "The identity $$\\begin{pmatrix}a & b \\\\ c & d\\end{pmatrix}$$ holds for every matrix.",
        "",
        ARABIC,
    ]
)

# Each short table cell's text lies on one line (one client rect for its text), so no word was broken.
CELLS_ON_ONE_LINE_JS = """(box) => [...box.querySelectorAll("th, td:not(.md-cell-long)")].filter((cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return range.getClientRects().length !== 1;
}).map((cell) => cell.textContent)"""

# How many lines a cell's text takes.
LINE_COUNT_JS = """(cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return range.getClientRects().length;
}"""
# The words of a cell that are split over two lines (a word's range has more than one client rect).
BROKEN_WORDS_JS = """(cell) => {
  const node = cell.firstChild, broken = [];
  const re = /\\S+/g;
  let m;
  while ((m = re.exec(node.data))) {
    const range = document.createRange();
    range.setStart(node, m.index);
    range.setEnd(node, m.index + m[0].length);
    if (range.getClientRects().length !== 1) broken.push(m[0]);
  }
  return broken;
}"""


@pytest.mark.parametrize(
    ("viewport", "scheme", "name"),
    [(DESKTOP, "light", "light-desktop"), (PHONE, "dark", "dark-phone")],
)
def test_tables_scroll_task_lists_inline_display_math_and_rtl_text(
    context: BrowserContext, openai_server: Server, fake_openai_server: FakeOpenAI, viewport, scheme, name
):
    fake_openai_server.enqueue(StreamResponse(content_chunks(split_text(ANSWER, 7)), delay=0.005))
    page = context.new_page()
    page.set_viewport_size(viewport)
    page.emulate_media(color_scheme=scheme)
    sign_up(page, openai_server.http_url)
    new_conversation(page, openai_server.http_url)
    ask(page, "Compare the stores")
    wait_status(page, "completed")
    answer = answer_of(page)

    # The table scrolls in its own box, which the keyboard reaches; the page itself does not widen.
    box = answer.locator("div.md-table")
    expect(box).to_have_count(1)
    expect(box).to_have_attribute("tabindex", "0")
    expect(box).to_have_attribute("role", "region")
    expect(box).to_have_attribute("aria-label", "Table")
    expect(box.locator("th")).to_have_text(HEADER)
    assert box.evaluate("e => e.scrollWidth > e.clientWidth"), "the wide table does not scroll in its box"
    assert box.evaluate(CELLS_ON_ONE_LINE_JS) == []
    # The long cell wraps, between words only.
    long_cell = box.locator("td.md-cell-long")
    expect(long_cell).to_have_text(LONG)
    assert long_cell.evaluate(BROKEN_WORDS_JS) == []
    assert long_cell.evaluate(LINE_COUNT_JS) > 1
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")

    # Task list: disabled checkboxes, labelled by their item's text, not "[ ]" text.
    boxes = answer.get_by_role("checkbox")
    expect(boxes).to_have_count(2)
    for checkbox in boxes.all():
        expect(checkbox).to_be_disabled()
    expect(answer.get_by_role("checkbox", name="measure the latency")).not_to_be_checked()
    expect(answer.get_by_role("checkbox", name="read the docs")).to_be_checked()
    expect(answer).not_to_contain_text("[ ]")
    expect(answer).not_to_contain_text("[x]")

    # $$…$$ inside the paragraph: a display formula, no raw TeX left over.
    paragraph = answer.locator("p", has_text="holds for every matrix")
    expect(paragraph.locator(".katex-display")).to_have_count(1)
    expect(paragraph.locator(".katex-display annotation")).to_have_text(
        "\\begin{pmatrix}a & b \\\\ c & d\\end{pmatrix}"
    )
    expect(answer).not_to_contain_text("$$")

    # Direction from the text: the Arabic paragraph reads right to left.
    arabic = answer.locator("p", has_text=ARABIC)
    expect(arabic).to_have_attribute("dir", "auto")
    assert arabic.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert answer.locator("p, li, th, td").evaluate_all("els => els.every((e) => e.dir === 'auto')")

    page.mouse.move(0, 0)
    page.wait_for_function(SETTLED)
    assert serious_violations(page) == []
    page.screenshot(path=str(SHOTS / f"screenshot-markdown-table-{name}.png"))

    # The keyboard scrolls the table's box.
    box.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("(e) => e.scrollLeft > 0", arg=box.element_handle())
