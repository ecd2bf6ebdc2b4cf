"""Math in the assistant's answer, in Chromium: `$…$`, `\\(…\\)`, `$$…$$` and `\\[…\\]` render with KaTeX (served
from our own origin, fonts too) while the answer streams and after a reload; dollar amounts stay text; KaTeX's
output survives DOMPurify (its inline styles and MathML) while `\\href` and `\\includegraphics` stay inert."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks, split_text
from tests.live_server import Server
from tests.support.browser import (
    answer_of,
    ask,
    hostile_answer_page,
    new_conversation,
    sign_up,
    wait_connected,
    wait_status,
)

MATH_ANSWER = (
    "Mass and energy are related by $E=mc^2$, and the area under $y = x$ is\n\n"
    "$$\\int_0^1 x\\,dx = \\frac{1}{2}$$\n\n"
    "The roots of \\(ax^2 + bx + c = 0\\) are\n\n"
    "\\[\n"
    "x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}\n"
    "\\]\n\n"
    "A textbook costs $5 and a calculator $10, so $15 in all."
)
HOSTILE_MATH = (
    "Click $\\href{javascript:alert(1)}{here}$ or \\(\\url{javascript:alert(2)}\\).\n\n"
    "$$\\includegraphics{http://127.0.0.1:9/x.png}$$\n\n"
    "Broken: $\\frac{1}{$ and done."
)

# The last answer, while it still streams, already shows the first paragraph's formula and the display
# formula after it as KaTeX.
MATH_WHILE_STREAMING_JS = """() => {
  const msgs = document.querySelectorAll('[data-testid="message"][data-role="assistant"]');
  const msg = msgs[msgs.length - 1];
  if (!msg || msg.dataset.status !== "generating") return false;
  const answer = msg.querySelector('[data-testid="answer"]');
  const ok = answer.querySelector(".md-block:first-child .katex") && answer.querySelector(".katex-display");
  if (ok) window.__firstFormula = answer.querySelector(".katex");
  return !!ok;
}"""

# KaTeX's stylesheet applies (the MathML copy is hidden, only for screen readers), its inline styles
# survived DOMPurify, and its fonts came from our own origin.
KATEX_STYLED_JS = """async () => {
  await document.fonts.ready;
  const answer = [...document.querySelectorAll('[data-testid="answer"]')].pop();
  const mathml = answer.querySelector(".katex .katex-mathml");
  const strut = answer.querySelector(".katex .katex-strut, .katex .strut");
  return {
    mathmlHidden: getComputedStyle(mathml).position === "absolute",
    strutHeight: strut ? strut.style.height : "",
    fontFamily: getComputedStyle(answer.querySelector(".katex")).fontFamily,
    mainFont: document.fonts.check("1em KaTeX_Main"),
    mathFont: document.fonts.check("italic 1em KaTeX_Math"),
  };
}"""


def expect_math(page: Page) -> None:
    answer = answer_of(page)
    # Two inline $…$, one inline \(…\), one $$…$$ and one \[…\].
    expect(answer.locator(".katex")).to_have_count(5)
    expect(answer.locator(".math-display .katex-display")).to_have_count(2)
    annotations = answer.locator('annotation[encoding="application/x-tex"]')
    expect(annotations).to_have_count(5)
    expect(annotations.nth(0)).to_have_text("E=mc^2")
    expect(annotations.nth(2)).to_have_text("\\int_0^1 x\\,dx = \\frac{1}{2}")
    expect(answer.locator("math")).to_have_count(5)
    # Dollar amounts are prose, and no TeX is left over as text outside the formulas.
    expect(answer.locator("p").last).to_have_text("A textbook costs $5 and a calculator $10, so $15 in all.")
    expect(answer.locator(".math-source")).to_have_count(0)
    visible = answer.evaluate(
        """a => { const c = a.cloneNode(true); c.querySelectorAll('.katex-mathml').forEach(m => m.remove());
                  return c.textContent; }"""
    )
    for leftover in ("$E", "$$", "\\frac", "\\(", "\\[", "\\int"):
        assert leftover not in visible, (leftover, visible)
    styled = page.evaluate(KATEX_STYLED_JS)
    assert styled["mathmlHidden"], styled
    assert styled["strutHeight"].endswith("em"), styled
    assert styled["fontFamily"].startswith("KaTeX_Main"), styled
    assert styled["mainFont"] and styled["mathFont"], styled


def test_math_renders_while_it_streams_and_after_reload(
    context: BrowserContext, openai_server: Server, fake_openai_server: FakeOpenAI
):
    fake_openai_server.enqueue(StreamResponse(content_chunks(split_text(MATH_ANSWER, 3)), delay=0.01))
    page = context.new_page()
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    sign_up(page, openai_server.http_url)
    new_conversation(page, openai_server.http_url)
    ask(page, "Some formulas, please")

    page.wait_for_function(MATH_WHILE_STREAMING_JS, polling="raf")
    wait_status(page, "completed")
    expect_math(page)
    # The block with the first formula was finished early: it kept its DOM while the rest streamed.
    assert page.evaluate("() => window.__firstFormula.isConnected")

    page.reload()
    wait_connected(page)
    wait_status(page, "completed")
    expect_math(page)

    # KaTeX's script, stylesheet and fonts come from this server (woff2 only).
    own = openai_server.http_url
    assert all(url.startswith((own, "data:", "ws:")) for url in fetched), [u for u in fetched if not u.startswith(own)]
    fonts = [url for url in fetched if "/static/vendor/katex/fonts/" in url]
    assert fonts and all(url.endswith(".woff2") for url in fonts), fonts
    assert any("/static/vendor/katex/katex" in url and url.endswith(".css") for url in fetched)


def test_href_and_includegraphics_in_math_stay_inert_and_errors_show_the_source(
    context: BrowserContext, openai_server: Server, fake_openai_server: FakeOpenAI
):
    page, dialogs, fetched = hostile_answer_page(
        context, openai_server, fake_openai_server, HOSTILE_MATH, "Some hostile math", 4
    )

    def check() -> None:
        answer = answer_of(page)
        expect(answer.locator(".katex")).to_have_count(3)
        # The untrusted commands show as their names, as text; no link, no image.
        expect(answer.locator(".katex-html").first).to_contain_text("\\href")
        expect(answer.locator(".katex-html").nth(2)).to_contain_text("\\includegraphics")
        expect(answer.locator("a")).to_have_count(0)
        expect(answer.locator("img, image, script, iframe, [onerror], [onclick]")).to_have_count(0)
        assert answer.evaluate(
            "a => [...a.querySelectorAll('*')]"
            ".every(e => ![...e.attributes].some(x => /javascript:|url\\(/i.test(x.value)))"
        )
        # Math KaTeX cannot parse shows its source, with KaTeX's message as the tooltip.
        broken = answer.locator(".math-source--error")
        expect(broken).to_have_text("$\\frac{1}{$")
        assert "ParseError" in (broken.get_attribute("title") or "")
        answer.locator(".katex").first.click()
        page.wait_for_timeout(300)
        assert not [u for u in fetched if "127.0.0.1:9" in u or u.startswith("javascript:")]
        assert dialogs == []

    check()
    page.reload()
    wait_connected(page)
    wait_status(page, "completed")
    check()
