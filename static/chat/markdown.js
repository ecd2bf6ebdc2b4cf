// Agent Chat: an assistant's answer as Markdown, rendered while it streams.
//
// markdown-it parses (raw HTML off: it shows as text), highlight.js colours fenced code, and
// DOMPurify sanitises every piece of HTML before it reaches the page (static/vendor/, served
// from our own origin). Links open in a new tab with rel="noopener noreferrer"; only http(s),
// mailto and relative links are kept (a `javascript:` or `data:` link stays text); images from
// the model are never loaded, they show as a link with their alt text.
//
// Math: @mdit/plugin-tex finds `$…$` and `\(…\)` inline and `$$…$$` and `\[…\]` display math (a `$`
// followed by a space, or a closing `$` preceded by one or followed by a digit, is no delimiter: "it costs
// $5 and $10" stays text), KaTeX renders it (trust off: no \href, \url, \includegraphics; limits on
// macro expansion and sizes) and the same DOMPurify step sanitises its spans, MathML and SVG. Math that
// KaTeX cannot parse, and a `$$` block not yet closed while it streams, show as their source text.
//
// Blocks (issue #28): a table sits in a focusable box that scrolls sideways (app.css keeps its words
// whole); `$$…$$` inside a line of prose is display math; GFM task items (`- [ ]`, `- [x]`) get a disabled
// checkbox in a label with their text; an empty list item at the very end ("1.", "2024.") is text; every
// paragraph, list item, heading, quote and table cell gets dir="auto". DOMPurify keeps the attributes this
// adds only with exactly their values on exactly their elements (OWN_ATTRS).
//
// Streaming: the answer is cut into top-level blocks (helpers.js splitMarkdownBlocks); a block
// whose source did not change keeps its DOM, so each render (at most one per animation frame,
// app.js) re-renders only the block still being written.

import MarkdownIt from "../vendor/markdown-it/markdown-it.esm.min.js";
import DOMPurify from "../vendor/dompurify/purify.es.js";
import hljs from "../vendor/highlight/core.min.js";
import bash from "../vendor/highlight/languages/bash.min.js";
import css from "../vendor/highlight/languages/css.min.js";
import javascript from "../vendor/highlight/languages/javascript.min.js";
import json from "../vendor/highlight/languages/json.min.js";
import python from "../vendor/highlight/languages/python.min.js";
import shell from "../vendor/highlight/languages/shell.min.js";
import sql from "../vendor/highlight/languages/sql.min.js";
import typescript from "../vendor/highlight/languages/typescript.min.js";
import xml from "../vendor/highlight/languages/xml.min.js";
import katex from "../vendor/katex/katex.esm.js";
import { tex } from "../vendor/mdit-plugin-tex/index.js";
import { splitMarkdownBlocks } from "./helpers.js";
import { el } from "./dom.js";

for (const [name, lang] of Object.entries({ bash, css, javascript, json, python, shell, sql, typescript, xml })) {
  hljs.registerLanguage(name, lang);
}

const SAFE_LINK = /^(?:https?:|mailto:)/i;
const HAS_SCHEME = /^[a-z][a-z0-9+.-]*:/i;

function highlight(code, lang) {
  const name = (lang || "").trim().split(/\s+/)[0].toLowerCase();
  if (!name || !hljs.getLanguage(name)) return ""; // markdown-it escapes it as plain text
  try {
    return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
  } catch (_) {
    return "";
  }
}

const md = new MarkdownIt({ html: false, linkify: true, breaks: true, typographer: false, highlight });
// Only web and mail links (and relative ones): javascript:, data:, vbscript:, file: stay text.
md.validateLink = (url) => {
  const trimmed = String(url).trim();
  return SAFE_LINK.test(trimmed) || !HAS_SCHEME.test(trimmed);
};
// An image from the model is not loaded: a link to it, named by its alt text.
md.renderer.rules.image = (tokens, idx, options, env, self) => {
  const token = tokens[idx];
  const alt = self.renderInlineAsText(token.children || [], options, env) || "image";
  const src = token.attrGet("src") || "";
  return `<a class="md-image" href="${md.utils.escapeHtml(src)}">${md.utils.escapeHtml(alt)}</a>`;
};

// ---- Math

const KATEX_OPTIONS = {
  throwOnError: false, // a parse error comes back as a .katex-error span (shown as source text below)
  trust: false, // \href, \url, \includegraphics, \htmlClass…: rendered as inert text, never a link or an image
  strict: "ignore", // no console warnings for Unicode text in math
  maxExpand: 500, // macro expansions per formula (\def loops)
  maxSize: 20, // em, for \rule and spacing commands
  maxDepth: 100,
  output: "htmlAndMathml", // the MathML is what screen readers read (the HTML is aria-hidden)
};
const CLOSING = { $: "$", $$: "$$", "\\(": "\\)", "\\[": "\\]" };
const KATEX_ERROR = /^<span class="katex-error" title="([^"]*)"/;

md.use(tex, { delimiters: "all", render: () => "" }); // the parser only: the two rules below render
md.renderer.rules.math_inline = (tokens, idx) => mathHtml(tokens[idx], false, { closed: true });
md.renderer.rules.math_block = (tokens, idx, options, env) => mathHtml(tokens[idx], true, blockSource(tokens[idx], env));

// `$$…$$` inside a line of prose is display math too (the plugin only takes it at the start of a line and
// leaves it as text elsewhere). Its closing `$$` must be on the same paragraph: while it streams, a `$$`
// not closed yet stays text.
md.inline.ruler.before("math_inline_dollar", "math_inline_display", (state, silent) => {
  const start = state.pos;
  if (state.src.charCodeAt(start) !== 0x24 || state.src.charCodeAt(start + 1) !== 0x24) return false;
  let end = start + 2;
  for (;;) {
    end = state.src.indexOf("$$", end);
    if (end === -1) return false;
    let slashes = 0;
    while (state.src.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
    if (slashes % 2 === 0) break;
    end += 1;
  }
  const body = state.src.slice(start + 2, end);
  if (!body.trim()) return false;
  if (!silent) {
    const token = state.push("math_inline_display", "math", 0);
    token.markup = "$$";
    token.content = body;
  }
  state.pos = end + 2;
  return true;
});
md.renderer.rules.math_inline_display = (tokens, idx) =>
  mathHtml(tokens[idx], true, { closed: true }).replace(/^<div class="math-display">([\s\S]*)<\/div>\n$/, '<span class="math-display">$1</span>');

// A line that starts with `$$…$$` and goes on with prose is a paragraph with display math in it, not a
// display block that swallows the lines after it.
const BLOCK_DOLLAR = md.block.ruler.__rules__.find((rule) => rule.name === "math_block_dollar");
const blockDollar = BLOCK_DOLLAR.fn;
md.block.ruler.at(
  "math_block_dollar",
  (state, startLine, endLine, silent) => {
    const line = state.src.slice(state.bMarks[startLine] + state.tShift[startLine], state.eMarks[startLine]).trimEnd();
    const close = line.startsWith("$$") ? line.indexOf("$$", 2) : -1;
    if (close !== -1 && close + 2 < line.length) return false;
    return blockDollar(state, startLine, endLine, silent);
  },
  { alt: [...BLOCK_DOLLAR.alt] },
);

/** KaTeX's HTML for one math token; its source as text when KaTeX cannot parse it or it is not closed yet. */
function mathHtml(token, display, { closed, openAlone = false, closeAlone = false }) {
  const open = token.markup;
  const body = display ? token.content.replace(/\n$/, "") : token.content;
  let error = "";
  if (closed) {
    let html;
    try {
      html = katex.renderToString(body, { ...KATEX_OPTIONS, displayMode: display });
    } catch (err) {
      html = null; // not a ParseError (those come back as HTML); show the source all the same
      error = md.utils.escapeHtml(String((err && err.message) || err));
    }
    const failed = html === null ? null : KATEX_ERROR.exec(html);
    if (html !== null && !failed) return display ? `<div class="math-display">${html}</div>\n` : html;
    if (failed) error = failed[1];
  }
  const close = closed ? (closeAlone ? "\n" : "") + CLOSING[open] : "";
  const source = md.utils.escapeHtml(open + (openAlone ? "\n" : "") + body + close);
  const title = error ? ` title="${error}"` : "";
  const cls = closed ? "math-source math-source--error" : "math-source";
  if (!display) return `<span class="${cls}"${title}>${source}</span>`;
  return `<p class="${cls}"${title}>${source.replace(/\n/g, "<br>\n")}</p>\n`;
}

// The plugin takes a `$$` block that is never closed to the end of the text: while the answer streams
// that is a formula still being written, shown as text until its `$$` comes (`\[` blocks are always
// closed). The block's source lines tell, and whether its delimiters stand on lines of their own.
function blockSource(token, env) {
  const lines = (env && env.lines) || [];
  const [first, end] = token.map || [0, 0];
  const close = CLOSING[token.markup];
  const opening = (lines[first] || "").trim();
  const last = (lines[end - 1] || "").trimEnd();
  const multiline = end - first > 1;
  const openAlone = multiline && opening.endsWith(token.markup) && opening.indexOf(token.markup) === opening.length - token.markup.length;
  let closed = token.markup !== "$$" || !token.map;
  if (!closed && last.endsWith(close)) {
    closed = multiline || last.length - last.indexOf(token.markup) >= token.markup.length + close.length;
  }
  const closeAlone = closed && multiline && last.trim().length - close.length <= 0;
  return { closed, openAlone, closeAlone };
}

// ---- Blocks: scrolling tables, task lists, a bare list marker, text direction

// A table scrolls sideways in its own box (a focusable region, so it scrolls by keyboard too) instead of
// squeezing its cells until words break.
md.renderer.rules.table_open = () => '<div class="md-table" tabindex="0" role="region" aria-label="Table">\n<table>\n';
md.renderer.rules.table_close = () => "</table>\n</div>\n";

const LONG_CELL = 40; // characters of Markdown source
const TASK = /^\[([ xX])\](?=\s|$)\s*/;
const DIR_AUTO = new Set(["paragraph_open", "heading_open", "blockquote_open", "list_item_open", "th_open", "td_open"]);

md.core.ruler.push("agent_chat_blocks", (state) => {
  bareMarkerAsText(state);
  const tokens = state.tokens;
  for (let i = 2; i < tokens.length; i++) {
    // GFM task list: `- [ ] todo` / `- [x] done`, a disabled checkbox labelled by the item's text.
    const inline = tokens[i];
    if (inline.type !== "inline" || tokens[i - 1].type !== "paragraph_open" || tokens[i - 2].type !== "list_item_open") continue;
    const first = inline.children && inline.children[0];
    const match = first && first.type === "text" ? TASK.exec(first.content) : null;
    if (!match) continue;
    first.content = first.content.slice(match[0].length);
    const open = new state.Token("task_open", "label", 1);
    open.meta = { checked: match[1] !== " " };
    inline.children.unshift(open);
    inline.children.push(new state.Token("task_close", "label", -1));
    tokens[i - 2].attrJoin("class", "task-list-item");
    for (let j = i - 3; j >= 0; j--) {
      if ((tokens[j].type === "bullet_list_open" || tokens[j].type === "ordered_list_open") && tokens[j].level === tokens[i - 2].level - 1) {
        if (!(tokens[j].attrGet("class") || "").includes("contains-task-list")) tokens[j].attrJoin("class", "contains-task-list");
        break;
      }
    }
  }
  // Right-to-left text (Arabic, Hebrew) aligns right: each block takes its direction from its own text.
  // A table cell stays on one line (app.css) unless its text is long enough to read better wrapped.
  tokens.forEach((token, i) => {
    if (DIR_AUTO.has(token.type)) token.attrSet("dir", "auto");
    if ((token.type === "td_open" || token.type === "th_open") && tokens[i + 1].content.length > LONG_CELL) {
      token.attrJoin("class", "md-cell-long");
    }
  });
});
md.renderer.rules.task_open = (tokens, idx) =>
  `<label class="task-list-item-label"><input class="task-list-item-checkbox" type="checkbox" disabled${tokens[idx].meta.checked ? " checked" : ""}> `;
md.renderer.rules.task_close = () => "</label>";

// An answer that is just "1." (or "2024.", or "-") is text, not an empty list marker: a list item with no
// content at the very end of the text becomes a paragraph of its marker.
function bareMarkerAsText(state) {
  const tokens = state.tokens;
  let i = tokens.length - 1;
  while (i >= 0 && tokens[i].nesting === -1 && tokens[i].type !== "list_item_close") i--;
  if (i < 1 || tokens[i].type !== "list_item_close" || tokens[i - 1].type !== "list_item_open") return;
  const item = tokens[i - 1];
  const listClose = tokens[i + 1];
  if (!listClose || !/_list_close$/.test(listClose.type)) return;
  if (tokens.slice(i + 2).some((t) => t.nesting !== -1)) return;
  const ordered = listClose.type === "ordered_list_close";
  const text = ordered ? `${item.info}${item.markup}` : item.markup;
  const para = new state.Token("paragraph_open", "p", 1);
  const inline = state.md.parseInline(text, state.env)[0];
  inline.map = item.map;
  const paraClose = new state.Token("paragraph_close", "p", -1);
  para.level = paraClose.level = listClose.level;
  para.block = paraClose.block = true;
  inline.level = listClose.level + 1;
  para.map = item.map;
  tokens.splice(i - 1, 2); // the empty item
  const listOpenIdx = findOpen(tokens, i - 2, listClose);
  if (listOpenIdx !== -1 && tokens[listOpenIdx + 1] === listClose) {
    tokens.splice(listOpenIdx, 2, para, inline, paraClose); // it was the list's only item
  } else {
    tokens.splice(tokens.indexOf(listClose) + 1, 0, para, inline, paraClose);
  }
}

/** The index of the list_open token that `close` ends, searching back from `from`. */
function findOpen(tokens, from, close) {
  const type = close.type.replace(/_close$/, "_open");
  for (let j = Math.min(from, tokens.length - 1); j >= 0; j--) if (tokens[j].type === type && tokens[j].level === close.level) return j;
  return -1;
}

const ALIGN = /^text-align:\s*(left|right|center);?$/;
// KaTeX positions its boxes with inline styles: these properties, with plain lengths, colours and keywords.
const KATEX_STYLE_PROPS = new Set([
  "background-color", "border-bottom-width", "border-color", "border-right-style", "border-right-width",
  "border-style", "border-top-width", "border-width", "bottom", "color", "height", "left", "margin",
  "margin-left", "margin-right", "margin-top", "min-width", "padding-left", "position", "text-shadow", "top",
  "vertical-align", "width",
]);
const STYLE_VALUE = /^[#\w\s.,%+-]*(?:calc\([\w\s.%+*\/-]*\)[\w\s.%+-]*)*$/;

/** A KaTeX style attribute with only known properties and no url(), expression() or escapes. */
function katexStyle(style) {
  return style.split(";").every((decl) => {
    if (!decl.trim()) return true;
    const colon = decl.indexOf(":");
    if (colon < 0) return false;
    const prop = decl.slice(0, colon).trim().toLowerCase();
    return KATEX_STYLE_PROPS.has(prop) && STYLE_VALUE.test(decl.slice(colon + 1).trim());
  });
}
let purify = null; // made on first use, so the module also loads in Node (tests) without a DOM

function sanitizer() {
  if (purify) return purify;
  purify = DOMPurify(window);
  purify.addHook("uponSanitizeAttribute", (node, data) => {
    // markdown-it aligns table cells with style="text-align:…"; KaTeX sizes and places its boxes (inside
    // its .katex spans; the model cannot write a style or a class: raw HTML is off). No other style survives.
    if (data.attrName === "style") {
      const value = data.attrValue.trim();
      data.keepAttr = ALIGN.test(value) || (node.closest(".katex") !== null && katexStyle(value));
    } else if (data.attrName in OWN_ATTRS) {
      // The attributes markdown.js itself adds, with exactly their values, on exactly their elements.
      const [tag, value] = OWN_ATTRS[data.attrName];
      data.keepAttr = (tag === "*" || node.tagName === tag) && (value === null || data.attrValue === value);
    }
  });
  purify.addHook("afterSanitizeAttributes", (node) => {
    // A task list's checkbox shows a state; it is never a control.
    if (node.tagName === "INPUT") {
      node.setAttribute("type", "checkbox");
      node.setAttribute("disabled", "");
    }
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  return purify;
}

// KaTeX's output: spans, MathML (math … annotation) and SVG paths and lines for stretchy symbols.
const KATEX_TAGS = [
  "div", "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub",
  "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd", "mlabeledtr",
  "mstyle", "mpadded", "mphantom", "menclose", "svg", "path", "line",
];
const KATEX_ATTR = [
  "aria-hidden", "xmlns", "encoding", "display", "mathvariant", "stretchy", "fence", "separator", "lspace",
  "rspace", "minsize", "maxsize", "accent", "accentunder", "linethickness", "columnalign", "columnlines",
  "columnspacing", "rowalign", "rowlines", "rowspacing", "displaystyle", "scriptlevel", "mathcolor",
  "mathbackground", "notation", "width", "height", "depth", "voffset", "movablelimits", "symmetric", "largeop",
  "viewbox", "preserveaspectratio", "d", "x1", "x2", "y1", "y2", "stroke-width",
];

// tag ("*": any) and value (null: any, for a boolean attribute "" is its value) of each attribute that
// markdown.js adds: text direction, the table's scrolling region and a task list's checkbox.
const OWN_ATTRS = {
  dir: ["*", "auto"],
  tabindex: ["DIV", "0"],
  role: ["DIV", "region"],
  "aria-label": ["DIV", "Table"],
  type: ["INPUT", "checkbox"],
  disabled: ["INPUT", ""],
  checked: ["INPUT", ""],
};

const PURIFY_CONFIG = {
  ALLOWED_TAGS: [
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
    "span", "em", "strong", "s", "del", "a", "table", "thead", "tbody", "tr", "th", "td", "sup", "sub",
    "label", "input", ...KATEX_TAGS,
  ],
  ALLOWED_ATTR: ["href", "title", "class", "start", "style", ...Object.keys(OWN_ATTRS), ...KATEX_ATTR],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
  RETURN_DOM_FRAGMENT: true,
};

/** One block of Markdown source as HTML, not yet sanitised (renderMarkdown sanitises it; Node tests read it). */
export function markdownHtml(src) {
  const env = { lines: src.replace(/\r\n?/g, "\n").split("\n") }; // for the math blocks' closing lines
  return md.render(src, env);
}

/** One block of Markdown source as sanitised DOM (a DocumentFragment). */
export function renderMarkdown(src) {
  const fragment = sanitizer().sanitize(markdownHtml(src), PURIFY_CONFIG);
  // markdown-it ends each block with a newline: between blocks it is no text of the answer.
  for (const child of [...fragment.childNodes]) if (child.nodeType === 3 && !child.data.trim()) child.remove();
  for (const pre of fragment.querySelectorAll("pre")) decorateCode(pre);
  return fragment;
}

// A fenced code block gets a header: its language and a copy button (view.js handles the click).
function decorateCode(pre) {
  const code = pre.querySelector("code");
  const match = code && /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
  if (code) code.classList.add("hljs");
  const box = el("div", "codeblock", { "data-testid": "code-block" });
  const head = el("div", "codeblock__head");
  const lang = el("span", "codeblock__lang");
  lang.textContent = match ? match[1] : "text";
  const copy = el("button", "codeblock__copy", { type: "button", "data-testid": "code-copy", "aria-label": "Copy code" });
  copy.textContent = "Copy";
  head.append(lang, copy);
  pre.replaceWith(box);
  box.append(head, pre);
}

/**
 * The rendered Markdown of one answer, kept in `root`: `update(text)` re-renders only the
 * blocks whose source changed (while streaming, the last one).
 */
export class MarkdownView {
  constructor(root) {
    this.root = root;
    this.blocks = []; // [{src, el}]
    this.text = null;
  }

  update(text) {
    if (text === this.text) return;
    this.text = text;
    const sources = splitMarkdownBlocks(text);
    const blocks = this.blocks;
    for (let i = 0; i < sources.length; i++) {
      const old = blocks[i];
      if (old && old.src === sources[i]) continue;
      const node = el("div", "md-block");
      node.append(renderMarkdown(sources[i]));
      if (old) old.el.replaceWith(node);
      else this.root.append(node);
      blocks[i] = { src: sources[i], el: node };
    }
    for (const extra of blocks.splice(sources.length)) extra.el.remove();
  }
}
