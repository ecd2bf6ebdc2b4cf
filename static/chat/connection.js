// Agent Chat: the conversation's WebSocket.
//
// One socket at a time. It reconnects with backoff (0.5 s doubling to 10 s,
// jittered) and gives up for good on a "forbidden" close code, on 4401 (the user was
// signed out: logged out in another tab, password changed; the page says so at once), when a refused
// handshake turns out to be a refused page, or when the server says, before the
// first snapshot, that the account has too many tabs open (the person retries). A restarting
// server (close code 1012) is reconnected to at once, silently. Frames go to the ChatModel: a
// snapshot replaces its state, run events are checked for order, and a gap sends
// `sync` (with a new socket when no snapshot comes back). A run that goes quiet
// is synced too, since a lost trailing event leaves no gap to notice. The page
// hears about it through `hooks`.

import { CLOSE, FORBIDDEN_CLOSE_CODES, SERVER_FRAME, VERDICT, isDirectError, isRunEvent, syncFrame } from "./protocol.js";
import { backoffDelay } from "./helpers.js";

const SYNC_TIMEOUT_MS = 8000; // no snapshot after a sync: reconnect
const STALL_SYNC_MS = 15000; // active run silent this long: ask for a snapshot
const WATCHDOG_INTERVAL_MS = 5000;
export const TOO_MANY_TABS = "Too many open tabs: close some of this account's chat tabs, then try again.";

/** The socket URL of a page's chat config: `wsPath` (absolute or a path) or the conversation's. */
export function socketUrl(config, location = window.location) {
  const path = config.wsPath || `/ws/conversations/${config.conversationId}/`;
  if (/^wss?:\/\//.test(path)) return path;
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
}

/**
 * The socket of one conversation page, feeding `model` (a ChatModel).
 *
 * hooks:
 *   onState(state)          "connecting" | "open" | "reconnecting" | "closed"
 *   onSnapshot(first)       a snapshot was applied (first: the page's first one)
 *   onChange()              a live run event changed the model
 *   onDirectError(frame)    a direct error for this socket (no run_id / seq)
 *   onTitle(title)          the conversation has a new title (renamed anywhere, or named by the model)
 * (A `feedback` frame updates the model and calls onChange.)
 *   onForbidden(text, link) the conversation cannot be opened: no more reconnects
 *                           (text and link are undefined for the default notice)
 *   onSignedOut()           the session no longer logs the user in (close 4401, or a handshake
 *                           refused with a redirect to the login page): no more reconnects
 */
export class Connection {
  constructor({ url, model, doc, hooks }) {
    this.url = url;
    this.model = model;
    this.doc = doc;
    this.hooks = hooks;
    this.ws = null;
    this.number = 0; // number of the current socket
    this.synced = false; // the current socket delivered its snapshot
    this.attempt = 0;
    this.reconnectTimer = null;
    this.syncTimer = null;
    this.forbidden = false;
    this.everSynced = false;
    this.lastEventAt = Date.now();
    this.lastSyncAt = 0;
    this.state = "";
  }

  start() {
    window.addEventListener("online", () => this.reconnectNow());
    this.doc.addEventListener("visibilitychange", () => {
      if (this.doc.visibilityState === "visible") this.reconnectNow();
    });
    setInterval(() => this._watchdog(), WATCHDOG_INTERVAL_MS);
    this._setState("connecting");
    this.connect();
  }

  connect() {
    if (this.forbidden) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const number = ++this.number;
    this.synced = false;
    let ws;
    try {
      ws = new WebSocket(this.url);
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

  /** Send a frame on the open socket; false when there is none. */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Send the outbox's frames not yet sent on socket `number` (the current one by default). */
  flush(number = this.number) {
    for (const frame of this.model.takeUnsent(number)) this.send(frame);
  }

  /** Stop for good (no more reconnects) and tell the page why. */
  forbid(text, link) {
    if (this.forbidden) return;
    this.forbidden = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.ws) this.ws.close();
    this.ws = null;
    this._setState("closed");
    this.hooks.onForbidden(text, link);
  }

  /** The user was signed out: stop for good, state "signed_out", and tell the page. */
  signOut() {
    if (this.forbidden) return;
    this.forbidden = true;
    this.signedOut = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    clearTimeout(this.syncTimer);
    if (this.ws) this.ws.close();
    this.ws = null;
    this.synced = false;
    this._setState("signed_out");
    if (this.hooks.onSignedOut) this.hooks.onSignedOut();
    else this.hooks.onForbidden("You were signed out.");
  }

  /** Waiting for a reconnect (offline, hidden tab): try now, from the first backoff step. */
  reconnectNow() {
    if (this.reconnectTimer && !this.forbidden) {
      this.attempt = 0;
      this.connect();
    }
  }

  _setState(state) {
    this.state = state;
    this.hooks.onState(state);
  }

  _onClose(event, opened) {
    const synced = this.synced;
    this.ws = null;
    this.synced = false;
    clearTimeout(this.syncTimer);
    if (event.code === CLOSE.LOGGED_OUT) {
      // Logged out in another tab, password changed, "log out other sessions": reconnecting cannot help.
      this.signOut();
      return;
    }
    if (FORBIDDEN_CLOSE_CODES.includes(event.code)) {
      this.forbid();
      return;
    }
    if (event.code === CLOSE.SERVICE_RESTART && !this.restarting) {
      // A deploy: this process drains while another serves. Reconnect now, from the first backoff step,
      // without telling the person anything; the run goes on over there. Only once in a row: a second
      // restart close before a snapshot takes the usual backoff.
      this.restarting = true;
      this.attempt = 0;
      this.connect();
      return;
    }
    if (event.code === CLOSE.TOO_MANY_SOCKETS && !synced) {
      // Closed before its snapshot: not a flood of syncs but a socket over the account's cap. Retrying
      // on its own would only knock again; the person closes tabs, then tries again.
      this.forbid(TOO_MANY_TABS, { href: window.location.href, text: "Try again" });
      return;
    }
    this._setState(this.everSynced ? "reconnecting" : "connecting");
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
      this.forbid();
    } else if (response.redirected && new URL(response.url).pathname !== window.location.pathname) {
      this.signOut(); // sent to the login page
    }
  }

  _scheduleReconnect() {
    if (this.forbidden || this.reconnectTimer) return;
    const delay = backoffDelay(this.attempt++);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  _sync() {
    if (!this.send(syncFrame())) return;
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
    if (frame.type === SERVER_FRAME.SNAPSHOT) {
      this._onSnapshot(frame, number);
    } else if (isRunEvent(frame)) {
      const verdict = this.model.handleRunEvent(frame);
      if (verdict === VERDICT.GAP) this._sync();
      if (verdict === VERDICT.APPLY) this.hooks.onChange();
    } else if (isDirectError(frame)) {
      this.hooks.onDirectError(frame);
    } else if (frame.type === SERVER_FRAME.TITLE && typeof frame.title === "string" && this.hooks.onTitle) {
      this.hooks.onTitle(frame.title);
    } else if (frame.type === SERVER_FRAME.MODEL && typeof frame.model === "string" && this.hooks.onModel) {
      this.hooks.onModel(frame.model);
    } else if (frame.type === SERVER_FRAME.BUDGET && this.hooks.onBudget) {
      this.hooks.onBudget(frame.low);
    } else if (frame.type === SERVER_FRAME.FEEDBACK && this.model.applyFeedback(frame)) {
      this.hooks.onChange();
    }
  }

  _onSnapshot(frame, number) {
    clearTimeout(this.syncTimer);
    const first = !this.everSynced;
    this.model.applySnapshot(frame);
    if (typeof frame.model === "string" && this.hooks.onModel) this.hooks.onModel(frame.model);
    this.synced = true;
    this.everSynced = true;
    this.restarting = false;
    this.attempt = 0;
    this._setState("open");
    this.flush(number);
    this.hooks.onSnapshot(first);
  }
}
