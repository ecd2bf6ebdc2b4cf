// Streaming Markdown: splitMarkdownBlocks (static/chat/helpers.js) cuts an answer into blocks
// that markdown-it renders the same apart as together, so the page re-renders only the last
// one while an answer streams. Run: node --test tests/js/

import test from "node:test";
import assert from "node:assert/strict";

import MarkdownIt from "../../static/vendor/markdown-it/markdown-it.esm.min.js";
import { splitMarkdownBlocks } from "../../static/chat/helpers.js";

const md = new MarkdownIt({ html: false, linkify: true, breaks: true });
const norm = (html) => html.replace(/\n/g, "");

const SAMPLE = [
  "Here is the **plan**:",
  "",
  "| step | cost |",
  "|---|--:|",
  "| parse | 1 |",
  "| render | 2 |",
  "",
  "```python",
  "def f(x):",
  "",
  "    return x * 2",
  "```",
  "",
  "1. first",
  "",
  "2. second",
  "   continued",
  "",
  "   more of the second item",
  "",
  "- a",
  "- b",
  "",
  "> quoted",
  "",
  "    indented code",
  "",
  "    still code",
  "",
  "See [docs](https://example.com).",
].join("\n");

test("blocks cut at blank lines, never inside a fence, a list or before an indented line", () => {
  assert.deepEqual(splitMarkdownBlocks(SAMPLE), [
    "Here is the **plan**:",
    "| step | cost |\n|---|--:|\n| parse | 1 |\n| render | 2 |",
    "```python\ndef f(x):\n\n    return x * 2\n```",
    // When in doubt it does not cut: a list after a list, an indented line after anything.
    "1. first\n\n2. second\n   continued\n\n   more of the second item\n\n- a\n- b",
    "> quoted\n\n    indented code\n\n    still code",
    "See [docs](https://example.com).",
  ]);
});

test("the blocks render like the whole answer, at every point of the stream", () => {
  for (let end = 1; end <= SAMPLE.length; end++) {
    const text = SAMPLE.slice(0, end);
    const whole = norm(md.render(text));
    const parts = norm(splitMarkdownBlocks(text).map((b) => md.render(b)).join(""));
    // A loose list split from a tight one would differ by <p>s; the splitter keeps lists whole.
    assert.equal(parts, whole, `differs after ${end} characters: ${JSON.stringify(text.slice(-20))}`);
  }
});

test("an unfinished fence holds everything after it in one block", () => {
  const text = "Intro\n\n```js\nlet a = 1;\n\nlet b = 2;\n";
  assert.deepEqual(splitMarkdownBlocks(text), ["Intro", "```js\nlet a = 1;\n\nlet b = 2;\n"]);
  assert.deepEqual(splitMarkdownBlocks("~~~\na\n\n```\nb\n~~~\n\nafter"), ["~~~\na\n\n```\nb\n~~~", "after"]);
});

test("streaming only ever changes the last block or adds new ones", () => {
  let previous = [];
  for (let end = 1; end <= SAMPLE.length; end++) {
    const blocks = splitMarkdownBlocks(SAMPLE.slice(0, end));
    const stable = blocks.slice(0, -1);
    for (let i = 0; i < stable.length && i < previous.length - 1; i++) assert.equal(stable[i], previous[i]);
    previous = blocks;
  }
});

test("reference-style link definitions reach across blocks: the answer stays one block", () => {
  const text = "See [the docs][1].\n\nMore.\n\n[1]: https://example.com";
  assert.deepEqual(splitMarkdownBlocks(text), [text]);
});

test("empty and blank answers have no blocks; inline ``` does not open a fence", () => {
  assert.deepEqual(splitMarkdownBlocks(""), []);
  assert.deepEqual(splitMarkdownBlocks("\n\n"), []);
  assert.deepEqual(splitMarkdownBlocks("use ```x``` here\n\nnext"), ["use ```x``` here", "next"]);
});
