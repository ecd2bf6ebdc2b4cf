// Agent Chat: small pure helpers shared by the page's modules (JSON and result text for
// the tool cards, counts for the usage line and the composer, the reconnect backoff).
// No DOM, no state: Node tests import them through model.js.

export const hasOwn = (obj, key) => obj !== null && typeof obj === "object" && Object.prototype.hasOwnProperty.call(obj, key);

/** JSON in Python's json.dumps style ({"x": 10, "y": 10}), so stored args look like typed ones. */
export function formatJson(value) {
  if (value === undefined) return "";
  if (value === null || typeof value !== "object") {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text;
  }
  if (Array.isArray(value)) return "[" + value.map(formatJson).join(", ") + "]";
  return "{" + Object.keys(value).map((k) => JSON.stringify(k) + ": " + formatJson(value[k])).join(", ") + "}";
}

/** A tool result as text: strings as they are, anything else as JSON. */
export function resultText(output) {
  if (typeof output === "string") return output;
  const text = JSON.stringify(output);
  return text === undefined ? String(output) : text;
}

/** Multi-line JSON for the expanded tool card; raw text when it does not parse. */
export function prettyJsonText(text) {
  try {
    const parsed = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object") return JSON.stringify(parsed, null, 2);
  } catch (_) {
    /* still being typed, or not JSON */
  }
  return text;
}

/** Length in code points, the way the server (Python len) counts. */
export function codePointLength(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

const plural = (n, word) => `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;

/** Usage line of an assistant message, e.g. "3 tools · 204 tokens". */
export function usageText(msg) {
  const parts = [];
  if (msg.tools.length) parts.push(plural(msg.tools.length, "tool"));
  const total = msg.usage && Number(msg.usage.total_tokens);
  if (Number.isFinite(total) && total > 0) parts.push(plural(total, "token"));
  return parts.join(" · ");
}

export const BACKOFF_START_MS = 500;
export const BACKOFF_MAX_MS = 10000;

/** Delay before reconnect attempt `attempt` (0-based): 0.5 s doubling to 10 s, jittered. */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** attempt);
  return Math.round(base / 2 + random() * (base / 2));
}

// ---- Markdown streaming: which part of an answer can change as more text arrives.

const FENCE = /^\s*(`{3,}|~{3,})/;
const LIST_ITEM = /^ {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)/;
const LINK_DEFINITION = /^ {0,3}\[[^\]\n]+\]:/m;

/**
 * Split Markdown source into top-level blocks that render the same apart as together, so a
 * streaming answer re-renders only the block still being written and keeps the finished ones.
 * This is not a Markdown parser (markdown-it parses each block): it only cuts at blank lines,
 * never inside a fenced code block, never before an indented line (a list item's continuation
 * or indented code) and never between two list items. When in doubt it does not cut: an
 * answer with reference-style link definitions (which reach across blocks) is one block.
 * Returns the blocks' source text, in order; joined with blank lines they give the answer back.
 */
export function splitMarkdownBlocks(text) {
  if (!text) return [];
  if (LINK_DEFINITION.test(text)) return [text];
  const blocks = [];
  let current = null; // {lines, list}
  let fence = null; // {char, len} while inside a fenced code block
  let blanks = 0; // blank lines seen since the current block's last line
  for (const line of text.split("\n")) {
    if (fence) {
      current.lines.push(line);
      const close = /^\s*(`{3,}|~{3,})\s*$/.exec(line);
      if (close && close[1][0] === fence.char && close[1].length >= fence.len) fence = null;
      continue;
    }
    if (line.trim() === "") {
      if (current) blanks++;
      continue;
    }
    const isItem = LIST_ITEM.test(line);
    const continues =
      current !== null && (blanks === 0 || /^[ \t]/.test(line) || (isItem && current.list));
    if (continues) {
      for (; blanks > 0; blanks--) current.lines.push("");
    } else {
      if (current) blocks.push(current.lines.join("\n"));
      current = { lines: [], list: isItem };
      blanks = 0;
    }
    current.lines.push(line);
    if (isItem) current.list = true;
    const open = FENCE.exec(line);
    if (open) {
      const rest = line.slice(line.indexOf(open[1]) + open[1].length);
      // A backtick fence's info string has no backtick; "```x```" on one line is inline code.
      if (open[1][0] === "~" || !rest.includes("`")) fence = { char: open[1][0], len: open[1].length };
    }
  }
  if (current) blocks.push(current.lines.join("\n"));
  return blocks;
}
