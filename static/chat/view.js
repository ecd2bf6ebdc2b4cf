// Agent Chat: DOM rendering of a ChatModel (model.js).
//
// ChatView keeps one node per message (by key) and updates only what changed.
// User messages, tool arguments and results are text: createElement + textContent,
// never innerHTML. The assistant's answer is Markdown (markdown.js: markdown-it with raw
// HTML off, sanitised by DOMPurify), re-rendered block by block as it streams. A tool call
// waiting for a person's approval gets an approval card under its card (approvals.js).

import { MESSAGE_STATUS } from "./protocol.js";
import { prettyJsonText, resultText, usageText } from "./helpers.js";
import { el, setAttr, setStreamText, setText } from "./dom.js";
import { MarkdownView } from "./markdown.js";
import { FeedbackBar } from "./feedback.js";
import { createApprovalCard, isPendingApproval, updateApprovalCard, waitsForApproval } from "./approvals.js";
import { createQuestionEditor, createVersionSwitcher, openQuestionEditor, updateVersionSwitcher } from "./versions.js";

export { el } from "./dom.js";

const GENERATING = MESSAGE_STATUS.GENERATING;

const STATUS_LABELS = { cancelled: "Stopped", interrupted: "Interrupted", error: "Error" };

const RUN_ERROR_TITLES = {
  model_rate_limited: "The model is rate limited",
  model_unavailable: "The model is unavailable",
  model_error: "The model failed",
  model_timeout: "The model timed out",
  timeout: "The run timed out",
  max_iterations: "Too many steps",
  interrupted: "Interrupted",
};

export class ChatView {
  /** `onDecide(approvalId, "approve" | "deny")`: an approval card's button was pressed;
   * `onChoose(messageId)`: a version arrow; `onEdit(messageId, text)` and `onRegenerate()` return
   * whether the frame went out; `conversationUrl`: the conversation in the API, for the answers'
   * feedback (feedback.js). */
  constructor(listEl, { onDecide = () => {}, onChoose = () => {}, onEdit = () => false, onRegenerate = () => false, conversationUrl = "" } = {}) {
    this.list = listEl;
    this.onDecide = onDecide;
    this.onChoose = onChoose;
    this.onEdit = onEdit;
    this.onRegenerate = onRegenerate;
    this.conversationUrl = conversationUrl;
    this.nodes = new Map(); // key -> {root, rev, ...parts}
    this.structureRev = -1;
    this.animate = false; // entrance animation for nodes created by this render
  }

  render(model, { animate = false } = {}) {
    this.animate = animate;
    if (this.structureRev !== model.structureRev) {
      this._reconcile(model.messages);
      this.structureRev = model.structureRev;
    }
    const busy = model.activeRunId !== null || model.hasPendingSend();
    const last = model.messages[model.messages.length - 1];
    for (const msg of model.messages) {
      const node = this.nodes.get(msg.key);
      const streaming = msg.status === GENERATING && msg.runId !== "" && msg.runId === model.activeRunId;
      const isLast = msg === last;
      const stamp = `${msg.rev}:${streaming}:${busy}:${isLast}`;
      if (node.stamp === stamp) continue;
      node.stamp = stamp;
      if (msg.role === "user") this._updateUser(node, msg, busy);
      else this._updateAssistant(node, msg, streaming, { busy, isLast });
    }
  }

  _reconcile(messages) {
    const keep = new Set(messages.map((m) => m.key));
    for (const [key, node] of this.nodes) {
      if (!keep.has(key)) {
        node.root.remove();
        this.nodes.delete(key);
      }
    }
    let cursor = this.list.firstChild;
    for (const msg of messages) {
      let node = this.nodes.get(msg.key); // keys carry the role (u:… / a:…)
      if (!node) {
        node = msg.role === "user" ? this._createUser() : this._createAssistant();
        if (this.animate) node.root.classList.add("is-new");
        this.nodes.set(msg.key, node);
      }
      node.root.dataset.key = msg.key;
      if (node.root !== cursor) this.list.insertBefore(node.root, cursor);
      else cursor = cursor.nextSibling;
    }
  }

  _createUser() {
    const root = el("article", "msg msg--user", { "data-testid": "message", "data-role": "user" });
    const bubble = el("div", "msg__bubble", { "data-testid": "user-message" });
    const meta = el("div", "msg__meta msg__meta--user");
    const actions = el("div", "msg__actions msg__actions--user");
    const versions = createVersionSwitcher((id) => this.onChoose(id));
    const edit = el("button", "msg__action", { type: "button", "data-testid": "edit-button", "aria-label": "Edit message" });
    edit.textContent = "Edit";
    actions.append(versions.root, edit);
    const node = { root, bubble, meta, actions, versions, edit, id: null, text: "", editing: false, stamp: "" };
    node.editor = createQuestionEditor({
      onSave: (text) => node.id !== null && this.onEdit(node.id, text),
      onClose: () => {
        node.editing = false;
        node.bubble.hidden = node.actions.hidden = false;
        node.edit.focus();
      },
    });
    edit.addEventListener("click", () => {
      node.editing = true;
      bubble.hidden = actions.hidden = true;
      openQuestionEditor(node.editor, node.text);
    });
    root.append(bubble, node.editor.form, meta, actions);
    return node;
  }

  _updateUser(node, msg, busy) {
    setAttr(node.root, "data-status", msg.status);
    setAttr(node.root, "data-pending", msg.pending ? "true" : null);
    setText(node.bubble, msg.text);
    setText(node.meta, msg.pending ? "Sending…" : "");
    node.meta.hidden = !msg.pending;
    node.id = msg.id;
    node.text = msg.text;
    updateVersionSwitcher(node.versions, msg, busy);
    node.edit.hidden = msg.pending || msg.id === null;
    node.edit.disabled = busy;
    if (node.editing) node.editor.save.disabled = busy;
  }

  _createAssistant() {
    const root = el("article", "msg msg--assistant", { "data-testid": "message", "data-role": "assistant" });
    const avatar = el("div", "msg__avatar", { "aria-hidden": "true" });
    avatar.textContent = "✦";
    const body = el("div", "msg__body", { "data-testid": "assistant-message" });
    const head = el("div", "msg__head");
    const name = el("span", "msg__name");
    name.textContent = "Assistant";
    const badge = el("span", "msg__badge");
    badge.hidden = true;
    head.append(name, badge);
    const tools = el("div", "tools");
    const working = el("div", "working");
    const dots = el("span", "working__dots", { "aria-hidden": "true" });
    dots.append(el("span"), el("span"), el("span"));
    const workingText = el("span", "working__text", { "data-testid": "answer-status" });
    workingText.textContent = "Working…";
    working.append(dots, workingText);
    const answer = el("div", "answer md", { "data-testid": "answer" });
    const errorSlot = el("div", "run-error-slot");
    const meta = el("div", "msg__meta");
    const usage = el("span", "msg__usage");
    const copy = el("button", "msg__copy", { type: "button" });
    copy.textContent = "Copy";
    const versions = createVersionSwitcher((id) => this.onChoose(id));
    const regenerate = el("button", "msg__action msg__regenerate", { type: "button", "data-testid": "regenerate-button" });
    regenerate.textContent = "Regenerate";
    regenerate.addEventListener("click", () => this.onRegenerate());
    const feedback = new FeedbackBar(this.conversationUrl);
    meta.append(versions.root, usage, copy, regenerate, feedback.root);
    body.append(head, tools, working, answer, errorSlot, meta, feedback.note, feedback.form);
    root.append(avatar, body);
    const node = { root, body, badge, tools, toolNodes: new Map(), working, workingText, answer, markdown: new MarkdownView(answer), text: "", errorSlot, errorEl: null, meta, usage, copy, versions, regenerate, feedback, stamp: "" };
    copy.addEventListener("click", () => copyText(node.text, copy)); // the answer's Markdown source
    answer.addEventListener("click", (e) => {
      const button = e.target instanceof Element ? e.target.closest(".codeblock__copy") : null;
      const code = button && button.closest(".codeblock")?.querySelector("pre code");
      if (code) copyText(code.textContent.replace(/\n$/, ""), button); // the fence's text, no trailing newline
    });
    return node;
  }

  _updateAssistant(node, msg, streaming, { busy = false, isLast = false } = {}) {
    setAttr(node.root, "data-status", msg.status);
    setAttr(node.root, "data-run-id", msg.runId || null);
    setAttr(node.body, "aria-busy", streaming ? "true" : null);

    const label = STATUS_LABELS[msg.status] || "";
    setText(node.badge, label);
    node.badge.hidden = !label;
    setAttr(node.badge, "data-kind", msg.status);

    this._renderTools(node, msg);

    // The status line: "Working…" before anything shows, "Waiting for approval…" while a tool call waits.
    const toolBusy = msg.tools.some((t) => t.phase === "args" || t.phase === "running");
    const waiting = streaming && waitsForApproval(msg);
    node.working.hidden = !(waiting || (streaming && msg.text === "" && !toolBusy && !msg.error));
    setText(node.workingText, waiting ? "Waiting for approval…" : "Working…");
    setAttr(node.working, "data-kind", waiting ? "approval" : null);
    setAttr(node.root, "data-waiting", waiting ? "approval" : null);

    node.text = msg.text;
    node.markdown.update(msg.text);
    node.answer.classList.toggle("is-streaming", streaming && msg.text !== "");
    node.answer.classList.toggle("is-empty", msg.text === "");

    if (msg.error) {
      if (!node.errorEl) {
        node.errorEl = el("div", "run-error", { "data-testid": "run-error", role: "alert" });
        node.errorTitle = el("strong", "run-error__title");
        node.errorText = el("span", "run-error__text");
        node.errorEl.append(node.errorTitle, node.errorText);
        node.errorSlot.append(node.errorEl);
      }
      setText(node.errorTitle, RUN_ERROR_TITLES[msg.error.code] || "Something went wrong");
      setText(node.errorText, msg.error.message);
      setAttr(node.errorEl, "data-code", msg.error.code || null);
    } else if (node.errorEl) {
      node.errorEl.remove();
      node.errorEl = null;
    }

    setText(node.usage, streaming ? "" : usageText(msg));
    setAttr(node.usage, "title", msg.model ? `Answered by ${msg.model}` : null);
    node.copy.hidden = streaming || msg.text === "";
    updateVersionSwitcher(node.versions, msg, busy);
    // Regenerate the last answer, whatever became of it (completed, error, stopped, interrupted).
    node.regenerate.hidden = !isLast || streaming || msg.status === GENERATING;
    node.regenerate.disabled = busy;
    node.feedback.update(msg);
    const rateable = !streaming && msg.status !== GENERATING && node.feedback.rateable;
    node.feedback.root.hidden = !rateable;
    if (!rateable) node.feedback.form.hidden = node.feedback.note.hidden = true;
    const empty = node.usage.textContent === "" && node.copy.hidden && node.regenerate.hidden && node.versions.root.hidden;
    node.meta.hidden = streaming || (empty && !rateable);
  }

  _renderTools(node, msg) {
    const keep = new Set(msg.tools.map((t) => t.callId));
    for (const [callId, card] of node.toolNodes) {
      if (!keep.has(callId)) {
        card.item.remove();
        node.toolNodes.delete(callId);
      }
    }
    let cursor = node.tools.firstChild;
    for (const tool of msg.tools) {
      let card = node.toolNodes.get(tool.callId);
      if (!card) {
        card = this._createTool();
        if (this.animate) card.item.classList.add("is-new");
        node.toolNodes.set(tool.callId, card);
      }
      if (card.item !== cursor) node.tools.insertBefore(card.item, cursor);
      else cursor = cursor.nextSibling;
      this._updateTool(card, tool);
      this._updateApproval(card, tool);
    }
    node.tools.hidden = msg.tools.length === 0;
  }

  _createTool() {
    const root = el("details", "tool", { "data-testid": "tool-card" });
    const summary = el("summary", "tool__summary");
    const icon = el("span", "tool__icon", { "aria-hidden": "true" });
    const state = el("span", "visually-hidden");
    const name = el("span", "tool__name");
    const args = el("code", "tool__args", { "data-testid": "tool-args" });
    const outcome = el("span", "tool__outcome");
    summary.append(icon, state, name, args, outcome);
    const body = el("div", "tool__body");
    const argsLabel = el("div", "tool__label");
    argsLabel.textContent = "Arguments";
    const argsPre = el("pre", "tool__pre");
    const resultLabel = el("div", "tool__label");
    const resultPre = el("pre", "tool__pre");
    body.append(argsLabel, argsPre, resultLabel, resultPre);
    root.append(summary, body);
    const item = el("div", "tool-item"); // the tool's card, and its approval card under it
    item.append(root);
    return { item, root, approval: null, icon, state, name, args, outcome, outcomeEl: null, outcomeKind: "", argsPre, resultLabel, resultPre };
  }

  _updateTool(card, tool) {
    const kind = tool.error !== null ? "error" : isPendingApproval(tool.approval) ? "waiting" : tool.phase;
    setAttr(card.root, "data-tool-name", tool.name);
    setAttr(card.root, "data-call-id", tool.callId);
    setAttr(card.root, "data-state", kind);
    setText(card.state, { args: "Preparing", running: "Running", waiting: "Waiting for approval", done: "Done", error: "Failed", stopped: "Not finished" }[kind] || "");
    setText(card.name, tool.name);
    setStreamText(card.args, tool.args);
    setStreamText(card.argsPre, prettyJsonText(tool.args) || " ");

    // The outcome: tool-result, tool-error, or nothing yet.
    const outcomeKind = tool.error !== null ? "error" : tool.hasOutput ? "result" : "";
    if (card.outcomeKind !== outcomeKind) {
      card.outcome.textContent = "";
      card.outcomeEl = null;
      if (outcomeKind) {
        const arrow = el("span", "tool__arrow", { "aria-hidden": "true" });
        arrow.textContent = "→";
        card.outcomeEl = el(
          "span",
          outcomeKind === "error" ? "tool__error" : "tool__result",
          { "data-testid": outcomeKind === "error" ? "tool-error" : "tool-result" }
        );
        card.outcome.append(arrow, card.outcomeEl);
      }
      card.outcomeKind = outcomeKind;
    }
    if (outcomeKind === "error") {
      setText(card.outcomeEl, tool.error);
      setText(card.resultLabel, "Error");
      setText(card.resultPre, tool.error);
    } else if (outcomeKind === "result") {
      const text = resultText(tool.output);
      setText(card.outcomeEl, text);
      setText(card.resultLabel, "Result");
      setText(card.resultPre, typeof tool.output === "string" ? text : prettyJsonText(text));
    }
    card.resultLabel.hidden = card.resultPre.hidden = !outcomeKind;
    card.resultPre.classList.toggle("tool__pre--error", outcomeKind === "error");
  }

  _updateApproval(card, tool) {
    if (!tool.approval) {
      if (card.approval) card.approval.root.remove();
      card.approval = null;
      return;
    }
    if (!card.approval) {
      card.approval = createApprovalCard((approvalId, choice) => this.onDecide(approvalId, choice));
      card.item.append(card.approval.root);
    }
    updateApprovalCard(card.approval, tool.approval, tool.name);
  }
}

function copyText(text, button) {
  const done = (ok) => {
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => done(true), () => done(false));
    return;
  }
  const area = el("textarea", "visually-hidden");
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch (_) {
    ok = false;
  }
  area.remove();
  done(ok);
}

/** A notice for the page's notice area: text, an optional link, and a Dismiss button unless sticky. */
export function noticeElement(text, { code = "", sticky = false, link = null, onDismiss = null } = {}) {
  const notice = el("div", "notice", { "data-testid": "notice", role: "alert" });
  if (code) notice.dataset.code = code;
  if (sticky) notice.dataset.sticky = "true";
  const body = el("span", "notice__text");
  body.textContent = text;
  notice.append(el("span", "notice__icon", { "aria-hidden": "true" }), body);
  if (link) {
    const a = el("a", "notice__link", { href: link.href });
    a.textContent = link.text;
    notice.append(a);
  }
  if (!sticky) {
    const close = el("button", "notice__close", { type: "button", "aria-label": "Dismiss notice" });
    close.textContent = "Dismiss";
    close.addEventListener("click", () => {
      notice.remove();
      if (onDismiss) onDismiss();
    });
    notice.append(close);
  }
  return notice;
}
