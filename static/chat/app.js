// Agent Chat: the page's start-up and the conversation page's wiring.
//
// The one script of every page (templates/base.html loads it as a module):
// forms with data-confirm ask first, and a page with #chat-config (a
// conversation) gets a ChatApp: the model (model.js) fed by the socket
// (connection.js), rendered by the view (view.js), plus the composer, the
// notices, the connection indicator, the title, the scrolling and the
// decisions on tool calls waiting for approval. When the user is signed out
// elsewhere (close 4401) the page says so, puts unsent text back into the
// composer (kept in sessionStorage across the new login) and stops.

import { DIRECT_ERROR, SEND_REJECTION_CODES, branchFrame, editFrame, newClientId, regenerateFrame, stopFrame } from "./protocol.js";
import { ChatModel } from "./model.js";
import { codePointLength } from "./helpers.js";
import { waitsForApproval } from "./approvals.js";
import { ChatView, noticeElement } from "./view.js";
import { Connection, socketUrl } from "./connection.js";
import { ModelChoice } from "./model_choice.js";
import { showBudget } from "./budget.js";
import { initSidebar } from "./sidebar.js";

const STICK_TO_BOTTOM_PX = 96;

const CONNECTION_LABELS = {
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
  signed_out: "Signed out",
};
const SIGNED_OUT_TEXT = "You were signed out — log in again to go on.";
const DRAFT_KEY_PREFIX = "agent-chat:draft:";

export class ChatApp {
  constructor(config, doc) {
    this.config = config;
    this.doc = doc;
    this.maxLength = Number(config.maxLength) || 8000;
    this.model = new ChatModel();
    const $ = (sel) => doc.querySelector(sel);
    this.dom = {
      scroll: $("[data-chat-scroll]"),
      list: $('[data-testid="message-list"]'),
      empty: $("[data-chat-empty]"),
      loading: $("[data-chat-loading]"),
      form: $("[data-composer]"),
      input: $('[data-testid="composer-input"]'),
      send: $('[data-testid="send-button"]'),
      stop: $('[data-testid="stop-button"]'),
      status: $('[data-testid="connection-status"]'),
      statusLabel: $("[data-connection-label]"),
      banner: $("[data-reconnect-banner]"),
      notices: $("[data-notices]"),
      budget: $("[data-budget-notice]"),
      counter: $("[data-char-counter]"),
      title: $("[data-chat-title]"),
      jump: $("[data-jump-latest]"),
      currentLink: $('[data-testid="conversation-link"][aria-current="page"]'),
    };
    const root = $("[data-chat-root]");
    this.listUrl = (root && root.dataset.listUrl) || "/";
    this.view = new ChatView(this.dom.list, {
      onDecide: (approvalId, choice) => this.decide(approvalId, choice),
      onChoose: (messageId) => this.sendBranching(branchFrame(messageId)),
      onEdit: (messageId, text) => this.sendBranching(editFrame(messageId, text, newClientId())),
      onRegenerate: () => this.sendBranching(regenerateFrame(newClientId())),
      conversationUrl: (root && root.dataset.conversationApi) || "",
    });
    this.conn = new Connection({
      url: socketUrl(config),
      model: this.model,
      doc,
      hooks: {
        onState: (state) => this._setConnection(state),
        onSnapshot: (first) => this._onSnapshot(first),
        onChange: () => this._afterModelChange(),
        onDirectError: (frame) => this._onDirectError(frame),
        onTitle: (title) => {
          this.doc.dispatchEvent(new CustomEvent("chat:title", { detail: { title } })); // sidebar.js shows it
        },
        onForbidden: (text, link) => this._onForbidden(text, link),
        onSignedOut: () => this._onSignedOut(),
        onModel: (model) => this.modelChoice.show(model),
        onBudget: (low) => showBudget(this.dom.budget, low),
      },
    });
    this.modelChoice = new ModelChoice($("[data-model-select]"), (frame) => this.conn.synced && this.conn.send(frame));
    this.stopRequested = false;
    this.renderQueued = false;
    this.stick = true;
  }

  start() {
    this._bindComposer();
    this._bindScroll();
    showBudget(this.dom.budget, this.config.budgetLow);
    for (const button of this.doc.querySelectorAll("[data-example-prompt]")) {
      button.addEventListener("click", () => {
        this.submit(button.dataset.examplePrompt || button.textContent);
        this.dom.input.focus();
      });
    }
    this._bindFocus();
    this._restoreSavedDraft();
    this.conn.start();
    this._updateComposer();
    // A conversation opens with the composer focused (unless the person already moved focus).
    const focused = this.doc.activeElement;
    if (!focused || focused === this.doc.body) this.dom.input.focus({ preventScroll: true });
  }

  // ---- what the socket reports

  _onSnapshot(first) {
    this.snapshotPending = true; // a snapshot re-renders without entrance animations
    if (first) this.stick = true;
    this._afterModelChange();
  }

  _onDirectError(frame) {
    const code = String(frame.code || "error");
    // already_decided answers an `approval` frame (someone else decided first, or it expired):
    // the approval_resolved every tab gets updates the card; nothing goes back to the composer.
    // An error naming an approval_id refused that decision: offer the choice again.
    const refusedDecision = typeof frame.approval_id === "string";
    if (refusedDecision) this.model.forgetSentDecision(frame.approval_id);
    const rejects =
      !refusedDecision &&
      code !== DIRECT_ERROR.ALREADY_DECIDED &&
      (SEND_REJECTION_CODES.includes(code) || typeof frame.client_id === "string");
    if (code === DIRECT_ERROR.MODEL_UNAVAILABLE) this.modelChoice.refused();
    const entry = rejects ? this.model.rejectSend(frame) : null;
    if (entry) this._restoreDraft(entry.content);
    this._showNotice(String(frame.message || "The server refused that request."), { code });
    this._afterModelChange();
  }

  _onForbidden(text = "You cannot open this conversation.", link = { href: this.listUrl, text: "Back to conversations" }) {
    this._showNotice(text, { code: "forbidden", sticky: true, link });
    if (this.dom.loading) this.dom.loading.hidden = true;
    this.dom.input.placeholder = "This conversation is not available";
    this._updateComposer();
  }

  _onSignedOut() {
    // Nothing unacknowledged may look sent: every send still in the outbox goes back into the composer.
    const drafts = [];
    for (const entry of [...this.model.outbox]) {
      const back = this.model.rejectSend({ client_id: entry.clientId });
      if (back) drafts.push(back.content);
    }
    for (const text of drafts.reverse()) this._restoreDraft(text);
    this._saveDraft();
    const next = `${window.location.pathname}${window.location.search}`;
    const login = `${this.config.loginUrl || "/accounts/login/"}?next=${encodeURIComponent(next)}`;
    this._clearNotices();
    this._showNotice(SIGNED_OUT_TEXT, { code: "signed_out", sticky: true, link: { href: login, text: "Log in again" } });
    if (this.dom.loading) this.dom.loading.hidden = true;
    this.dom.input.placeholder = "Signed out: log in again to send";
    this.dom.input.setAttribute("aria-describedby", "composer-signed-out");
    const hint = this.doc.createElement("span");
    hint.id = "composer-signed-out";
    hint.className = "visually-hidden";
    hint.textContent = "Signed out: your text is kept; log in again to send it.";
    this.dom.form.append(hint);
    this.stopRequested = false;
    this._scheduleRender();
  }

  // ---- the draft kept across a new login (sessionStorage, per conversation)

  get _draftKey() {
    return `${DRAFT_KEY_PREFIX}${this.config.conversationId}`;
  }

  _saveDraft() {
    const text = this.dom.input.value;
    try {
      if (text.trim()) window.sessionStorage.setItem(this._draftKey, text.slice(0, this.maxLength * 2));
    } catch (_) {
      /* storage full or blocked: the draft stays on screen only */
    }
  }

  _forgetDraft() {
    try {
      window.sessionStorage.removeItem(this._draftKey);
    } catch (_) {
      /* blocked */
    }
  }

  _restoreSavedDraft() {
    let text = null;
    try {
      text = window.sessionStorage.getItem(this._draftKey);
    } catch (_) {
      return;
    }
    if (text && !this.dom.input.value.trim()) {
      this.dom.input.value = text;
      this._autosize();
    }
  }

  _restoreDraft(text) {
    const input = this.dom.input;
    const current = input.value;
    if (current.includes(text)) return;
    input.value = current.trim() ? `${text}\n\n${current}` : text;
    this._autosize();
  }

  // ---- rendering

  _afterModelChange() {
    if (this.model.activeRunId === null) {
      this.stopRequested = false;
      this._clearNotices("busy"); // "still answering": no longer true once the answer ends
    }
    this._scheduleRender();
  }

  _scheduleRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    const run = () => this._render();
    // rAF batches bursts of tokens; the timeout keeps background tabs (no rAF) current.
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(run);
    setTimeout(run, 120);
  }

  _render() {
    if (!this.renderQueued) return;
    this.renderQueued = false;
    const scroll = this.dom.scroll;
    const stick = this.stick;
    this.view.render(this.model, { animate: !this.snapshotPending });
    this.snapshotPending = false;
    const loaded = this.model.loaded;
    if (this.dom.loading) this.dom.loading.hidden = loaded;
    if (this.dom.empty) this.dom.empty.hidden = !(loaded && this.model.messages.length === 0);
    this._updateComposer();
    this._updateCurrentLink();
    if (stick) scroll.scrollTop = scroll.scrollHeight;
    else if (this.dom.jump) this.dom.jump.hidden = false;
  }

  _updateCurrentLink() {
    // Looked up on each render: the sidebar's rows may be redrawn after the page loaded.
    const link = this.doc.querySelector('[data-testid="conversation-link"][aria-current="page"]');
    if (!link) return;
    const active = this.model.activeRunMessage;
    const waiting = !!active && waitsForApproval(active);
    link.classList.toggle("is-generating", !!this.model.activeRunId);
    link.classList.toggle("is-waiting", waiting);
    const live = link.querySelector(".side-link__live");
    if (live) live.setAttribute("title", waiting ? "Waiting for approval" : "Generating");
  }

  _setConnection(state) {
    if (this.dom.status) {
      this.dom.status.dataset.state = state;
      this.dom.status.setAttribute("title", CONNECTION_LABELS[state]);
    }
    if (this.dom.statusLabel) this.dom.statusLabel.textContent = CONNECTION_LABELS[state];
    if (this.dom.banner) this.dom.banner.hidden = state !== "reconnecting";
    // A decision sent on a socket that closed may never have arrived: let the person decide again.
    if (state !== "open" && this.model.forgetSentDecisions()) this._scheduleRender();
    this._updateComposer();
  }

  // ---- notices

  _showNotice(text, { code = "", sticky = false, link = null } = {}) {
    const box = this.dom.notices;
    if (!box) return;
    for (const old of box.querySelectorAll('[data-testid="notice"]')) {
      if (old.dataset.sticky !== "true") old.remove();
    }
    box.append(noticeElement(text, { code, sticky, link, onDismiss: () => this.dom.input.focus() }));
  }

  /** Remove the notices that are not sticky (only those of `code` when given). */
  _clearNotices(code = "") {
    if (!this.dom.notices) return;
    for (const old of this.dom.notices.querySelectorAll('[data-testid="notice"]')) {
      if (old.dataset.sticky !== "true" && (!code || old.dataset.code === code)) old.remove();
    }
  }

  // ---- composer

  _bindComposer() {
    const { form, input, stop } = this.dom;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit(input.value);
      input.focus();
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this.submit(input.value);
      }
    });
    input.addEventListener("input", () => {
      if (!input.value.trim()) this._forgetDraft();
      this._autosize();
      this._updateComposer();
    });
    stop.addEventListener("click", () => this.stop());
    // Esc stops a running answer, from the composer or the page (not from inside a dialog).
    this.doc.addEventListener("keydown", (e) => {
      if (e.key !== "Escape" || e.defaultPrevented || e.isComposing || !this.model.activeRunId) return;
      const target = e.target instanceof Element ? e.target : null;
      if (target && target.closest("dialog, [role='dialog'], [role='alertdialog'], [aria-modal='true']")) return;
      if (this.doc.querySelector("dialog[open]")) return;
      e.preventDefault();
      this.stop();
    });
    this._autosize();
  }

  _autosize() {
    const input = this.dom.input;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
  }

  /** Send `text` (from the composer or an example prompt). Returns true when queued. */
  submit(text) {
    const content = String(text || "").trim();
    if (!content || this.conn.forbidden) return false;
    if (this.model.activeRunId) {
      this._showNotice("The assistant is still answering: wait for it, or press Stop.", { code: "busy" });
      return false;
    }
    if (this.model.hasPendingSend()) {
      this._showNotice("Your previous message is still being sent.", { code: "busy" });
      return false;
    }
    const length = codePointLength(content);
    if (length > this.maxLength) {
      this._showNotice(
        `Your message is too long: ${length.toLocaleString("en-US")} characters, the limit is ${this.maxLength.toLocaleString("en-US")}.`,
        { code: "too_long" }
      );
      return false;
    }
    this._clearNotices();
    this._forgetDraft();
    this.model.queueSend(content);
    if (this.dom.input.value.trim() === content) this.dom.input.value = "";
    this._autosize();
    if (this.conn.synced) this.conn.flush();
    this.stick = true;
    this._scheduleRender();
    return true;
  }

  /** Approve or deny ("approve" | "deny") the tool call waiting for approval `approvalId`. */
  decide(approvalId, choice) {
    if (!this.conn.synced) {
      this._showNotice("Not connected: your decision can be sent when the connection is back.", { code: "approval" });
      return false;
    }
    const frame = this.model.decideApproval(approvalId, choice);
    if (!frame) return false;
    if (!this.conn.send(frame)) {
      this.model.forgetSentDecisions();
      this._showNotice("Not connected: your decision was not sent.", { code: "approval" });
    }
    this._scheduleRender();
    return true;
  }

  /** A regenerate, edit or version choice: every tab gets the new branch as a snapshot. */
  sendBranching(frame) {
    if (!this.conn.synced || !this.conn.send(frame)) {
      this._showNotice("Not connected: try again once the connection is back.", { code: "branch" });
      return false;
    }
    this._clearNotices();
    this.stick = frame.type !== "branch";
    return true;
  }

  stop() {
    if (!this.model.activeRunId || this.stopRequested) return;
    if (this.conn.send(stopFrame())) {
      this.stopRequested = true;
      // The Stop button is disabled now and goes away when the run ends: focus goes to the composer.
      const focused = this.doc.activeElement;
      if (!focused || focused === this.dom.stop || focused === this.doc.body) this.dom.input.focus();
    } else {
      this._showNotice("Not connected: the run cannot be stopped until the connection is back.");
    }
    this._updateComposer();
  }

  _updateComposer() {
    const { send, stop, input, counter } = this.dom;
    if (!send) return;
    const active = !!this.model.activeRunId;
    // The Stop button is about to disappear: keep keyboard focus in the composer.
    if (!active && this.doc.activeElement === stop) input.focus();
    send.hidden = active;
    stop.hidden = !active;
    stop.disabled = this.stopRequested || !this.conn.synced;
    stop.textContent = this.stopRequested ? "Stopping…" : "Stop";
    const text = input.value.trim();
    send.disabled = this.conn.forbidden || !text || this.model.hasPendingSend();
    input.disabled = this.conn.forbidden;
    if (counter) {
      const length = codePointLength(input.value);
      const near = length > this.maxLength * 0.8;
      counter.hidden = !near;
      counter.textContent = near ? `${length.toLocaleString("en-US")} / ${this.maxLength.toLocaleString("en-US")}` : "";
      counter.classList.toggle("is-over", length > this.maxLength);
    }
  }

  // ---- focus

  _bindFocus() {
    const doc = this.doc;
    // The skip link leads to the conversation's composer, past the sidebar.
    for (const skip of doc.querySelectorAll("a.skip-link")) {
      skip.addEventListener("click", (e) => {
        const input = this.dom.input;
        if (input.disabled) {
          this.dom.scroll.setAttribute("tabindex", "-1");
          this.dom.scroll.focus();
        } else {
          input.focus();
        }
        e.preventDefault();
      });
    }
    // The ⋯ menu (sidebar.js closes it on Esc or a click elsewhere): closed with Esc, or by choosing
    // an item that keeps the page, focus goes back to its button.
    doc.addEventListener(
      "keydown",
      (e) => {
        if (e.key !== "Escape") return;
        const menus = [...doc.querySelectorAll("details.chat-menu[open]")];
        if (!menus.length) return;
        setTimeout(() => {
          for (const menu of menus) {
            if (menu.open) continue;
            const focused = doc.activeElement;
            if (!focused || focused === doc.body || menu.contains(focused)) menu.querySelector("summary").focus();
          }
        }, 0);
      },
      true
    );
    doc.addEventListener("click", (e) => {
      const item = e.target instanceof Element ? e.target.closest("details.chat-menu a.chat-menu__item") : null;
      if (!item) return;
      const menu = item.closest("details.chat-menu");
      menu.open = false;
      menu.querySelector("summary").focus();
    });
  }

  // ---- scrolling

  _bindScroll() {
    const scroll = this.dom.scroll;
    scroll.addEventListener(
      "scroll",
      () => {
        this.stick = scroll.scrollHeight - scroll.scrollTop - scroll.clientHeight < STICK_TO_BOTTOM_PX;
        if (this.stick && this.dom.jump) this.dom.jump.hidden = true;
      },
      { passive: true }
    );
    if (this.dom.jump) {
      this.dom.jump.addEventListener("click", () => {
        scroll.scrollTop = scroll.scrollHeight;
        this.stick = true;
        this.dom.jump.hidden = true;
      });
    }
  }
}

// ------------------------------------------------------------------ boot

function enhanceConfirmForms(doc) {
  doc.addEventListener(
    "submit",
    (e) => {
      const form = e.target;
      const question = form && form.dataset ? form.dataset.confirm : "";
      if (question && !window.confirm(question)) {
        e.preventDefault();
        e.stopImmediatePropagation();
      }
    },
    true
  );
}

function boot() {
  enhanceConfirmForms(document);
  initSidebar(document);
  const configEl = document.getElementById("chat-config");
  if (!configEl) return;
  let config;
  try {
    config = JSON.parse(configEl.textContent);
  } catch (_) {
    return;
  }
  new ChatApp(config, document).start();
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
}
