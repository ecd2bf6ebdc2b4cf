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
