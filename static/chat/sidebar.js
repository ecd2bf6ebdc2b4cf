// Agent Chat: finding conversations from the chat page, and small page helpers.
//
// - Rename inline: click the chat header's title (or its pencil), type, Enter saves
//   (PATCH /api/conversations/<id> with the session cookie and X-CSRFToken), Esc cancels.
//   The sidebar row and the document title follow.
// - The sidebar's search box filters the list as the user types (GET /conversations/search/?q=);
//   a search past the bounds (400 bad_request) shows the server's message instead of results.
// - The chat header's menu (export, delete) closes on a click elsewhere or Esc.
// - Buttons with data-copy-target copy that element's text (the new API token).

import { csrfToken } from "./dom.js";

const SEARCH_DELAY_MS = 200;
const SITE_NAME = "Agent Chat";

// ------------------------------------------------------------------ rename

class InlineRename {
  constructor(doc, root) {
    this.doc = doc;
    this.url = root.dataset.renameUrl;
    this.title = doc.querySelector("[data-chat-title]");
    this.button = doc.querySelector("[data-rename-start]");
    this.input = null;
    this.saving = false;
  }

  bind() {
    if (!this.title || !this.url) return;
    // A new title from the server (renamed in another tab or client, or named by the model).
    this.doc.addEventListener("chat:title", (e) => {
      if (e.detail && typeof e.detail.title === "string" && e.detail.title) this.show(e.detail.title);
    });
    this.doc.addEventListener("click", (e) => {
      if (e.target.closest("[data-chat-title]") || e.target.closest("[data-rename-start]")) this.open();
    });
  }

  open() {
    if (this.input) return;
    const input = this.doc.createElement("input");
    input.type = "text";
    input.maxLength = 200;
    input.className = "chat__title-input";
    input.value = this.title.dataset.untitled === "true" ? "" : this.title.textContent.trim();
    input.placeholder = "Conversation name";
    input.setAttribute("aria-label", "Conversation name");
    input.dataset.testid = "rename-input";
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.isComposing) {
        e.preventDefault();
        this.save();
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        this.close();
      }
    });
    input.addEventListener("blur", () => {
      if (!this.saving) this.close();
    });
    this.input = input;
    this.title.hidden = true;
    if (this.button) this.button.hidden = true;
    this.title.after(input);
    input.focus();
    input.select();
  }

  close() {
    const input = this.input;
    if (!input) return;
    this.input = null;
    input.remove();
    this.title.hidden = false;
    if (this.button) this.button.hidden = false;
  }

  async save() {
    const input = this.input;
    const wanted = input.value.trim();
    if (this.saving) return;
    if (!wanted) return this.close();
    this.saving = true;
    let response;
    try {
      response = await fetch(this.url, {
        method: "PATCH",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(this.doc) },
        body: JSON.stringify({ title: wanted }),
      });
    } catch (_) {
      response = null;
    }
    this.saving = false;
    if (!response || !response.ok) {
      input.focus();
      input.setCustomValidity(await refusalText(response));
      input.reportValidity();
      input.addEventListener("input", () => input.setCustomValidity(""), { once: true });
      return;
    }
    this.show((await response.json()).title);
    this.close();
  }

  show(title) {
    this.title.textContent = title;
    this.title.dataset.untitled = "false";
    this.doc.title = `${title} · ${SITE_NAME}`;
    const row = this.doc.querySelector('[data-testid="conversation-link"][aria-current="page"] .side-link__title');
    if (row) {
      row.removeAttribute("data-conversation-title");
      row.textContent = title;
    }
  }
}

async function refusalText(response) {
  if (!response) return "Not connected: the name was not saved.";
  try {
    const body = await response.json();
    return (body.error && body.error.message) || "The name was not saved.";
  } catch (_) {
    return "The name was not saved.";
  }
}

// ------------------------------------------------------------------ sidebar search

class SidebarSearch {
  constructor(doc, root) {
    this.doc = doc;
    this.url = root.dataset.searchUrl;
    this.form = doc.querySelector("[data-side-search]");
    this.list = doc.querySelector("[data-side-list]");
    this.noMatch = doc.querySelector("[data-side-no-match]");
    this.refusedNote = doc.querySelector("[data-side-refused]");
    this.openId = (doc.querySelector('[data-testid="conversation-link"][aria-current="page"]') || { dataset: {} })
      .dataset.conversationId;
    this.timer = null;
    this.asked = 0;
  }

  bind() {
    if (!this.form || !this.list || !this.url) return;
    const input = this.form.querySelector("input[name=q]");
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.search(input.value);
    });
    input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.search(input.value), SEARCH_DELAY_MS);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && input.value) {
        e.stopPropagation();
        input.value = "";
        this.search("");
      }
    });
  }

  async search(query) {
    const asked = ++this.asked;
    const params = new URLSearchParams({ q: query.trim() });
    if (this.openId) params.set("open", this.openId);
    let response, body;
    try {
      response = await fetch(`${this.url}?${params}`, { credentials: "same-origin" });
      body = await response.json();
    } catch (_) {
      return;
    }
    if (asked !== this.asked) return;
    if (response.ok) this.show(body.conversations);
    else if (response.status === 400 && body.error) this.refuse(body.error.message);
  }

  refuse(message) {
    for (const row of this.list.children) row.hidden = true;
    if (this.noMatch) this.noMatch.hidden = true;
    if (this.refusedNote) {
      this.refusedNote.textContent = message;
      this.refusedNote.hidden = false;
    }
  }

  show(found) {
    if (this.refusedNote) this.refusedNote.hidden = true;
    const rows = new Map();
    for (const link of this.list.querySelectorAll('[data-testid="conversation-link"]')) {
      rows.set(link.dataset.conversationId, link.closest("li"));
    }
    const wanted = new Set(found.map((c) => String(c.id)));
    for (const [id, row] of rows) row.hidden = !wanted.has(id);
    for (const conversation of found) {
      if (!rows.has(String(conversation.id))) this.list.append(this.row(conversation));
    }
    for (const empty of this.list.querySelectorAll(".side-list__empty")) empty.hidden = true;
    if (this.noMatch) this.noMatch.hidden = found.length > 0;
  }

  row(conversation) {
    const li = this.doc.createElement("li");
    const link = this.doc.createElement("a");
    link.href = conversation.url;
    link.className = "side-link";
    link.dataset.testid = "conversation-link";
    link.dataset.conversationId = String(conversation.id);
    const title = this.doc.createElement("span");
    title.className = "side-link__title";
    title.textContent = conversation.title;
    link.append(title);
    li.append(link);
    return li;
  }
}

// ------------------------------------------------------------------ copy buttons

function bindCopyButtons(doc) {
  for (const button of doc.querySelectorAll("[data-copy-target]")) {
    button.addEventListener("click", async () => {
      const source = doc.querySelector(button.dataset.copyTarget);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch (_) {
        const range = doc.createRange();
        range.selectNodeContents(source);
        const selection = doc.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }
}

// A click elsewhere, or Esc, closes the chat header's menu (a <details>).
function bindMenus(doc) {
  const closeMenus = (except) => {
    for (const menu of doc.querySelectorAll("details.chat-menu[open]")) if (menu !== except) menu.open = false;
  };
  doc.addEventListener("click", (e) => closeMenus(e.target.closest("details.chat-menu")));
  doc.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && doc.querySelector("details.chat-menu[open]")) closeMenus(null);
  });
}

/** Wire what this module adds to whichever page `doc` is. */
export function initSidebar(doc) {
  bindCopyButtons(doc);
  bindMenus(doc);
  const root = doc.querySelector("[data-chat-root]");
  if (!root) return;
  new InlineRename(doc, root).bind();
  new SidebarSearch(doc, root).bind();
}
