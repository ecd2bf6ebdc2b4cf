// Agent Chat wire protocol, browser side (an ES module; it never touches the DOM).
//
// This file mirrors the server's declarations in agent_runtime/events.py (the run
// events) and conversations/protocol.py (the socket's frames, direct errors and
// close codes), and docs/protocol.md documents them; change them together. A
// Python test loads this module with node (tests/js/dump_protocol.mjs) and
// compares its declarations with the server's.
//
// Server -> browser frames:
//   * {"type": "snapshot", "messages": [...], "active_run": null | {"run_id", "events": [...], "head_lost"?}, "model"?}
//   * run events: {"type", "run_id", "seq", ...}; seq is 1, 2, 3, ... per run, no gaps.
//   * direct errors to one socket (no run_id / seq): {"type": "error", "code", "message"}
// Browser -> server frames: send / stop / sync / approval (see the builders below).

// Event types (agent_runtime/events.py: RUN_STARTED ... DONE).
export const EVENT = Object.freeze({
  RUN_STARTED: "run_started",
  TOOL_START: "tool_start",
  TOOL_ARGS: "tool_args",
  TOOL_RESULT: "tool_result",
  STEP_END: "step_end",
  APPROVAL_REQUESTED: "approval_requested",
  APPROVAL_RESOLVED: "approval_resolved",
  TOKEN: "token",
  FINAL: "final",
  ERROR: "error",
  DONE: "done",
});
export const EVENT_TYPES = Object.freeze(Object.values(EVENT));

// Fields every run event carries (agent_runtime/events.py: _Base).
export const COMMON_FIELDS = Object.freeze(["run_id", "seq", "type"]);

const fields = (required = [], optional = []) =>
  Object.freeze({ required: Object.freeze([...required].sort()), optional: Object.freeze([...optional].sort()) });

// The other fields of each event type (agent_runtime/events.py: SCHEMAS), sorted.
export const EVENT_FIELDS = Object.freeze({
  [EVENT.RUN_STARTED]: fields(["model"], ["user_message"]),
  [EVENT.TOOL_START]: fields(["call_id", "name"]),
  [EVENT.TOOL_ARGS]: fields(["call_id", "delta"]),
  [EVENT.TOOL_RESULT]: fields(["call_id", "name"], ["error", "output"]),
  [EVENT.STEP_END]: fields(),
  [EVENT.APPROVAL_REQUESTED]: fields(["approval_id", "args", "call_id", "name"]),
  [EVENT.APPROVAL_RESOLVED]: fields(["approval_id", "by", "decision"]),
  [EVENT.TOKEN]: fields(["text"]),
  [EVENT.FINAL]: fields(["content", "tools_used", "usage"]),
  [EVENT.ERROR]: fields(["code", "message"]),
  [EVENT.DONE]: fields(["status"]),
});

// Server -> browser frames that are not run events (conversations/protocol.py: SERVER_*).
// MODEL: {"type": "model", "model": ...}: the model of the conversation's next answers (chosen in any tab).
export const SERVER_FRAME = Object.freeze({
  SNAPSHOT: "snapshot",
  ERROR: "error",
  TITLE: "title",
  FEEDBACK: "feedback",
  MODEL: "model",
  BUDGET: "budget", // {"type": "budget", "low": {period, remaining, limit} | null}: after one of the user's answers ends
});
export const SNAPSHOT = SERVER_FRAME.SNAPSHOT;

// agent_runtime/events.py: DONE_STATUSES.
export const DONE_STATUS = Object.freeze({
  COMPLETED: "completed",
  CANCELLED: "cancelled",
  ERROR: "error",
  INTERRUPTED: "interrupted",
});
export const DONE_STATUSES = Object.freeze(Object.values(DONE_STATUS));

// `decision` of an approval_resolved event (and of a stored tool step's `approval`).
export const APPROVAL_DECISION = Object.freeze({ APPROVED: "approved", DENIED: "denied", EXPIRED: "expired" });
export const APPROVAL_DECISIONS = Object.freeze(Object.values(APPROVAL_DECISION));

// Message.status values as stored by the chat product (DONE_STATUSES plus "generating").
export const MESSAGE_STATUS = Object.freeze(Object.assign({ GENERATING: "generating" }, DONE_STATUS));

// Error codes of `error` run events (agent_runtime/events.py: ERROR_*).
export const RUN_ERROR = Object.freeze({
  MODEL_RATE_LIMITED: "model_rate_limited",
  MODEL_UNAVAILABLE: "model_unavailable",
  MODEL_FAILED: "model_error",
  MODEL_TIMEOUT: "model_timeout",
  TIMEOUT: "timeout",
  MAX_ITERATIONS: "max_iterations",
  INTERRUPTED: "interrupted",
  NOT_STORED: "not_stored",
});

// Codes of direct errors, sent to one socket only, no run_id, no seq (conversations/protocol.py).
export const DIRECT_ERROR = Object.freeze({
  BUSY: "busy",
  TOO_LONG: "too_long",
  BAD_REQUEST: "bad_request",
  RATE_LIMITED: "rate_limited",
  ASSISTANT_UNAVAILABLE: "assistant_unavailable",
  ALREADY_DECIDED: "already_decided", // an `approval` frame came too late (decided, expired) or twice
  RESTARTING: "restarting", // this server process is draining for a restart: send again (retry_after)
  MODEL_UNAVAILABLE: "model_unavailable", // a `set_model` naming a model the assistant does not offer
  QUOTA_EXCEEDED: "quota_exceeded", // over the token budget: retry_after says when it renews
});
// Direct errors that reject the browser's last `send` (its text goes back into the composer).
// ALREADY_DECIDED is not one: it answers an `approval` frame.
export const SEND_REJECTION_CODES = Object.freeze([
  DIRECT_ERROR.BUSY,
  DIRECT_ERROR.TOO_LONG,
  DIRECT_ERROR.RATE_LIMITED,
  DIRECT_ERROR.BAD_REQUEST,
  DIRECT_ERROR.ASSISTANT_UNAVAILABLE,
  DIRECT_ERROR.RESTARTING,
  DIRECT_ERROR.QUOTA_EXCEEDED,
  "empty",
]);

// WebSocket close codes the server uses (conversations/protocol.py: CLOSE_*).
export const CLOSE = Object.freeze({
  LOGGED_OUT: 4401,
  NOT_ALLOWED: 4403,
  GONE: 4404,
  UNAVAILABLE: 4503,
  TOO_MANY_SYNCS: 4429, // too many `sync` and `branch` frames
  TOO_MANY_SOCKETS: 4429, // right after the handshake: the account holds too many sockets open
  SERVICE_RESTART: 1012, // the server process restarts (a deploy): reconnect at once, say nothing
});
// Close codes that mean "you may not open this conversation": do not reconnect.
// (1008 is the generic "policy violation"; UNAVAILABLE and TOO_MANY_SYNCS are worth retrying;
// TOO_MANY_SOCKETS, told apart by coming before the first snapshot, is the person's to retry.)
export const FORBIDDEN_CLOSE_CODES = Object.freeze([CLOSE.LOGGED_OUT, CLOSE.NOT_ALLOWED, CLOSE.GONE, 1008]);

// Browser -> server frame types (conversations/protocol.py: CLIENT_*) and builders.
export const CLIENT = Object.freeze({
  SEND: "send",
  STOP: "stop",
  SYNC: "sync",
  APPROVAL: "approval",
  REGENERATE: "regenerate",
  EDIT: "edit",
  BRANCH: "branch",
  SET_MODEL: "set_model",
});

// The `decision` of an `approval` frame: the person's choice (the server answers with
// approval_resolved, whose decision is an APPROVAL_DECISION).
export const APPROVAL_CHOICE = Object.freeze({ APPROVE: "approve", DENY: "deny" });

export function sendFrame(content, clientId) {
  return { type: CLIENT.SEND, content: String(content), client_id: String(clientId) };
}
export function stopFrame() {
  return { type: CLIENT.STOP };
}
export function syncFrame() {
  return { type: CLIENT.SYNC };
}
/** Approve or deny the tool call waiting for approval `approvalId` ("approve" | "deny"). */
export function approvalFrame(approvalId, decision) {
  if (typeof approvalId !== "string" || approvalId === "") throw new TypeError("approvalFrame: approvalId must be a non-empty string");
  if (decision !== APPROVAL_CHOICE.APPROVE && decision !== APPROVAL_CHOICE.DENY) {
    throw new TypeError(`approvalFrame: decision must be "approve" or "deny", not ${JSON.stringify(decision)}`);
  }
  return { type: CLIENT.APPROVAL, approval_id: approvalId, decision };
}

/** Answer the last question of the branch on screen again (the earlier answers stay as versions). */
export function regenerateFrame(clientId) {
  return { type: CLIENT.REGENERATE, client_id: String(clientId) };
}
/** Send a new version of the question `messageId` (a new branch from there). */
export function editFrame(messageId, content, clientId) {
  if (!Number.isInteger(messageId)) throw new TypeError("editFrame: messageId must be an integer");
  return { type: CLIENT.EDIT, message_id: messageId, content: String(content), client_id: String(clientId) };
}
/** Show the version `messageId` (and the newest versions below it) in every tab. */
export function branchFrame(messageId) {
  if (!Number.isInteger(messageId)) throw new TypeError("branchFrame: messageId must be an integer");
  return { type: CLIENT.BRANCH, message_id: messageId };
}

/** Answer the conversation's next questions with `model` (one of its assistant's models), in every tab. */
export function setModelFrame(model) {
  if (typeof model !== "string" || model === "") throw new TypeError("setModelFrame: model must be a non-empty string");
  return { type: CLIENT.SET_MODEL, model };
}

// crypto.randomUUID() exists only in secure contexts (https, localhost);
// fall back to getRandomValues() so plain-http deployments work too.
export function newClientId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") {
    try {
      return c.randomUUID();
    } catch (_) {
      /* insecure context: fall through */
    }
  }
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A run event carries run_id and a positive integer seq; direct errors do not. */
export function isRunEvent(frame) {
  return (
    frame !== null &&
    typeof frame === "object" &&
    typeof frame.type === "string" &&
    typeof frame.run_id === "string" &&
    frame.run_id !== "" &&
    Number.isInteger(frame.seq) &&
    frame.seq >= 1
  );
}

export function isDirectError(frame) {
  return frame !== null && typeof frame === "object" && frame.type === SERVER_FRAME.ERROR && !isRunEvent(frame);
}

// RunTracker.check() verdicts.
export const VERDICT = Object.freeze({
  APPLY: "apply", // next event of its run: apply it
  DUPLICATE: "duplicate", // seq <= lastSeq: already applied (e.g. replay then live)
  GAP: "gap", // seq > lastSeq + 1: something was lost; send `sync`
  STALE: "stale", // a sync is pending: ignore live events until the snapshot
});

/**
 * Per-run sequence tracking. Keeps the last applied seq of every run seen,
 * drops duplicates, detects gaps, and after a gap ignores live events until
 * the next snapshot (which calls reset()).
 */
export class RunTracker {
  constructor() {
    this.lastSeq = new Map();
    this.awaitingSnapshot = false;
  }

  /** Forget everything: called when a snapshot arrives (it is the new truth). */
  reset() {
    this.lastSeq.clear();
    this.awaitingSnapshot = false;
  }

  /** Record that `seq` of `runId` is already applied (snapshot replay). */
  setLastSeq(runId, seq) {
    this.lastSeq.set(runId, seq);
  }

  /** A run that is over in the snapshot: any late live event of it is a duplicate. */
  markFinished(runId) {
    this.lastSeq.set(runId, Number.POSITIVE_INFINITY);
  }

  getLastSeq(runId) {
    return this.lastSeq.has(runId) ? this.lastSeq.get(runId) : 0;
  }

  /** Waiting for a snapshot after a gap (set by check(), cleared by reset()). */
  expectSnapshot() {
    this.awaitingSnapshot = true;
  }

  /**
   * Classify a live run event and, when the verdict is APPLY, record its seq.
   * GAP switches the tracker into "awaiting snapshot" mode.
   */
  check(event) {
    if (this.awaitingSnapshot) return VERDICT.STALE;
    const last = this.getLastSeq(event.run_id);
    if (event.seq <= last) return VERDICT.DUPLICATE;
    if (event.seq > last + 1) {
      this.awaitingSnapshot = true;
      return VERDICT.GAP;
    }
    this.lastSeq.set(event.run_id, event.seq);
    return VERDICT.APPLY;
  }
}
