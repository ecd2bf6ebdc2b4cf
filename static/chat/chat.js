// Agent Chat: the live conversation page.
//
// Layers, top to bottom:
//   1. helpers       pure formatting (JSON, counts)
//   2. ChatModel     pure state: snapshot + run events -> messages to render, the
//                    outbox of unacknowledged sends, seq tracking (no DOM; Node-testable)
//   3. ChatView      keyed, idempotent DOM rendering of a ChatModel (createElement +
//                    textContent only: model output and user text are never parsed as HTML)
//   4. ChatApp       the WebSocket (reconnect with backoff, sync on gaps), the composer,
//                    notices and the connection indicator
//   5. boot          starts ChatApp when the page has #chat-config; confirm() on forms
//                    with data-confirm (used on every page)
//
// Needs static/chat/protocol.js (window.AgentChatProtocol) loaded first.
(function () {
  "use strict";

  const P =
    typeof window !== "undefined" && window.AgentChatProtocol
      ? window.AgentChatProtocol
      : require("./protocol.js"); // Node tests
  const { EVENT, VERDICT } = P;
  const GENERATING = P.MESSAGE_STATUS.GENERATING;

  // ---------------------------------------------------------------- 1. helpers

  const hasOwn = (obj, key) => obj !== null && typeof obj === "object" && Object.prototype.hasOwnProperty.call(obj, key);

  /** JSON in Python's json.dumps style ({"x": 10, "y": 10}), so stored args look like typed ones. */
  function formatJson(value) {
    if (value === undefined) return "";
    if (value === null || typeof value !== "object") {
      const text = JSON.stringify(value);
      return text === undefined ? String(value) : text;
    }
    if (Array.isArray(value)) return "[" + value.map(formatJson).join(", ") + "]";
    return "{" + Object.keys(value).map((k) => JSON.stringify(k) + ": " + formatJson(value[k])).join(", ") + "}";
  }

  /** A tool result as text: strings as they are, anything else as JSON. */
  function resultText(output) {
    if (typeof output === "string") return output;
    const text = JSON.stringify(output);
    return text === undefined ? String(output) : text;
  }

  /** Multi-line JSON for the expanded tool card; raw text when it does not parse. */
  function prettyJsonText(text) {
    try {
      const parsed = JSON.parse(text);
      if (parsed !== null && typeof parsed === "object") return JSON.stringify(parsed, null, 2);
    } catch (_) {
      /* still being typed, or not JSON */
    }
    return text;
  }

  /** Length in code points, the way the server (Python len) counts. */
  function codePointLength(text) {
    let n = 0;
    for (const _ of text) n++;
    return n;
  }

  const plural = (n, word) => `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;

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

  /** Usage line of an assistant message, e.g. "3 tools · 204 tokens". */
  function usageText(msg) {
    const parts = [];
    if (msg.tools.length) parts.push(plural(msg.tools.length, "tool"));
    const total = msg.usage && Number(msg.usage.total_tokens);
    if (Number.isFinite(total) && total > 0) parts.push(plural(total, "token"));
    return parts.join(" · ");
  }

  // -------------------------------------------------------------- 2. ChatModel

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
  class ChatModel {
    constructor() {
      this.messages = [];
      this.byKey = new Map();
      this.tracker = new P.RunTracker();
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
          .filter((e) => P.isRunEvent(e) && e.run_id === runId)
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
          msg.status = P.DONE_STATUSES.includes(event.status) ? event.status : P.DONE_STATUS.COMPLETED;
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
    queueSend(content, clientId = P.newClientId()) {
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
        frames.push(P.sendFrame(entry.content, entry.clientId));
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

  // --------------------------------------------------------------- 3. ChatView

  function el(tag, className, attrs) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (attrs) for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    if (value === null || value === undefined || value === false) {
      if (node.hasAttribute(name)) node.removeAttribute(name);
    } else if (node.getAttribute(name) !== String(value)) {
      node.setAttribute(name, String(value));
    }
  }

  /** Streaming text: append to one Text node when the new text extends the old one. */
  function setStreamText(node, text) {
    let textNode = node.firstChild;
    if (!textNode || textNode.nodeType !== 3 || node.childNodes.length !== 1) {
      node.textContent = "";
      textNode = node.appendChild(document.createTextNode(""));
    }
    const current = textNode.data;
    if (current === text) return;
    if (text.length > current.length && text.startsWith(current)) textNode.appendData(text.slice(current.length));
    else textNode.data = text;
  }

  class ChatView {
    constructor(listEl) {
      this.list = listEl;
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
      for (const msg of model.messages) {
        const node = this.nodes.get(msg.key);
        const streaming = msg.status === GENERATING && msg.runId !== "" && msg.runId === model.activeRunId;
        const stamp = `${msg.rev}:${streaming}`;
        if (node.stamp === stamp) continue;
        node.stamp = stamp;
        if (msg.role === "user") this._updateUser(node, msg);
        else this._updateAssistant(node, msg, streaming);
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
      root.append(bubble, meta);
      return { root, bubble, meta, stamp: "" };
    }

    _updateUser(node, msg) {
      setAttr(node.root, "data-status", msg.status);
      setAttr(node.root, "data-pending", msg.pending ? "true" : null);
      setText(node.bubble, msg.text);
      setText(node.meta, msg.pending ? "Sending…" : "");
      node.meta.hidden = !msg.pending;
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
      const workingText = el("span", "working__text");
      workingText.textContent = "Working…";
      working.append(dots, workingText);
      const answer = el("div", "answer", { "data-testid": "answer" });
      const errorSlot = el("div", "run-error-slot");
      const meta = el("div", "msg__meta");
      const usage = el("span", "msg__usage");
      const copy = el("button", "msg__copy", { type: "button" });
      copy.textContent = "Copy";
      meta.append(usage, copy);
      body.append(head, tools, working, answer, errorSlot, meta);
      root.append(avatar, body);
      const node = { root, body, badge, tools, toolNodes: new Map(), working, answer, errorSlot, errorEl: null, meta, usage, copy, stamp: "" };
      copy.addEventListener("click", () => copyText(node.answer.textContent, copy));
      return node;
    }

    _updateAssistant(node, msg, streaming) {
      setAttr(node.root, "data-status", msg.status);
      setAttr(node.root, "data-run-id", msg.runId || null);
      setAttr(node.body, "aria-busy", streaming ? "true" : null);

      const label = STATUS_LABELS[msg.status] || "";
      setText(node.badge, label);
      node.badge.hidden = !label;
      setAttr(node.badge, "data-kind", msg.status);

      this._renderTools(node, msg);

      const toolBusy = msg.tools.some((t) => t.phase === "args" || t.phase === "running");
      node.working.hidden = !(streaming && msg.text === "" && !toolBusy && !msg.error);

      setStreamText(node.answer, msg.text);
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
      node.meta.hidden = streaming || (node.usage.textContent === "" && node.copy.hidden);
    }

    _renderTools(node, msg) {
      const keep = new Set(msg.tools.map((t) => t.callId));
      for (const [callId, card] of node.toolNodes) {
        if (!keep.has(callId)) {
          card.root.remove();
          node.toolNodes.delete(callId);
        }
      }
      let cursor = node.tools.firstChild;
      for (const tool of msg.tools) {
        let card = node.toolNodes.get(tool.callId);
        if (!card) {
          card = this._createTool();
          if (this.animate) card.root.classList.add("is-new");
          node.toolNodes.set(tool.callId, card);
        }
        if (card.root !== cursor) node.tools.insertBefore(card.root, cursor);
        else cursor = cursor.nextSibling;
        this._updateTool(card, tool);
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
      return { root, icon, state, name, args, outcome, outcomeEl: null, outcomeKind: "", argsPre, resultLabel, resultPre };
    }

    _updateTool(card, tool) {
      const kind = tool.error !== null ? "error" : tool.phase;
      setAttr(card.root, "data-tool-name", tool.name);
      setAttr(card.root, "data-call-id", tool.callId);
      setAttr(card.root, "data-state", kind);
      setText(card.state, { args: "Preparing", running: "Running", done: "Done", error: "Failed", stopped: "Not finished" }[kind] || "");
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

  // ---------------------------------------------------------------- 4. ChatApp

  const BACKOFF_START_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const SYNC_TIMEOUT_MS = 8000; // no snapshot after a sync: reconnect
  const STALL_SYNC_MS = 15000; // active run silent this long: ask for a snapshot
  const STICK_TO_BOTTOM_PX = 96;
  const TITLE_LENGTH = 60;

  /** Delay before reconnect attempt `attempt` (0-based): 0.5 s doubling to 10 s, jittered. */
  function backoffDelay(attempt, random = Math.random) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** attempt);
    return Math.round(base / 2 + random() * (base / 2));
  }

  const CONNECTION_LABELS = {
    connecting: "Connecting…",
    open: "Connected",
    reconnecting: "Reconnecting…",
    closed: "Disconnected",
  };

  class ChatApp {
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
        counter: $("[data-char-counter]"),
        title: $("[data-chat-title]"),
        jump: $("[data-jump-latest]"),
        currentLink: $('[data-testid="conversation-link"][aria-current="page"]'),
      };
      const root = $("[data-chat-root]");
      this.listUrl = (root && root.dataset.listUrl) || "/";
      this.view = new ChatView(this.dom.list);
      this.ws = null;
      this.connection = 0; // number of the current socket
      this.synced = false; // the current socket delivered its snapshot
      this.attempt = 0;
      this.reconnectTimer = null;
      this.syncTimer = null;
      this.forbidden = false;
      this.everSynced = false;
      this.stopRequested = false;
      this.lastEventAt = Date.now();
      this.lastSyncAt = 0;
      this.renderQueued = false;
      this.stick = true;
      this.untitled = this.dom.title ? this.dom.title.dataset.untitled === "true" : false;
    }

    start() {
      this._bindComposer();
      this._bindScroll();
      for (const button of this.doc.querySelectorAll("[data-example-prompt]")) {
        button.addEventListener("click", () => {
          this.submit(button.dataset.examplePrompt || button.textContent);
          this.dom.input.focus();
        });
      }
      window.addEventListener("online", () => this._reconnectNow());
      this.doc.addEventListener("visibilitychange", () => {
        if (this.doc.visibilityState === "visible") this._reconnectNow();
      });
      setInterval(() => this._watchdog(), 5000);
      this._setConnection("connecting");
      this.connect();
      this._updateComposer();
    }

    // ---- socket

    _url() {
      const path = this.config.wsPath || `/ws/conversations/${this.config.conversationId}/`;
      if (/^wss?:\/\//.test(path)) return path;
      return `${window.location.protocol === "https:" ? "wss:" : "ws:"}//${window.location.host}${path}`;
    }

    connect() {
      if (this.forbidden) return;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      const number = ++this.connection;
      this.synced = false;
      let ws;
      try {
        ws = new WebSocket(this._url());
      } catch (_) {
        this._scheduleReconnect();
        return;
      }
      this.ws = ws;
      let opened = false;
      ws.addEventListener("open", () => {
        opened = true;
      });
      ws.addEventListener("message", (e) => {
        opened = true;
        if (this.ws === ws) this._onFrame(e.data, number);
      });
      ws.addEventListener("close", (e) => {
        if (this.ws === ws) this._onClose(e, opened);
      });
    }

    _onClose(event, opened) {
      this.ws = null;
      this.synced = false;
      clearTimeout(this.syncTimer);
      if (P.FORBIDDEN_CLOSE_CODES.includes(event.code)) {
        this._forbid();
        return;
      }
      this._setConnection(this.everSynced ? "reconnecting" : "connecting");
      this._scheduleReconnect();
      // A refusal at the handshake (HTTP 403) reaches the browser as a bare 1006: ask the page itself.
      if (!opened) this._probeAccess();
    }

    async _probeAccess() {
      if (typeof fetch !== "function") return;
      let response;
      try {
        response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
      } catch (_) {
        return; // the server is down: keep reconnecting
      }
      if ([401, 403, 404].includes(response.status)) {
        this._forbid();
      } else if (response.redirected && new URL(response.url).pathname !== window.location.pathname) {
        this._forbid("You are logged out.", { href: response.url, text: "Log in again" });
      }
    }

    _forbid(text = "You cannot open this conversation.", link = { href: this.listUrl, text: "Back to conversations" }) {
      if (this.forbidden) return;
      this.forbidden = true;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      if (this.ws) this.ws.close();
      this.ws = null;
      this._setConnection("closed");
      this._showNotice(text, { code: "forbidden", sticky: true, link });
      if (this.dom.loading) this.dom.loading.hidden = true;
      this.dom.input.placeholder = "This conversation is not available";
      this._updateComposer();
    }

    _scheduleReconnect() {
      if (this.forbidden || this.reconnectTimer) return;
      const delay = backoffDelay(this.attempt++);
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.connect();
      }, delay);
    }

    _reconnectNow() {
      if (this.reconnectTimer && !this.forbidden) {
        this.attempt = 0;
        this.connect();
      }
    }

    _sendFrame(frame) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(JSON.stringify(frame));
      return true;
    }

    _sync() {
      if (!this._sendFrame(P.syncFrame())) return;
      this.lastSyncAt = Date.now();
      clearTimeout(this.syncTimer);
      const ws = this.ws;
      this.syncTimer = setTimeout(() => {
        // No snapshot came back: start over on a new socket (its first frame is a snapshot).
        if (this.ws === ws && this.model.awaitingSnapshot) ws.close(4000, "sync timeout");
      }, SYNC_TIMEOUT_MS);
    }

    _watchdog() {
      // A lost trailing event (say `done`) leaves no gap to notice: ask again when a run goes quiet.
      const now = Date.now();
      if (
        this.synced &&
        this.model.activeRunId &&
        !this.model.awaitingSnapshot &&
        now - this.lastEventAt > STALL_SYNC_MS &&
        now - this.lastSyncAt > STALL_SYNC_MS
      ) {
        this._sync();
      }
    }

    _onFrame(data, number) {
      let frame;
      try {
        frame = JSON.parse(data);
      } catch (_) {
        return;
      }
      if (!frame || typeof frame !== "object") return;
      this.lastEventAt = Date.now();
      if (frame.type === P.SNAPSHOT) {
        this._onSnapshot(frame, number);
      } else if (P.isRunEvent(frame)) {
        const verdict = this.model.handleRunEvent(frame);
        if (verdict === VERDICT.GAP) this._sync();
        if (verdict === VERDICT.APPLY) this._afterModelChange();
      } else if (P.isDirectError(frame)) {
        this._onDirectError(frame);
      }
    }

    _onSnapshot(frame, number) {
      clearTimeout(this.syncTimer);
      const first = !this.everSynced;
      this.model.applySnapshot(frame);
      this.snapshotPending = true; // a snapshot re-renders without entrance animations
      this.synced = true;
      this.everSynced = true;
      this.attempt = 0;
      this._setConnection("open");
      for (const f of this.model.takeUnsent(number)) this._sendFrame(f);
      if (first) this.stick = true;
      this._afterModelChange();
    }

    _onDirectError(frame) {
      const code = String(frame.code || "error");
      const rejects = P.SEND_REJECTION_CODES.includes(code) || typeof frame.client_id === "string";
      const entry = rejects ? this.model.rejectSend(frame) : null;
      if (entry) this._restoreDraft(entry.content);
      this._showNotice(String(frame.message || "The server refused that request."), { code });
      this._afterModelChange();
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
      if (this.model.activeRunId === null) this.stopRequested = false;
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
      this._updateTitle();
      if (this.dom.currentLink) this.dom.currentLink.classList.toggle("is-generating", !!this.model.activeRunId);
      if (stick) scroll.scrollTop = scroll.scrollHeight;
      else if (this.dom.jump) this.dom.jump.hidden = false;
    }

    _updateTitle() {
      if (!this.untitled || !this.dom.title) return;
      const first = this.model.messages.find((m) => m.role === "user" && m.text.trim());
      if (!first) return;
      let title = first.text.trim().split("\n")[0];
      if (title.length > TITLE_LENGTH) title = title.slice(0, TITLE_LENGTH - 1).trimEnd() + "…";
      this.untitled = false;
      this.dom.title.textContent = title;
      this.dom.title.dataset.untitled = "false";
      this.doc.title = `${title} · Agent Chat`;
      const linkTitle = this.dom.currentLink && this.dom.currentLink.querySelector("[data-conversation-title]");
      if (linkTitle) linkTitle.textContent = title;
    }

    _setConnection(state) {
      this.connectionState = state;
      if (this.dom.status) {
        this.dom.status.dataset.state = state;
        this.dom.status.setAttribute("title", CONNECTION_LABELS[state]);
      }
      if (this.dom.statusLabel) this.dom.statusLabel.textContent = CONNECTION_LABELS[state];
      if (this.dom.banner) this.dom.banner.hidden = state !== "reconnecting";
      this._updateComposer();
    }

    // ---- notices

    _showNotice(text, { code = "", sticky = false, link = null } = {}) {
      const box = this.dom.notices;
      if (!box) return;
      for (const old of box.querySelectorAll('[data-testid="notice"]')) {
        if (old.dataset.sticky !== "true") old.remove();
      }
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
          this.dom.input.focus();
        });
        notice.append(close);
      }
      box.append(notice);
    }

    _clearNotices() {
      if (!this.dom.notices) return;
      for (const old of this.dom.notices.querySelectorAll('[data-testid="notice"]')) {
        if (old.dataset.sticky !== "true") old.remove();
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
        this._autosize();
        this._updateComposer();
      });
      stop.addEventListener("click", () => this.stop());
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
      if (!content || this.forbidden) return false;
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
      this.model.queueSend(content);
      if (this.dom.input.value.trim() === content) this.dom.input.value = "";
      this._autosize();
      if (this.synced) for (const f of this.model.takeUnsent(this.connection)) this._sendFrame(f);
      this.stick = true;
      this._scheduleRender();
      return true;
    }

    stop() {
      if (!this.model.activeRunId || this.stopRequested) return;
      if (this._sendFrame(P.stopFrame())) {
        this.stopRequested = true;
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
      stop.disabled = this.stopRequested || !this.synced;
      stop.textContent = this.stopRequested ? "Stopping…" : "Stop";
      const text = input.value.trim();
      send.disabled = this.forbidden || !text || this.model.hasPendingSend();
      input.disabled = this.forbidden;
      if (counter) {
        const length = codePointLength(input.value);
        const near = length > this.maxLength * 0.8;
        counter.hidden = !near;
        counter.textContent = near ? `${length.toLocaleString("en-US")} / ${this.maxLength.toLocaleString("en-US")}` : "";
        counter.classList.toggle("is-over", length > this.maxLength);
      }
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

  // ------------------------------------------------------------------- 5. boot

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
    const configEl = document.getElementById("chat-config");
    if (!configEl) return;
    let config;
    try {
      config = JSON.parse(configEl.textContent);
    } catch (_) {
      return;
    }
    const app = new ChatApp(config, document);
    window.agentChat = app; // handy in the console and in end-to-end tests
    app.start();
  }

  const api = { ChatModel, ChatView, ChatApp, formatJson, resultText, prettyJsonText, usageText, codePointLength, backoffDelay };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  if (typeof window !== "undefined") window.AgentChat = api;
  if (typeof document !== "undefined") {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
    else boot();
  }
})();
