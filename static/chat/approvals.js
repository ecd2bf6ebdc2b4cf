// Agent Chat: approval of risky tool calls.
//
// The server pauses a run before a tool that needs a person's approval and streams
// `approval_requested` (the tool's card already exists); someone approves or denies
// from any tab (an `approval` frame), and `approval_resolved` tells every tab. After
// `approved` the tool runs; after `denied` or `expired` its tool_result carries an error.
//
// This module holds a tool call's approval state (pure, used by model.js; the same
// state whether it comes live, from a snapshot's replay or from a stored tool step)
// and the approval card under the tool's card (DOM, used by view.js).

import { APPROVAL_CHOICE, APPROVAL_DECISION, APPROVAL_DECISIONS } from "./protocol.js";
import { formatJson } from "./helpers.js";
import { el, setAttr, setText } from "./dom.js";

export const APPROVAL_STATE = Object.freeze({ PENDING: "pending", ...APPROVAL_DECISION });
const PENDING = APPROVAL_STATE.PENDING;

// ------------------------------------------------------------------ state

/**
 * A tool call's approval:
 *   id     the approval_id
 *   state  "pending" | "approved" | "denied" | "expired"
 *   args   the parsed arguments the person is asked about
 *   by     username of who decided (null when expired, or not told)
 *   ended  expired only because the run ended first (no approval_resolved came)
 *   sent   "approve" | "deny" while this tab's decision is on its way, else null
 */
export function newApproval(approvalId, args) {
  return { id: String(approvalId), state: PENDING, args: args === undefined ? null : args, by: null, ended: false, sent: null };
}

/** approval_resolved (or a stored decision): an unknown decision counts as expired. */
export function resolveApproval(approval, decision, by) {
  approval.state = APPROVAL_DECISIONS.includes(decision) ? decision : APPROVAL_STATE.EXPIRED;
  approval.by = typeof by === "string" && by !== "" ? by : null;
  approval.ended = false;
  approval.sent = null;
}

/** The run is over and the approval is still open: nobody can decide any more. */
export function closeApproval(approval) {
  if (!approval || approval.state !== PENDING) return;
  approval.state = APPROVAL_STATE.EXPIRED;
  approval.by = null;
  approval.ended = true;
  approval.sent = null;
}

export const isPendingApproval = (approval) => !!approval && approval.state === PENDING;

/** Does the assistant message `msg` wait for a person's approval? */
export const waitsForApproval = (msg) => msg.tools.some((t) => isPendingApproval(t.approval));

/** {msg, tool} of the tool call whose approval is `approvalId`, or null. */
export function findApproval(messages, approvalId) {
  for (const msg of messages) {
    for (const tool of msg.tools) if (tool.approval && tool.approval.id === approvalId) return { msg, tool };
  }
  return null;
}

/** A stored tool step's `approval` ({approval_id, decision, by}); it asked about the step's args. */
export function approvalFromStored(stored, stepArgs) {
  if (!stored || typeof stored !== "object" || typeof stored.approval_id !== "string" || stored.approval_id === "") return null;
  let args = stepArgs;
  if (typeof args === "string") {
    try {
      args = JSON.parse(args);
    } catch (_) {
      /* raw text: keep it */
    }
  }
  const approval = newApproval(stored.approval_id, args);
  if (stored.decision !== null && stored.decision !== undefined && stored.decision !== PENDING) {
    resolveApproval(approval, stored.decision, stored.by);
  }
  return approval;
}

/** The arguments as the card shows them: pretty JSON, or the text as it is. */
export function approvalArgsText(args) {
  if (typeof args === "string") return args;
  if (args !== null && typeof args === "object") return JSON.stringify(args, null, 2);
  return formatJson(args);
}

/** The card's headline: "Approval needed", "Approved by alice", ... */
export function approvalStatusText(approval) {
  const by = approval.by ? ` by ${approval.by}` : "";
  switch (approval.state) {
    case APPROVAL_STATE.APPROVED:
      return `Approved${by}`;
    case APPROVAL_STATE.DENIED:
      return `Denied${by}`;
    case APPROVAL_STATE.EXPIRED:
      return approval.ended ? "No decision — the run ended first" : "Expired — no decision in time";
    default:
      return "Approval needed";
  }
}

// ------------------------------------------------------------------- card

/**
 * The card under a tool's card. `onDecide(approvalId, "approve" | "deny")` is called
 * when a button is pressed; the card shows the state it is given by updateApprovalCard.
 */
export function createApprovalCard(onDecide) {
  const root = el("div", "approval", { "data-testid": "approval-card", role: "group", tabindex: "-1" });
  const head = el("div", "approval__head");
  const icon = el("span", "approval__icon", { "aria-hidden": "true" });
  const status = el("strong", "approval__status", { "data-testid": "approval-status" });
  head.append(icon, status);

  const lead = el("p", "approval__lead");
  const leadName = el("code", "approval__tool");
  lead.append("The assistant wants to run ", leadName, ". It waits until someone approves or denies.");
  const argsLabel = el("div", "approval__label");
  argsLabel.textContent = "Arguments";
  const args = el("pre", "approval__args", { "data-testid": "approval-args" });

  const actions = el("div", "approval__actions");
  const approve = el("button", "btn btn--sm approval__approve", { type: "button", "data-testid": "approve-button" });
  approve.textContent = "Approve";
  const deny = el("button", "btn btn--sm approval__deny", { type: "button", "data-testid": "deny-button" });
  deny.textContent = "Deny";
  const note = el("span", "approval__note", { role: "status" });
  actions.append(approve, deny, note);

  const details = el("div", "approval__details");
  details.append(lead, argsLabel, args, actions);
  root.append(head, details);

  const card = { root, status, details, leadName, args, approve, deny, note, approvalId: "" };
  const decide = (choice) => {
    if (card.approvalId && !approve.disabled) onDecide(card.approvalId, choice);
  };
  approve.addEventListener("click", () => decide(APPROVAL_CHOICE.APPROVE));
  deny.addEventListener("click", () => decide(APPROVAL_CHOICE.DENY));
  return card;
}

export function updateApprovalCard(card, approval, toolName) {
  const pending = approval.state === PENDING;
  card.approvalId = approval.id;
  setAttr(card.root, "data-approval-id", approval.id);
  setAttr(card.root, "data-state", approval.state);
  setAttr(card.root, "data-sent", approval.sent);
  setAttr(card.root, "aria-label", `Approval of the tool ${toolName}`);
  setText(card.status, approvalStatusText(approval));
  // Decided: one line. The buttons leave the DOM (a page has Approve buttons only for what waits).
  if (!pending) {
    if (card.details.parentNode) card.details.remove();
    return;
  }
  if (card.details.parentNode !== card.root) card.root.append(card.details);

  setText(card.leadName, toolName);
  setText(card.args, approvalArgsText(approval.args));
  const sent = approval.sent !== null;
  // A disabled button loses the keyboard focus: keep it on the card.
  const doc = card.root.ownerDocument;
  if (sent && (doc.activeElement === card.approve || doc.activeElement === card.deny)) card.root.focus({ preventScroll: true });
  card.approve.disabled = card.deny.disabled = sent;
  setText(card.approve, approval.sent === APPROVAL_CHOICE.APPROVE ? "Approving…" : "Approve");
  setText(card.deny, approval.sent === APPROVAL_CHOICE.DENY ? "Denying…" : "Deny");
  setText(card.note, sent ? "Decision sent, waiting for the server…" : "");
}
