// Pure-logic tests of the browser's ES modules: static/chat/protocol.js and the ChatModel
// and helpers of static/chat/model.js (neither touches the DOM).
// Run: node --test tests/js/

import test from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

import * as P from "../../static/chat/protocol.js";
import { ChatModel, formatJson, resultText, usageText, backoffDelay, codePointLength } from "../../static/chat/model.js";

// The sample run for "What is 10 + 10?", as the server sends it.
const RUN = [
  { type: "run_started", run_id: "r1", seq: 1, model: "offline-demo", user_message: { id: 1, content: "What is 10 + 10?", client_id: "abc" } },
  { type: "tool_start", run_id: "r1", seq: 2, call_id: "call_1", name: "add" },
  { type: "tool_args", run_id: "r1", seq: 3, call_id: "call_1", delta: '{"x": ' },
  { type: "tool_args", run_id: "r1", seq: 4, call_id: "call_1", delta: '10, "y": 10}' },
  { type: "step_end", run_id: "r1", seq: 5 },
  { type: "tool_result", run_id: "r1", seq: 6, call_id: "call_1", name: "add", output: 20 },
  { type: "token", run_id: "r1", seq: 7, text: "10 + 10 " },
  { type: "token", run_id: "r1", seq: 8, text: "= 20." },
  { type: "final", run_id: "r1", seq: 9, content: "10 + 10 = 20.", tools_used: ["add"], usage: { input_tokens: 192, output_tokens: 12, total_tokens: 204 } },
  { type: "done", run_id: "r1", seq: 10, status: "completed" },
];

const EMPTY = { type: "snapshot", messages: [], active_run: null };

/** What a view would show, without revs and keys. */
function shown(model) {
  return model.messages.map((m) => ({
    role: m.role,
    status: m.status,
    text: m.text,
    pending: m.pending,
    error: m.error,
    tools: m.tools.map((t) => ({ name: t.name, args: t.args, phase: t.phase, output: t.output, error: t.error })),
  }));
}

function storedMessages() {
  return [
    { id: 1, role: "user", content: "What is 10 + 10?", status: "completed", client_id: "abc", run_id: "", tool_steps: [], usage: {}, model: "", error: "", created: "2025-01-01T00:00:00Z" },
    { id: 2, role: "assistant", content: "10 + 10", status: "generating", client_id: null, run_id: "r1", tool_steps: [], usage: {}, model: "offline-demo", error: "", created: "2025-01-01T00:00:01Z" },
  ];
}

test("the sample run renders one user message and the answer, tool card filled", () => {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  model.queueSend("What is 10 + 10?", "abc");
  assert.equal(model.takeUnsent(1).length, 1);
  for (const e of RUN) assert.equal(model.handleRunEvent(e), P.VERDICT.APPLY);
  assert.equal(model.messages.length, 2);
  const [user, bot] = model.messages;
  assert.equal(user.role, "user");
  assert.equal(user.pending, false);
  assert.equal(user.id, 1);
  assert.equal(bot.text, "10 + 10 = 20.");
  assert.equal(bot.status, "completed");
  assert.deepEqual(bot.tools.map((t) => [t.name, t.args, t.output, t.phase]), [["add", '{"x": 10, "y": 10}', 20, "done"]]);
  assert.equal(usageText(bot), "1 tool · 204 tokens");
  assert.equal(model.activeRunId, null);
  assert.equal(model.hasPendingSend(), false);
});

test("run_started of another tab adds the user message; active run tracked until done", () => {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  model.handleRunEvent(RUN[0]);
  assert.equal(model.activeRunId, "r1");
  assert.deepEqual(shown(model).map((m) => [m.role, m.text, m.status]), [
    ["user", "What is 10 + 10?", "completed"],
    ["assistant", "", "generating"],
  ]);
  for (const e of RUN.slice(1, 7)) model.handleRunEvent(e);
  assert.equal(model.messages[1].text, "10 + 10 ");
  assert.equal(model.activeRunId, "r1");
});

test("duplicates are dropped: replayed events then the same events live", () => {
  const model = new ChatModel();
  model.applySnapshot({ type: "snapshot", messages: storedMessages(), active_run: { run_id: "r1", events: RUN.slice(0, 8) } });
  assert.equal(model.messages.length, 2, "replayed run_started does not duplicate the stored user message");
  assert.equal(model.messages[1].text, "10 + 10 = 20.", "stale content replaced by the replay");
  for (const e of RUN.slice(5)) model.handleRunEvent(e); // 6..8 duplicates, 9..10 new
  assert.equal(model.messages[1].text, "10 + 10 = 20.");
  assert.equal(model.messages[1].tools.length, 1);
  assert.equal(model.messages[1].tools[0].args, '{"x": 10, "y": 10}');
  assert.equal(model.messages[1].status, "completed");
  assert.equal(model.handleRunEvent(RUN[6]), P.VERDICT.DUPLICATE);
});

test("a gap asks for a snapshot and ignores live events until it arrives", () => {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  for (const e of RUN.slice(0, 4)) model.handleRunEvent(e);
  assert.equal(model.handleRunEvent(RUN[5]), P.VERDICT.GAP); // seq 6 after 4
  assert.equal(model.awaitingSnapshot, true);
  assert.equal(model.handleRunEvent(RUN[6]), P.VERDICT.STALE);
  assert.equal(model.messages[1].text, "", "nothing applied while waiting");
  model.applySnapshot({ type: "snapshot", messages: storedMessages(), active_run: { run_id: "r1", events: RUN.slice(0, 7) } });
  assert.equal(model.awaitingSnapshot, false);
  assert.equal(model.messages[1].text, "10 + 10 ");
  assert.equal(model.handleRunEvent(RUN[6]), P.VERDICT.DUPLICATE);
  assert.equal(model.handleRunEvent(RUN[7]), P.VERDICT.APPLY);
  assert.equal(model.messages[1].text, "10 + 10 = 20.");
});

test("a new run whose run_started was lost is a gap", () => {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  assert.equal(model.handleRunEvent(RUN[1]), P.VERDICT.GAP);
});

test("late live events of a run the snapshot shows finished are duplicates", () => {
  const model = new ChatModel();
  const messages = storedMessages();
  Object.assign(messages[1], { status: "completed", content: "10 + 10 = 20." });
  model.applySnapshot({ type: "snapshot", messages, active_run: null });
  assert.equal(model.handleRunEvent(RUN[9]), P.VERDICT.DUPLICATE);
  assert.equal(model.messages[1].text, "10 + 10 = 20.");
});

test("the same snapshot twice renders the same thing (idempotent)", () => {
  const model = new ChatModel();
  const snap = { type: "snapshot", messages: storedMessages(), active_run: { run_id: "r1", events: RUN.slice(0, 8) } };
  model.applySnapshot(snap);
  const once = shown(model);
  model.applySnapshot(snap);
  assert.deepEqual(shown(model), once);
  assert.equal(model.activeRunId, "r1");
});

test("stored tool steps: object args formatted, raw string args kept, errors", () => {
  const model = new ChatModel();
  model.applySnapshot({
    type: "snapshot",
    active_run: null,
    messages: [
      {
        id: 2, role: "assistant", content: "done", status: "completed", client_id: null, run_id: "r9", usage: { total_tokens: 10 }, model: "m", error: "", created: "",
        tool_steps: [
          { call_id: "a", name: "add", args: { x: 1, y: [2, 3] }, output: 3 },
          { call_id: "b", name: "multiply", args: '{"x": 1,', error: "invalid arguments: y: missing" },
          { call_id: "c", name: "add", args: {}, output: null },
        ],
      },
    ],
  });
  const [a, b, c] = model.messages[0].tools;
  assert.equal(a.args, '{"x": 1, "y": [2, 3]}');
  assert.equal(a.output, 3);
  assert.equal(b.args, '{"x": 1,');
  assert.equal(b.error, "invalid arguments: y: missing");
  assert.equal(c.hasOutput, true);
  assert.equal(resultText(c.output), "null");
});

test("a generating message without an active run shows no running tool", () => {
  const model = new ChatModel();
  const messages = storedMessages();
  messages[1].tool_steps = [{ call_id: "a", name: "add", args: { x: 1, y: 2 } }];
  model.applySnapshot({ type: "snapshot", messages, active_run: null });
  assert.equal(model.messages[1].tools[0].phase, "stopped");
  assert.equal(model.activeRunId, null);
});

test("busy: the queued send is rejected, its text comes back", () => {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  model.queueSend("hello", "c1");
  model.takeUnsent(1);
  const entry = model.rejectSend({ type: "error", code: "busy", message: "busy" });
  assert.equal(entry.content, "hello");
  assert.equal(model.messages.length, 0);
  assert.equal(model.hasPendingSend(), false);
  assert.equal(model.rejectSend({ type: "error", code: "busy" }), null);
});

test("reconnect: unacknowledged sends stay visible and are re-sent once per socket", () => {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  model.queueSend("hi", "c1");
  assert.deepEqual(model.takeUnsent(1), [{ type: "send", content: "hi", client_id: "c1" }]);
  assert.deepEqual(model.takeUnsent(1), []);
  // New socket; the server never got it.
  model.applySnapshot(EMPTY);
  assert.deepEqual(shown(model).map((m) => [m.text, m.pending]), [["hi", true]]);
  assert.equal(model.takeUnsent(2).length, 1);
  // Another socket; this time the server had stored it.
  model.applySnapshot({
    type: "snapshot", active_run: null,
    messages: [{ id: 7, role: "user", content: "hi", status: "completed", client_id: "c1", run_id: "", tool_steps: [], usage: {}, model: "", error: "", created: "" }],
  });
  assert.equal(model.messages.length, 1);
  assert.equal(model.messages[0].pending, false);
  assert.equal(model.hasPendingSend(), false);
});

test("error and cancelled runs", () => {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  const ev = (seq, extra) => Object.assign({ run_id: "r2", seq }, extra);
  model.handleRunEvent(ev(1, { type: "run_started", model: "offline-demo", user_message: { id: 3, content: "x", client_id: "z" } }));
  model.handleRunEvent(ev(2, { type: "tool_start", call_id: "k", name: "exponentiate" }));
  model.handleRunEvent(ev(3, { type: "error", code: "model_error", message: "The model failed." }));
  model.handleRunEvent(ev(4, { type: "done", status: "error" }));
  const bot = model.messages[1];
  assert.deepEqual(bot.error, { code: "model_error", message: "The model failed." });
  assert.equal(bot.status, "error");
  assert.equal(bot.tools[0].phase, "stopped");
  assert.equal(model.activeRunId, null);
});

test("tool_result with error", () => {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  model.handleRunEvent(RUN[0]);
  model.handleRunEvent(RUN[1]);
  model.handleRunEvent({ type: "tool_result", run_id: "r1", seq: 3, call_id: "call_1", name: "add", error: "boom" });
  const tool = model.messages[1].tools[0];
  assert.equal(tool.error, "boom");
  assert.equal(tool.hasOutput, false);
});

test("html-looking text stays text in the model", () => {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  model.handleRunEvent({ type: "run_started", run_id: "x", seq: 1, model: "m", user_message: { id: 1, content: "<b>hi</b>", client_id: null } });
  model.handleRunEvent({ type: "token", run_id: "x", seq: 2, text: "<img src=x onerror=alert(1)>" });
  assert.equal(model.messages[1].text, "<img src=x onerror=alert(1)>");
});

test("helpers", () => {
  assert.equal(formatJson({ x: 10, y: "a", z: [1, null] }), '{"x": 10, "y": "a", "z": [1, null]}');
  assert.equal(resultText("text"), "text");
  assert.equal(resultText({ a: 1 }), '{"a":1}');
  assert.equal(codePointLength("a😀"), 2);
  for (let attempt = 0; attempt < 12; attempt++) {
    const base = Math.min(10000, 500 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, () => 0), base / 2);
    assert.equal(backoffDelay(attempt, () => 1), base);
  }
  assert.equal(P.sendFrame("hi", "id").type, "send");
  assert.deepEqual(P.stopFrame(), { type: "stop" });
  assert.deepEqual(P.syncFrame(), { type: "sync" });
  assert.match(P.newClientId(), /^[0-9a-f-]{36}$/);
  assert.equal(P.isRunEvent({ type: "error", code: "busy", message: "m" }), false);
  assert.equal(P.isDirectError({ type: "error", code: "busy", message: "m" }), true);
  assert.equal(P.isDirectError({ type: "error", run_id: "r", seq: 3, code: "x", message: "m" }), false);
});

test("EVENT_FIELDS covers exactly EVENT's types, with sorted, disjoint field lists", () => {
  assert.deepEqual(Object.keys(P.EVENT_FIELDS).sort(), Object.values(P.EVENT).sort());
  assert.deepEqual([...P.EVENT_TYPES].sort(), Object.values(P.EVENT).sort());
  for (const [type, { required, optional, ...rest }] of Object.entries(P.EVENT_FIELDS)) {
    assert.deepEqual(rest, {}, type);
    assert.deepEqual([...required], [...required].sort(), `${type}.required is sorted`);
    assert.deepEqual([...optional], [...optional].sort(), `${type}.optional is sorted`);
    for (const field of [...required, ...optional]) {
      assert.equal(P.COMMON_FIELDS.includes(field), false, `${type}.${field} is a common field`);
      assert.equal(required.includes(field) && optional.includes(field), false, `${type}.${field} twice`);
    }
  }
  assert.deepEqual(P.EVENT_FIELDS.tool_result, { required: ["call_id", "name"], optional: ["error", "output"] });
  assert.deepEqual(P.EVENT_FIELDS.step_end, { required: [], optional: [] });
  assert.deepEqual(P.COMMON_FIELDS, ["run_id", "seq", "type"]);
});

test("the sample run's events carry exactly their declared fields", () => {
  for (const event of RUN) {
    const { required, optional } = P.EVENT_FIELDS[event.type];
    const keys = Object.keys(event).filter((k) => !P.COMMON_FIELDS.includes(k));
    for (const field of required) assert.ok(keys.includes(field), `${event.type} misses ${field}`);
    for (const key of keys) assert.ok(required.includes(key) || optional.includes(key), `${event.type} has ${key}`);
  }
});

test("protocol declarations are frozen; close codes", () => {
  for (const name of ["EVENT", "EVENT_FIELDS", "COMMON_FIELDS", "DONE_STATUSES", "RUN_ERROR", "SERVER_FRAME", "CLIENT", "DIRECT_ERROR", "CLOSE", "MESSAGE_STATUS"]) {
    assert.ok(Object.isFrozen(P[name]), name);
  }
  for (const entry of Object.values(P.EVENT_FIELDS)) assert.ok(Object.isFrozen(entry.required) && Object.isFrozen(entry.optional));
  assert.deepEqual(P.CLOSE, {
    LOGGED_OUT: 4401,
    NOT_ALLOWED: 4403,
    GONE: 4404,
    UNAVAILABLE: 4503,
    TOO_MANY_SYNCS: 4429,
    TOO_MANY_SOCKETS: 4429,
    SERVICE_RESTART: 1012,
  });
  assert.deepEqual(P.FORBIDDEN_CLOSE_CODES, [4401, 4403, 4404, 1008]);
  assert.equal(P.SNAPSHOT, P.SERVER_FRAME.SNAPSHOT);
  assert.deepEqual(P.SERVER_FRAME, {
    SNAPSHOT: "snapshot",
    ERROR: "error",
    TITLE: "title",
    FEEDBACK: "feedback",
    MODEL: "model",
    BUDGET: "budget",
  });
});

test("dump_protocol.mjs prints the declarations as one JSON object", () => {
  const script = fileURLToPath(new URL("./dump_protocol.mjs", import.meta.url));
  const dumped = JSON.parse(execFileSync(process.execPath, [script], { encoding: "utf8" }));
  assert.deepEqual(Object.keys(dumped).sort(), ["CLIENT", "CLOSE", "COMMON_FIELDS", "DIRECT_ERROR", "DONE_STATUSES", "EVENT", "EVENT_FIELDS", "RUN_ERROR", "SERVER_FRAME"]);
  for (const key of Object.keys(dumped)) assert.deepEqual(dumped[key], JSON.parse(JSON.stringify(P[key])), key);
});

test("every browser module loads and links in Node (no DOM needed at import)", async () => {
  const app = await import("../../static/chat/app.js");
  assert.equal(typeof app.ChatApp, "function");
  const view = await import("../../static/chat/view.js");
  assert.equal(typeof view.ChatView, "function");
  const connection = await import("../../static/chat/connection.js");
  assert.equal(connection.socketUrl({ conversationId: 7 }, { protocol: "https:", host: "example.org" }), "wss://example.org/ws/conversations/7/");
  assert.equal(connection.socketUrl({ wsPath: "/ws/x/" }, { protocol: "http:", host: "h:1" }), "ws://h:1/ws/x/");
  assert.equal(connection.socketUrl({ wsPath: "ws://a/b/" }, { protocol: "https:", host: "h" }), "ws://a/b/");
});
