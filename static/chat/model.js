// Agent Chat: the conversation's state, without the DOM (Node-testable).
//
// ChatModel turns a snapshot and live run events into the messages to render,
// keeps the outbox of unacknowledged sends and tracks each run's seq. The pure
// helpers below (JSON formatting, counts, the reconnect backoff) are shared with
// view.js and connection.js.

import {
  DONE_STATUS,
  DONE_STATUSES,
  EVENT,
  MESSAGE_STATUS,
  RunTracker,
  VERDICT,
  isRunEvent,
  newClientId,
  sendFrame,
} from "./protocol.js";

const GENERATING = MESSAGE_STATUS.GENERATING;

// ---------------------------------------------------------------- helpers

const hasOwn = (obj, key) => obj !== null && typeof obj === "object" && Object.prototype.hasOwnProperty.call(obj, key);

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

// -------------------------------------------------------------- ChatModel

let revCounter = 0;
const nextRev = () => ++revCounter;

function newMessage(key, role) {
  return {
    key,
    role, // "user" | "assistant"
    id: null,
    status: "completed",
    clientId: null,
    runId: "",
    text: "", // the user's text, or the assistant's answer
    tools: [], // [{callId, name, args, phase: args|running|done|stopped, hasOutput, output, error}]
    usage: {},
    toolsUsed: [],
    model: "",
    error: null, // {code, message}
    created: "",
    pending: false, // optimistic user message, not yet stored by the server
    rev: nextRev(),
  };
}

const userKey = (clientId, id) => (clientId ? `u:${clientId}` : `u#${id}`);
const runKey = (runId, id) => (runId ? `a:${runId}` : `a#${id}`);

function toolFromStored(step, messageStatus) {
  const hasError = typeof step.error === "string" && step.error !== "";
  const hasOutput = !hasError && hasOwn(step, "output");
  let phase = "stopped";
  if (hasError || hasOutput) phase = "done";
  else if (messageStatus === GENERATING) phase = "running";
  return {
    callId: String(step.call_id || ""),
    name: String(step.name || "tool"),
    args: typeof step.args === "string" ? step.args : formatJson(step.args),
    phase,
    hasOutput,
    output: hasOutput ? step.output : undefined,
    error: hasError ? step.error : null,
  };
}

function messageFromStored(m) {
  const role = m.role === "user" ? "user" : "assistant";
  const key = role === "user" ? userKey(m.client_id, m.id) : runKey(m.run_id, m.id);
  const msg = newMessage(key, role);
  msg.id = m.id ?? null;
  msg.status = typeof m.status === "string" && m.status ? m.status : "completed";
  msg.clientId = m.client_id || null;
  msg.runId = m.run_id || "";
  msg.text = typeof m.content === "string" ? m.content : "";
  msg.model = m.model || "";
  msg.created = m.created || "";
  msg.usage = m.usage && typeof m.usage === "object" ? m.usage : {};
  msg.error = m.error ? { code: "", message: String(m.error) } : null;
  msg.tools = Array.isArray(m.tool_steps) ? m.tool_steps.map((s) => toolFromStored(s || {}, msg.status)) : [];
  return msg;
}

/**
 * Pure conversation state. Feed it frames (applySnapshot, handleRunEvent) and
 * local actions (queueSend, rejectSend); read `messages`, `activeRunId`, `outbox`.
 * Every change bumps the changed message's `rev` (and `structureRev` when the
 * list itself changes) so a view can re-render only what changed.
 */
export class ChatModel {
  constructor() {
    this.messages = [];
    this.byKey = new Map();
    this.tracker = new RunTracker();
    this.activeRunId = null;
    this.outbox = []; // [{clientId, content, sentOn: null | connection number}]
    this.loaded = false; // a snapshot has been applied
    this.structureRev = 0;
  }

  get awaitingSnapshot() {
    return this.tracker.awaitingSnapshot;
  }

  get activeRunMessage() {
    return this.activeRunId ? this.byKey.get(runKey(this.activeRunId)) || null : null;
  }

  _touch(msg) {
    msg.rev = nextRev();
  }

  _add(msg, beforeKey) {
    let key = msg.key;
    for (let i = 2; this.byKey.has(key); i++) key = `${msg.key}~${i}`; // never two nodes for one key
    msg.key = key;
    const before = beforeKey ? this.messages.findIndex((m) => m.key === beforeKey) : -1;
    if (before >= 0) this.messages.splice(before, 0, msg);
    else this.messages.push(msg);
    this.byKey.set(key, msg);
    this.structureRev++;
    return msg;
  }

  _remove(key) {
    const msg = this.byKey.get(key);
    if (!msg) return;
    this.byKey.delete(key);
    this.messages = this.messages.filter((m) => m !== msg);
    this.structureRev++;
  }

  /** Replace everything with the server's snapshot (idempotent: same snapshot, same state). */
  applySnapshot(snapshot) {
    this.messages = [];
    this.byKey.clear();
    this.tracker.reset();
    this.activeRunId = null;
    this.structureRev++;

    const stored = Array.isArray(snapshot && snapshot.messages) ? snapshot.messages : [];
    for (const m of stored) {
      if (!m || typeof m !== "object") continue;
      const msg = this._add(messageFromStored(m));
      if (msg.role === "assistant" && msg.runId && msg.status !== GENERATING) this.tracker.markFinished(msg.runId);
    }

    const active = snapshot && snapshot.active_run;
    if (active && typeof active.run_id === "string" && active.run_id) {
      const runId = active.run_id;
      // The stored assistant message of the active run may hold stale content: rebuild it from the events.
      const msg = this._runMessage(runId);
      Object.assign(msg, { text: "", tools: [], usage: {}, toolsUsed: [], error: null, status: GENERATING });
      this.activeRunId = runId;
      const events = (Array.isArray(active.events) ? active.events : [])
        .filter((e) => isRunEvent(e) && e.run_id === runId)
        .sort((a, b) => a.seq - b.seq);
      let last = 0;
      for (const event of events) {
        if (event.seq <= last) continue;
        this._apply(event);
        last = event.seq;
      }
      this.tracker.setLastSeq(runId, last);
    }

    // A "generating" message with no active run (a stale row) has no tool still running.
    for (const msg of this.messages) {
      if (msg.role !== "assistant" || msg.runId === this.activeRunId) continue;
      for (const tool of msg.tools) if (tool.phase === "running") tool.phase = "stopped";
    }

    // Sends not stored yet stay on screen (they will be re-sent); stored ones are acknowledged.
    for (const entry of [...this.outbox]) {
      if (this.byKey.has(userKey(entry.clientId))) this._ack(entry.clientId);
      else this._add(this._optimistic(entry));
    }
    this.loaded = true;
  }

  /** A live run event: returns the RunTracker verdict (APPLY, DUPLICATE, GAP or STALE). */
  handleRunEvent(event) {
    const verdict = this.tracker.check(event);
    if (verdict === VERDICT.APPLY) this._apply(event);
    return verdict;
  }

  _runMessage(runId) {
    const key = runKey(runId);
    let msg = this.byKey.get(key);
    if (!msg) {
      msg = newMessage(key, "assistant");
      msg.runId = runId;
      msg.status = GENERATING;
      this._add(msg);
    }
    return msg;
  }

  _tool(msg, callId, name) {
    let tool = msg.tools.find((t) => t.callId === callId);
    if (!tool) {
      tool = { callId, name: name || "tool", args: "", phase: "args", hasOutput: false, output: undefined, error: null };
      msg.tools.push(tool);
    }
    return tool;
  }

  _ensureUserMessage(um, runId) {
    const clientId = typeof um.client_id === "string" && um.client_id ? um.client_id : null;
    const content = typeof um.content === "string" ? um.content : "";
    if (clientId && this.byKey.has(userKey(clientId))) {
      const msg = this.byKey.get(userKey(clientId));
      Object.assign(msg, { id: um.id ?? msg.id, text: content || msg.text, pending: false, status: "completed" });
      this._touch(msg);
      this._ack(clientId);
      return;
    }
    if (um.id != null && this.messages.some((m) => m.role === "user" && m.id === um.id)) return;
    const msg = newMessage(userKey(clientId, um.id), "user");
    Object.assign(msg, { id: um.id ?? null, clientId, text: content });
    this._add(msg, this.byKey.has(runKey(runId)) ? runKey(runId) : null);
  }

  /** Apply one run event (already checked for order). */
  _apply(event) {
    if (event.type === EVENT.RUN_STARTED && event.user_message && typeof event.user_message === "object") {
      this._ensureUserMessage(event.user_message, event.run_id);
    }
    const msg = this._runMessage(event.run_id);
    switch (event.type) {
      case EVENT.RUN_STARTED:
        msg.status = GENERATING;
        if (event.model) msg.model = event.model;
        this.activeRunId = event.run_id;
        break;
      case EVENT.TOOL_START:
        this._tool(msg, event.call_id, event.name);
        break;
      case EVENT.TOOL_ARGS:
        this._tool(msg, event.call_id).args += typeof event.delta === "string" ? event.delta : "";
        break;
      case EVENT.STEP_END:
        for (const tool of msg.tools) if (tool.phase === "args") tool.phase = "running";
        break;
      case EVENT.TOOL_RESULT: {
        const tool = this._tool(msg, event.call_id, event.name);
        if (event.name) tool.name = event.name;
        if (typeof event.error === "string") {
          tool.error = event.error;
          tool.hasOutput = false;
        } else {
          tool.hasOutput = true;
          tool.output = event.output;
        }
        tool.phase = "done";
        break;
      }
      case EVENT.TOKEN:
        msg.text += typeof event.text === "string" ? event.text : "";
        break;
      case EVENT.FINAL:
        if (typeof event.content === "string") msg.text = event.content;
        msg.usage = event.usage && typeof event.usage === "object" ? event.usage : {};
        msg.toolsUsed = Array.isArray(event.tools_used) ? event.tools_used : [];
        break;
      case EVENT.ERROR:
        msg.error = { code: String(event.code || ""), message: String(event.message || "Something went wrong.") };
        break;
      case EVENT.DONE:
        msg.status = DONE_STATUSES.includes(event.status) ? event.status : DONE_STATUS.COMPLETED;
        for (const tool of msg.tools) if (tool.phase !== "done") tool.phase = "stopped";
        if (this.activeRunId === event.run_id) this.activeRunId = null;
        break;
      default:
        return; // unknown type (newer server): counted by the tracker, nothing to show
    }
    this._touch(msg);
  }

  _optimistic(entry) {
    const msg = newMessage(userKey(entry.clientId), "user");
    Object.assign(msg, { clientId: entry.clientId, text: entry.content, pending: true, status: "pending" });
    return msg;
  }

  /** Show a message the user just wrote and queue its `send` frame. */
  queueSend(content, clientId = newClientId()) {
    const entry = { clientId, content, sentOn: null };
    this.outbox.push(entry);
    this._add(this._optimistic(entry));
    return entry;
  }

  hasPendingSend() {
    return this.outbox.length > 0;
  }

  /** Frames not yet sent on connection `connection`; marks them sent. */
  takeUnsent(connection) {
    const frames = [];
    for (const entry of this.outbox) {
      if (entry.sentOn === connection) continue;
      entry.sentOn = connection;
      frames.push(sendFrame(entry.content, entry.clientId));
    }
    return frames;
  }

  _ack(clientId) {
    this.outbox = this.outbox.filter((e) => e.clientId !== clientId);
  }

  /**
   * The server refused a send (busy, too_long, ...): forget it and drop its
   * optimistic message. Returns the outbox entry (its text goes back to the
   * composer) or null when no send was waiting.
   */
  rejectSend(error) {
    const byId = error && typeof error.client_id === "string" ? error.client_id : null;
    const entry = byId
      ? this.outbox.find((e) => e.clientId === byId)
      : this.outbox.find((e) => e.sentOn !== null);
    if (!entry) return null;
    this._ack(entry.clientId);
    const msg = this.byKey.get(userKey(entry.clientId));
    if (msg && msg.pending) this._remove(msg.key);
    return entry;
  }
}
