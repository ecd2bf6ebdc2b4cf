// Math in answers: static/chat/markdown.js finds `$…$`, `\(…\)`, `$$…$$` and `\[…\]` with
// @mdit/plugin-tex and renders them with KaTeX. Node has no DOM, so these tests read the HTML
// markdown.js hands to DOMPurify (markdownHtml); the browser test (tests/e2e/test_math_browser.py)
// checks the sanitised page. Run: node --test tests/js/

import test from "node:test";
import assert from "node:assert/strict";

import { markdownHtml } from "../../static/chat/markdown.js";
import { splitMarkdownBlocks } from "../../static/chat/helpers.js";

const katexCount = (html) => (html.match(/<span class="katex">/g) || []).length;
const tex = (html) => [...html.matchAll(/<annotation encoding="application\/x-tex">([^<]*)<\/annotation>/g)].map((m) => m[1]);
// The HTML without the TeX source KaTeX keeps (as text) in the MathML annotation.
const markup = (html) => html.replace(/<annotation encoding="application\/x-tex">[^<]*<\/annotation>/g, "");
const text = (html) => html.replace(/<[^>]*>/g, "").replace(/&amp;/g, "&").replace(/&quot;/g, '"').replace(/&#x27;/g, "'");

test("inline $…$ and \\(…\\) render with KaTeX (HTML and MathML)", () => {
  const html = markdownHtml("Energy: $E=mc^2$, and its square \\(x^2\\).");
  assert.equal(katexCount(html), 2);
  assert.deepEqual(tex(html), ["E=mc^2", "x^2"]);
  assert.match(html, /<math xmlns="http:\/\/www\.w3\.org\/1998\/Math\/MathML">/);
  assert.match(html, /<span class="katex-html" aria-hidden="true">/);
  assert.doesNotMatch(html, /katex-display/);
  assert.match(html, /^<p dir="auto">Energy: <span class="katex">/);
});

test("display $$…$$ and \\[…\\] render as display math, on one line or several", () => {
  for (const src of ["$$\\int_0^1 x\\,dx$$", "$$\n\\int_0^1 x\\,dx\n$$", "\\[\n\\int_0^1 x\\,dx\n\\]", "\\[\\int_0^1 x\\,dx\\]"]) {
    const html = markdownHtml(src);
    assert.match(html, /^<div class="math-display"><span class="katex-display"><span class="katex">/, src);
    assert.deepEqual(tex(html), ["\\int_0^1 x\\,dx"], src);
    assert.match(html, /<math [^>]*display="block"/, src);
  }
  // Display math between paragraphs, in a list item and in a quote.
  const html = markdownHtml("Sum:\n$$\na+b\n$$\nDone.\n\n- item\n\n  $$x$$\n\n> \\[\n> y\n> \\]");
  assert.deepEqual(tex(html), ["a+b", "x", "y"]);
});

test("dollar amounts in prose stay text", () => {
  for (const src of [
    "It costs $5 and $10.",
    "Between $5 and $10, or $20.",
    "Prices: $1,000 to $2,500 per seat",
    "$10, $20, $30",
    "Pay $ 5 now and $ 6 later",
    "A lone $ sign",
    "Escaped \\$x\\$ stays text",
  ]) {
    const html = markdownHtml(src);
    assert.equal(katexCount(html), 0, src);
    assert.doesNotMatch(html, /math-source/, src);
  }
  assert.equal(text(markdownHtml("It costs $5 and $10.")), "It costs $5 and $10.\n");
  // Inline code keeps its dollars too.
  assert.equal(katexCount(markdownHtml("Use `$x$` in shell and `$$`")), 0);
});

test("math still being written stays text while it streams, and is never an error", () => {
  const answer = "The fraction is $\\frac{1}{2}$ here:\n\n$$\n\\frac{1}{2} + \\sqrt{x}\n$$\n\nand \\(y\\) after $5.";
  for (let end = 1; end <= answer.length; end++) {
    const partial = answer.slice(0, end);
    // The page renders each block apart (markdown.js MarkdownView); the last one is the one changing.
    for (const block of splitMarkdownBlocks(partial)) {
      const html = markdownHtml(block); // never throws
      assert.doesNotMatch(html, /katex-error|math-source--error/, `after ${end}: ${JSON.stringify(partial.slice(-24))}`);
    }
  }
  // An open $$ block shows its source as text (not KaTeX's red error, not a half-drawn formula).
  assert.equal(markdownHtml("$$\\frac{1}{"), '<p class="math-source">$$\\frac{1}{</p>\n');
  assert.equal(markdownHtml("$$\n\\frac{1}{2}"), '<p class="math-source">$$<br>\n\\frac{1}{2}</p>\n');
  assert.equal(markdownHtml("$$"), '<p class="math-source">$$</p>\n');
  // An open $ or \[ is plain text.
  assert.equal(markdownHtml("so $\\frac{1}{"), '<p dir="auto">so $\\frac{1}{</p>\n');
  assert.equal(katexCount(markdownHtml("\\[\n\\frac{1}{2}")), 0);
  // Closed, it renders.
  assert.equal(katexCount(markdownHtml("$$\\frac{1}{2}$$")), 1);
});

test("\\href, \\url and \\includegraphics stay inert text (trust is off)", () => {
  for (const src of [
    "$\\href{javascript:alert(1)}{x}$",
    "$$\\href{javascript:alert(1)}{click}$$",
    "\\(\\url{javascript:alert(1)}\\)",
    "$\\includegraphics{http://127.0.0.1:9/x.png}$",
    "$\\htmlClass{evil}{x} \\htmlStyle{background:url(http://127.0.0.1:9/x)}{y} \\htmlData{foo=bar}{z}$",
  ]) {
    const html = markup(markdownHtml(src));
    assert.doesNotMatch(html, /<a\b|<img\b|href=|src=|javascript:/, src);
    assert.doesNotMatch(html, /class="[^"]*evil|url\(|data-foo/, src);
    assert.match(html, /<span class="katex">/, src); // the command shows as its name, as text
  }
});

test("math KaTeX cannot parse shows its source, with KaTeX's message as the title", () => {
  const inline = markdownHtml("Oops: $\\frac{1}{$ and $\\notacommand{x}$.");
  assert.match(inline, /<span class="math-source math-source--error" title="ParseError: [^"]*">\$\\frac\{1\}\{\$<\/span>/);
  assert.match(text(inline), /Oops: \$\\frac\{1\}\{\$ and /);
  const block = markdownHtml("$$\n\\left( x\n$$");
  assert.match(block, /^<p class="math-source math-source--error" title="ParseError: [^"]*">\$\$<br>\n\\left\( x<br>\n\$\$<\/p>/);
  // The limits: a macro that expands forever, a huge rule, deep nesting.
  assert.match(markdownHtml("$\\def\\a{\\a\\a}\\a$"), /math-source--error" title="ParseError: [^"]*Too many expansions/);
  const rule = markup(markdownHtml("$\\rule{9999em}{9999em}$"));
  assert.match(rule, /height:20em/); // maxSize
  assert.doesNotMatch(rule, /9999/);
  const deep = "$" + "{".repeat(400) + "x" + "}".repeat(400) + "$";
  assert.match(markdownHtml(deep), /math-source--error|class="katex"/);
  // Markup in the source is escaped, never HTML.
  const hostile = markdownHtml("$\\frac{<img src=x onerror=alert(1)>}{$");
  assert.doesNotMatch(hostile, /<img/);
  assert.match(hostile, /&lt;img src=x onerror=alert\(1\)&gt;/);
});

test("math leaves the rest of the Markdown alone", () => {
  const html = markdownHtml("**Bold** with $a_1$ and `code` and [a link](https://example.com).");
  assert.match(html, /<strong>Bold<\/strong> with <span class="katex">/);
  assert.match(html, /<code>code<\/code>/);
  assert.match(html, /<a href="https:\/\/example\.com">a link<\/a>/);
  // A fenced block keeps its dollars.
  assert.equal(katexCount(markdownHtml("```sh\necho $HOME $PATH\n```")), 0);
  assert.equal(katexCount(markdownHtml("```\n$$x$$\n```")), 0);
});
