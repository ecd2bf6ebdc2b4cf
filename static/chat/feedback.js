// Agent Chat: thumbs up / down, with an optional comment, on a finished answer.
//
// The bar sits in the answer's footer (view.js). Pressing a thumb stores the rating at once
// (POST /api/messages/<id>/feedback with the session cookie and X-CSRFToken); a thumbs down, or
// "Comment", opens a comment box whose Save stores the rating with the comment. A later rating or
// comment replaces the earlier. The stored feedback comes back with every snapshot (message.feedback),
// so a reload or another tab shows it. An answer that streamed in this tab has no message id yet:
// the first press looks it up by its run id in the stored conversation (GET /api/conversations/<id>).

import { csrfToken, el } from "./dom.js";

export const COMMENT_MAX_LENGTH = 2000;
const LABELS = { 1: "Good answer", [-1]: "Bad answer" };
// Feather's thumbs-up / thumbs-down (MIT): drawn inline, so they show without an emoji font.
const ICONS = {
  1: "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3",
  [-1]: "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17",
};
const SVG = "http://www.w3.org/2000/svg";

function icon(rating) {
  const svg = document.createElementNS(SVG, "svg");
  for (const [name, value] of Object.entries({ viewBox: "0 0 24 24", width: "16", height: "16", "aria-hidden": "true" })) {
    svg.setAttribute(name, value);
  }
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[rating]);
  svg.append(path);
  return svg;
}
let formCounter = 0;

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) {
    // not JSON: say what the status says
  }
  return `Could not save (${response.status}).`;
}

/** The thumbs, the Comment button and the comment form of one answer. */
export class FeedbackBar {
  /** `conversationUrl`: the API's URL of the conversation (to find an answer's id by its run id). */
  constructor(conversationUrl) {
    this.conversationUrl = conversationUrl;
    this.messageId = null;
    this.runId = "";
    this.source = undefined; // the msg.feedback object last applied
    this.saved = null; // {rating, comment} as stored
    this.busy = false;

    this.root = el("div", "feedback", { role: "group", "aria-label": "Rate this answer", "data-testid": "feedback" });
    this.up = this._thumb(1, "feedback-up");
    this.down = this._thumb(-1, "feedback-down");
    this.toggle = el("button", "feedback__toggle", {
      type: "button",
      "data-testid": "feedback-comment-toggle",
      "aria-expanded": "false",
    });
    this.toggle.textContent = "Comment";
    this.toggle.hidden = true; // until the answer is rated
    this.toggle.addEventListener("click", () => this.openForm(this.form.hidden));
    this.root.append(this.up, this.down, this.toggle);

    const id = `feedback-comment-${++formCounter}`;
    this.form = el("form", "feedback-form", { "data-testid": "feedback-form", hidden: "" });
    const label = el("label", "feedback-form__label", { for: id });
    label.textContent = "What was good or wrong about this answer? (optional)";
    this.textarea = el("textarea", "feedback-form__input", {
      id,
      rows: "3",
      maxlength: String(COMMENT_MAX_LENGTH),
      "data-testid": "feedback-comment",
    });
    const row = el("div", "feedback-form__row");
    this.status = el("span", "feedback-form__status", { role: "status", "data-testid": "feedback-status" });
    const cancel = el("button", "btn btn--ghost btn--sm", { type: "button" });
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", () => this.openForm(false));
    this.save = el("button", "btn btn--primary btn--sm", { type: "submit", "data-testid": "feedback-save" });
    this.save.textContent = "Save";
    row.append(this.status, cancel, this.save);
    this.form.append(label, this.textarea, row);
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send(this.saved ? this.saved.rating : -1, this.textarea.value, { closeForm: true });
    });
    this.form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault(); // Esc here closes the box; it does not stop a running answer
        this.openForm(false);
      }
    });

    this.note = el("p", "feedback-note", { "data-testid": "feedback-note", hidden: "" });
  }

  _thumb(rating, testid) {
    const button = el("button", "feedback__thumb", {
      type: "button",
      "aria-pressed": "false",
      "aria-label": LABELS[rating],
      title: LABELS[rating],
      "data-testid": testid,
    });
    button.append(icon(rating));
    button.addEventListener("click", () => {
      const comment = this.saved ? this.saved.comment : "";
      this.send(rating, comment);
      if (rating === -1) this.openForm(true);
    });
    return button;
  }

  /** Follow the message: its id, its run, and the feedback the server last sent for it. */
  update(msg) {
    this.messageId = msg.id ?? this.messageId;
    this.runId = msg.runId || this.runId;
    if (msg.feedback !== this.source && !this.busy) {
      this.source = msg.feedback;
      this.saved = msg.feedback ? { rating: msg.feedback.rating, comment: msg.feedback.comment || "" } : null;
      this._show();
    }
  }

  /** Whether the answer can be rated: it is stored, or its run is known. */
  get rateable() {
    return this.messageId != null || this.runId !== "";
  }

  /** Open or close the comment box; closing it gives the focus back to the bar when it was in the box. */
  openForm(open, { refocus = false } = {}) {
    const hadFocus = refocus || this.form.contains(document.activeElement);
    this.form.hidden = !open;
    if (!open && hadFocus) (this.toggle.hidden ? this.down : this.toggle).focus(); // not lost to <body>
    this.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      this.textarea.value = this.saved ? this.saved.comment : "";
      this.status.textContent = "";
      this.textarea.focus();
    }
  }

  _show() {
    const rating = this.saved ? this.saved.rating : 0;
    this.up.setAttribute("aria-pressed", rating === 1 ? "true" : "false");
    this.down.setAttribute("aria-pressed", rating === -1 ? "true" : "false");
    this.root.dataset.rating = String(rating);
    this.toggle.hidden = rating === 0;
    const comment = this.saved ? this.saved.comment : "";
    this.note.textContent = comment;
    this.note.hidden = comment === "";
  }

  async _resolveId() {
    if (this.messageId != null) return this.messageId;
    const response = await fetch(this.conversationUrl, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Error(await errorText(response));
    const body = await response.json();
    const stored = (body.messages || []).find((m) => m.role === "assistant" && m.run_id === this.runId);
    if (!stored) throw new Error("This answer is not stored yet; try again in a moment.");
    this.messageId = stored.id;
    return stored.id;
  }

  async send(rating, comment, { closeForm = false } = {}) {
    if (this.busy) return;
    this.busy = true;
    this.root.dataset.saving = "true";
    this.save.disabled = true;
    const before = this.saved;
    this.saved = { rating, comment: before ? before.comment : "" }; // pressed at once; the comment once stored
    this._show();
    this.status.textContent = "";
    try {
      const id = await this._resolveId();
      const response = await fetch(`/api/messages/${encodeURIComponent(id)}/feedback`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ rating, comment }),
      });
      if (!response.ok) throw new Error(await errorText(response));
      const stored = await response.json();
      this.saved = { rating: stored.rating, comment: stored.comment || "" };
      this._show();
      this.status.textContent = "";
      if (closeForm) this.openForm(false, { refocus: true }); // Save was disabled meanwhile: it lost the focus
    } catch (error) {
      this.saved = before;
      this._show();
      this.status.textContent = error instanceof Error ? error.message : "Could not save.";
      if (!closeForm) this.openForm(true); // the box shows what went wrong
    } finally {
      this.busy = false;
      delete this.root.dataset.saving;
      this.save.disabled = false;
    }
  }
}
