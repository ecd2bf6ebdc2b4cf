// How the page's socket (static/chat/connection.js) reads close codes: 4429 before the first snapshot means the
// account has too many tabs open (stop, say so, let the person retry), after it too many syncs (reconnect);
// 4401 means the user was signed out elsewhere (stop for good, tell the page, keep the unsent text).
// Run: node --test tests/js/

import test from "node:test";
import assert from "node:assert/strict";

import { Connection, TOO_MANY_TABS } from "../../static/chat/connection.js";
import { ChatModel } from "../../static/chat/model.js";
import { CLOSE } from "../../static/chat/protocol.js";

globalThis.window = { location: { href: "http://localhost/c/7/" } };

function connection() {
  const told = { states: [], forbidden: null };
  const hooks = {
    onState: (state) => told.states.push(state),
    onForbidden: (text, link) => {
      told.forbidden = { text, link };
    },
  };
  const conn = new Connection({ url: "ws://localhost/ws/conversations/7/", model: new ChatModel(), doc: null, hooks });
  return { conn, told };
}

test("4429 before the first snapshot stops reconnecting and says there are too many tabs", () => {
  const { conn, told } = connection();
  conn.synced = false; // accepted, then closed at once: no snapshot came

  conn._onClose({ code: CLOSE.TOO_MANY_SOCKETS }, true);

  assert.equal(conn.forbidden, true);
  assert.equal(conn.reconnectTimer, null);
  assert.equal(told.forbidden.text, TOO_MANY_TABS);
  assert.match(told.forbidden.text, /Too many open tabs/);
  assert.deepEqual(told.forbidden.link, { href: "http://localhost/c/7/", text: "Try again" });
  assert.deepEqual(told.states, ["closed"]);
});

test("4429 after the snapshot (a sync flood) reconnects with backoff", () => {
  const { conn, told } = connection();
  conn.synced = true;
  conn.everSynced = true;

  conn._onClose({ code: CLOSE.TOO_MANY_SYNCS }, true);

  assert.equal(conn.forbidden, false);
  assert.notEqual(conn.reconnectTimer, null);
  assert.equal(told.forbidden, null);
  assert.deepEqual(told.states, ["reconnecting"]);
  clearTimeout(conn.reconnectTimer);
});

test("1012 (the server restarts) reconnects at once, silently, and only once before a snapshot", () => {
  const { conn, told } = connection();
  const opened = [];
  globalThis.WebSocket = class {
    constructor(url) {
      opened.push(url);
    }
    addEventListener() {}
  };
  conn.synced = true;
  conn.everSynced = true;
  conn.attempt = 4;

  conn._onClose({ code: CLOSE.SERVICE_RESTART }, true);

  assert.equal(opened.length, 1); // a new socket now, no timer
  assert.equal(conn.reconnectTimer, null);
  assert.equal(conn.attempt, 0);
  assert.deepEqual(told.states, []); // nothing shown
  assert.equal(conn.forbidden, false);

  conn.ws = null;
  conn._onClose({ code: CLOSE.SERVICE_RESTART }, true); // again, before any snapshot: the usual backoff
  assert.equal(opened.length, 1);
  assert.notEqual(conn.reconnectTimer, null);
  assert.deepEqual(told.states, ["reconnecting"]);
  clearTimeout(conn.reconnectTimer);
  delete globalThis.WebSocket;
});

test("4401 (signed out elsewhere) stops for good, says signed out, and never reconnects", () => {
  const { conn, told } = connection();
  told.signedOut = 0;
  conn.hooks.onSignedOut = () => told.signedOut++;
  conn.synced = true;
  conn.everSynced = true;

  conn._onClose({ code: CLOSE.LOGGED_OUT }, true);

  assert.equal(conn.forbidden, true);
  assert.equal(conn.signedOut, true);
  assert.equal(conn.reconnectTimer, null);
  assert.equal(conn.synced, false);
  assert.equal(told.signedOut, 1);
  assert.equal(told.forbidden, null); // not "You cannot open this conversation"
  assert.deepEqual(told.states, ["signed_out"]);

  conn.reconnectNow(); // back online, tab visible again: still no socket
  conn.connect();
  assert.equal(conn.ws, null);
  assert.equal(conn.send({ type: "sync" }), false);
  assert.equal(told.signedOut, 1);
});

test("4401 leaves the unacknowledged sends in the outbox for the page to put back", () => {
  const { conn, told } = connection();
  conn.hooks.onSignedOut = () => {
    told.outbox = conn.model.outbox.map((e) => e.content);
  };
  conn.model.queueSend("sent, not acknowledged").sentOn = 1;
  conn.model.queueSend("typed after the close");

  conn._onClose({ code: CLOSE.LOGGED_OUT }, true);

  assert.deepEqual(told.outbox, ["sent, not acknowledged", "typed after the close"]);
  const back = told.outbox.map(() => conn.model.rejectSend({ client_id: conn.model.outbox[0].clientId }).content);
  assert.deepEqual(back, ["sent, not acknowledged", "typed after the close"]);
  assert.equal(conn.model.messages.filter((m) => m.pending).length, 0); // no optimistic message left
});

test("other forbidden codes still show the 'cannot open' notice", () => {
  const { conn, told } = connection();
  conn._onClose({ code: CLOSE.NOT_ALLOWED }, true);
  assert.equal(conn.forbidden, true);
  assert.equal(conn.signedOut, undefined);
  assert.deepEqual(told.forbidden, { text: undefined, link: undefined });
  assert.deepEqual(told.states, ["closed"]);
});
