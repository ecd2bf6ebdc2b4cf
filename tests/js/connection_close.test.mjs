// How the page's socket (static/chat/connection.js) reads close code 4429: before the first snapshot the
// account has too many tabs open (stop, say so, let the person retry); after it, too many syncs (reconnect).
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
