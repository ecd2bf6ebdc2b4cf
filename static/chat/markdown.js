// Agent Chat: an assistant's answer as Markdown, rendered while it streams.
//
// markdown-it parses (raw HTML off: it shows as text), highlight.js colours fenced code, and
// DOMPurify sanitises every piece of HTML before it reaches the page (static/vendor/, served
// from our own origin). Links open in a new tab with rel="noopener noreferrer"; only http(s),
// mailto and relative links are kept (a `javascript:` or `data:` link stays text); images from
// the model are never loaded, they show as a link with their alt text.
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

const ALIGN = /^text-align:\s*(left|right|center);?$/;
let purify = null; // made on first use, so the module also loads in Node (tests) without a DOM

function sanitizer() {
  if (purify) return purify;
  purify = DOMPurify(window);
  purify.addHook("uponSanitizeAttribute", (node, data) => {
    // markdown-it aligns table cells with style="text-align:…"; no other style survives.
    if (data.attrName === "style") data.keepAttr = ALIGN.test(data.attrValue.trim());
  });
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  return purify;
}

const PURIFY_CONFIG = {
  ALLOWED_TAGS: [
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
    "span", "em", "strong", "s", "del", "a", "table", "thead", "tbody", "tr", "th", "td", "sup", "sub",
  ],
  ALLOWED_ATTR: ["href", "title", "class", "start", "style"],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
  RETURN_DOM_FRAGMENT: true,
};

/** One block of Markdown source as sanitised DOM (a DocumentFragment). */
export function renderMarkdown(src) {
  const fragment = sanitizer().sanitize(md.render(src), PURIFY_CONFIG);
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
