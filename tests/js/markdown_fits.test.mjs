// Markdown that fits (issue #28): tables scroll in their own focusable box, `$$…$$` inside a line of prose
// is display math, GFM task lists are disabled checkboxes, an answer that is just "1." is text, and every
// block of model text takes its direction from its own text (dir="auto"). Node has no DOM: these read the
// HTML markdown.js hands to DOMPurify; tests/e2e/test_markdown_fits_browser.py checks the sanitised page.
// Run: node --test tests/js/

import test from "node:test";
import assert from "node:assert/strict";

import { markdownHtml } from "../../static/chat/markdown.js";
import { splitMarkdownBlocks } from "../../static/chat/helpers.js";

const norm = (html) => html.replace(/\n/g, "");
const tex = (html) => [...html.matchAll(/<annotation encoding="application\/x-tex">([^<]*)<\/annotation>/g)].map((m) => m[1]);

test("a table sits in a focusable scrolling region", () => {
  const html = norm(markdownHtml("| Option | Cost |\n|---|--:|\n| a | 1 |"));
  assert.match(html, /^<div class="md-table" tabindex="0" role="region" aria-label="Table"><table><thead>/);
  assert.match(html, /<\/table><\/div>$/);
  assert.match(html, /<th dir="auto">Option<\/th><th style="text-align:right" dir="auto">Cost<\/th>/);
  assert.match(html, /<td dir="auto">a<\/td>/);
  // A long cell may wrap (between words); short ones stay on one line (app.css).
  const long = "a sentence long enough to read better when it wraps over lines";
  const wide = norm(markdownHtml(`| a | b |\n|---|---|\n| short | ${long} |`));
  assert.match(wide, /<td dir="auto">short<\/td><td dir="auto" class="md-cell-long">a sentence/);
});

test("$$…$$ inside a paragraph line is display math, its TeX untouched by Markdown escapes", () => {
  const html = markdownHtml("A matrix $$\\begin{pmatrix}a & b \\\\ c & d\\end{pmatrix}$$ and the sum $$\\sum_i i$$ here.");
  assert.deepEqual(tex(html), ["\\begin{pmatrix}a &amp; b \\\\ c &amp; d\\end{pmatrix}", "\\sum_i i"]);
  assert.match(html, /^<p dir="auto">A matrix <span class="math-display"><span class="katex-display">/);
  assert.equal((html.match(/<math [^>]*display="block"/g) || []).length, 2);
  assert.doesNotMatch(html, /\$\$/);
  // At the start of a line followed by prose: a paragraph, not a display block swallowing the rest.
  const start = norm(markdownHtml("$$x^2$$ is a square.\nNext line."));
  assert.match(start, /^<p dir="auto"><span class="math-display">/);
  assert.match(start, /is a square\.<br>Next line\.<\/p>$/);
  // A $$ block on its own is unchanged.
  assert.match(markdownHtml("$$x$$"), /^<div class="math-display">/);
});

test("an inline $$ not yet closed stays text at every point of the stream", () => {
  const answer = "So $$\\frac{1}{2}$$ done.";
  for (let end = 1; end <= answer.length; end++) {
    const src = answer.slice(0, end);
    const html = markdownHtml(src);
    assert.doesNotMatch(html, /katex-error|math-source--error/, src);
    const closed = src.includes("$$\\frac{1}{2}$$");
    assert.equal(tex(html).length, closed ? 1 : 0, src);
    if (!closed && src.includes("$")) assert.match(html, /\$/, src);
  }
  assert.equal(markdownHtml("It costs $$ and more"), '<p dir="auto">It costs $$ and more</p>\n');
});

test("GFM task lists are disabled checkboxes labelled by the item's text", () => {
  const html = norm(markdownHtml("- [ ] write **tests**\n- [x] ship\n- plain\n- [y] not a task"));
  assert.match(html, /^<ul class="contains-task-list">/);
  assert.match(
    html,
    /<li class="task-list-item" dir="auto"><label class="task-list-item-label"><input class="task-list-item-checkbox" type="checkbox" disabled> write <strong>tests<\/strong><\/label><\/li>/,
  );
  assert.match(html, /<input class="task-list-item-checkbox" type="checkbox" disabled checked> ship<\/label>/);
  assert.match(html, /<li dir="auto">plain<\/li><li dir="auto">\[y\] not a task<\/li>/);
  assert.equal((html.match(/<input/g) || []).length, 2);
  // Ordered, uppercase X, loose lists: checkboxes too; brackets elsewhere stay text.
  assert.match(norm(markdownHtml("1. [X] done")), /<ol class="contains-task-list"><li class="task-list-item" dir="auto"><label[^>]*><input[^>]*disabled checked> done/);
  assert.match(norm(markdownHtml("- [ ] a\n\n- [x] b")), /<li class="task-list-item" dir="auto"><p dir="auto"><label/);
  assert.doesNotMatch(markdownHtml("Say [ ] here\n\n[x] there"), /<input/);
});

test("an answer that is just a list marker is text, not an empty list", () => {
  assert.equal(markdownHtml("1."), '<p dir="auto">1.</p>\n');
  assert.equal(markdownHtml("2024."), '<p dir="auto">2024.</p>\n');
  assert.equal(markdownHtml("3)"), '<p dir="auto">3)</p>\n');
  assert.equal(markdownHtml("-"), '<p dir="auto">-</p>\n');
  // A trailing empty item (the next one still streaming) shows its marker as text after the list.
  assert.equal(norm(markdownHtml("1. a\n2.")), '<ol><li dir="auto">a</li></ol><p dir="auto">2.</p>');
  // An empty item that is not last stays a list item; a list with content is untouched.
  assert.match(norm(markdownHtml("1.\n2. b")), /^<ol><li dir="auto"><\/li><li dir="auto">b<\/li><\/ol>$/);
  assert.equal(norm(markdownHtml("1. one")), '<ol><li dir="auto">one</li></ol>');
});

test("every block of model text has dir=auto", () => {
  const html = norm(markdownHtml("# عنوان\n\nمرحبا بالعالم\n\n> שלום\n\n- פריט\n\n| א |\n|---|\n| ב |"));
  assert.match(html, /<h1 dir="auto">عنوان<\/h1>/);
  assert.match(html, /<p dir="auto">مرحبا بالعالم<\/p>/);
  assert.match(html, /<blockquote dir="auto"><p dir="auto">שלום<\/p><\/blockquote>/);
  assert.match(html, /<li dir="auto">פריט<\/li>/);
  assert.match(html, /<th dir="auto">א<\/th>/);
  assert.match(html, /<td dir="auto">ב<\/td>/);
});

test("the new blocks render the same cut into streaming blocks as whole", () => {
  const answer = "Intro $$a+b$$ here.\n\n- [ ] one\n- [x] two\n\n| wide | table |\n|---|---|\n| x | y |\n\nمرحبا\n\n1.";
  for (let end = 1; end <= answer.length; end++) {
    const src = answer.slice(0, end);
    const parts = norm(splitMarkdownBlocks(src).map((b) => markdownHtml(b)).join(""));
    assert.equal(parts, norm(markdownHtml(src)), `differs after ${end} characters`);
  }
});
