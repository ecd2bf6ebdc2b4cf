// Agent Chat: the conversation's state, without the DOM (Node-testable).
//
// ChatModel turns a snapshot and live run events into the messages to render,
// keeps the outbox of unacknowledged sends and tracks each run's seq and each tool
// call's approval (approvals.js). The pure helpers of helpers.js (JSON formatting,
// counts, the reconnect backoff) are re-exported here for the tests.

import {
  DONE_STATUS,
  DONE_STATUSES,
  EVENT,
  MESSAGE_STATUS,
  RunTracker,
  VERDICT,
  approvalFrame,
  isRunEvent,
  newClientId,
  sendFrame,
} from "./protocol.js";
import { formatJson, hasOwn } from "./helpers.js";
import { approvalFromStored, closeApproval, findApproval, isPendingApproval, newApproval, resolveApproval } from "./approvals.js";

export { BACKOFF_MAX_MS, BACKOFF_START_MS, backoffDelay, codePointLength, formatJson, prettyJsonText, resultText, usageText } from "./helpers.js";

const GENERATING = MESSAGE_STATUS.GENERATING;

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
    tools: [], // [{callId, name, args, phase: args|running|done|stopped, hasOutput, output, error, approval}]
    usage: {},
    toolsUsed: [],
    model: "",
    error: null, // {code, message}
    feedback: null, // {rating: 1 | -1, comment, updated}: the stored feedback (snapshots only)
    versions: [], // ids of this message's versions, oldest first (snapshots only; see versions.js)
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
    approval: approvalFromStored(step.approval, step.args), // null, or approvals.js's state
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
  msg.feedback = m.feedback && typeof m.feedback === "object" ? m.feedback : null;
  msg.versions = Array.isArray(m.versions) ? m.versions.filter(Number.isInteger) : [];
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
    this.sentDecisions = new Map(); // approval_id -> "approve" | "deny", sent, not yet resolved
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
      // The stored assistant message of the active run may hold stale content: rebuild it from the events,
      // unless its log lost its first events (`head_lost`): then they carry on from the stored answer.
      const msg = this._runMessage(runId);
      const base = active.head_lost === true ? {} : { text: "", tools: [], usage: {}, toolsUsed: [] };
      Object.assign(msg, base, { error: null, status: GENERATING });
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

    // A "generating" message with no active run (a stale row) has no tool still running,
    // nor an approval anyone can still give.
    for (const msg of this.messages) {
      if (msg.role !== "assistant" || msg.runId === this.activeRunId) continue;
      for (const tool of msg.tools) {
        if (tool.phase === "running") tool.phase = "stopped";
        closeApproval(tool.approval);
      }
    }

    // A decision this tab sent and the server has not resolved yet is still on its way.
    for (const [approvalId, choice] of [...this.sentDecisions]) {
      const found = findApproval(this.messages, approvalId);
      if (found && isPendingApproval(found.tool.approval)) found.tool.approval.sent = choice;
      else this.sentDecisions.delete(approvalId);
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
      tool = { callId, name: name || "tool", args: "", phase: "args", hasOutput: false, output: undefined, error: null, approval: null };
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
      case EVENT.APPROVAL_REQUESTED: {
        // The run waits for a person; it is still generating. The args are complete now.
        const tool = this._tool(msg, event.call_id, event.name);
        if (event.name) tool.name = event.name;
        if (tool.args === "") tool.args = formatJson(event.args);
        if (tool.phase === "args") tool.phase = "running";
        tool.approval = newApproval(event.approval_id, event.args);
        const sent = this.sentDecisions.get(tool.approval.id);
        if (sent) tool.approval.sent = sent;
        break;
      }
      case EVENT.APPROVAL_RESOLVED: {
        const tool = msg.tools.find((t) => t.approval && t.approval.id === event.approval_id);
        if (!tool) return; // its request was never seen: nothing to show
        resolveApproval(tool.approval, event.decision, event.by);
        this.sentDecisions.delete(tool.approval.id);
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
        for (const tool of msg.tools) {
          if (tool.phase !== "done") tool.phase = "stopped";
          closeApproval(tool.approval);
        }
        if (this.activeRunId === event.run_id) this.activeRunId = null;
        break;
      default:
        return; // unknown type (newer server): counted by the tracker, nothing to show
    }
    this._touch(msg);
  }

  /**
   * An answer's feedback changed in another tab or client (a `feedback` frame): show it. The answer is
   * found by its id, or by its run (a tab that watched it stream may not know its id). True when shown.
   */
  applyFeedback(frame) {
    if (!frame || typeof frame !== "object") return false;
    const feedback = frame.feedback && typeof frame.feedback === "object" ? frame.feedback : null;
    const msg = this.messages.find(
      (m) => m.role === "assistant" && ((frame.message_id != null && m.id === frame.message_id) || (frame.run_id && m.runId === frame.run_id))
    );
    if (!msg) return false;
    if (msg.id === null && Number.isInteger(frame.message_id)) msg.id = frame.message_id;
    msg.feedback = feedback;
    this._touch(msg);
    return true;
  }

  // ---- approvals

  /**
   * The person chose ("approve" | "deny") for a pending approval: remember it (the
   * card's buttons wait for the resolution) and return its frame; null when the
   * approval is not pending or a decision is already on its way.
   */
  decideApproval(approvalId, choice) {
    const found = findApproval(this.messages, approvalId);
    if (!found || !isPendingApproval(found.tool.approval) || found.tool.approval.sent) return null;
    const frame = approvalFrame(approvalId, choice);
    found.tool.approval.sent = choice;
    this.sentDecisions.set(approvalId, choice);
    this._touch(found.msg);
    return frame;
  }

  /** The server refused the decision sent for `approvalId`: let the person decide again. */
  forgetSentDecision(approvalId) {
    const found = findApproval(this.messages, approvalId);
    this.sentDecisions.delete(approvalId);
    if (!found || !found.tool.approval.sent) return;
    found.tool.approval.sent = null;
    this._touch(found.msg);
  }

  /** Decisions sent may be lost with their socket: let the person decide again. True when any. */
  forgetSentDecisions() {
    if (this.sentDecisions.size === 0) return false;
    for (const approvalId of this.sentDecisions.keys()) {
      const found = findApproval(this.messages, approvalId);
      if (!found) continue;
      found.tool.approval.sent = null;
      this._touch(found.msg);
    }
    this.sentDecisions.clear();
    return true;
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
