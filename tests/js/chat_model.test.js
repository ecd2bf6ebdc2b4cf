// Pure-logic tests of static/chat/protocol.js and the ChatModel of static/chat/chat.js.
// Run: node --test tests/js/
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const P = require(path.join(__dirname, "../../static/chat/protocol.js"));
const { ChatModel, formatJson, resultText, usageText, backoffDelay, codePointLength } = require(
  path.join(__dirname, "../../static/chat/chat.js")
);

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
