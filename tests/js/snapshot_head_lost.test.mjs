// A snapshot whose run log lost its first events (`active_run.head_lost`): the tab shows the answer
// stored so far, then what the events add; without the flag the events rebuild the answer alone.
// Run: node --test tests/js/

import test from "node:test";
import assert from "node:assert/strict";

import { ChatModel } from "../../static/chat/model.js";
import { VERDICT } from "../../static/chat/protocol.js";

const STORED = [
  { id: 1, role: "user", content: "What is 2 + 2?", status: "completed", client_id: "q1", run_id: "" },
  {
    id: 2,
    role: "assistant",
    content: "Two and two make 4: the answer is 4",
    status: "generating",
    client_id: null,
    run_id: "r1",
    model: "offline-demo",
    tool_steps: [{ call_id: "c1", name: "add", args: { x: 2, y: 2 }, output: 4 }],
  },
];

const RESUMED = [
  { type: "run_started", run_id: "r1", seq: 1, model: "offline-demo", user_message: { id: 1, content: "What is 2 + 2?", client_id: "q1" } },
  { type: "token", run_id: "r1", seq: 89, text: ", as expected" },
];

function snapshot(activeRun) {
  return { type: "snapshot", messages: STORED, active_run: activeRun };
}

test("a snapshot whose log lost its head keeps the stored answer and adds the events to it", () => {
  const model = new ChatModel();
  model.applySnapshot(snapshot({ run_id: "r1", events: RESUMED, head_lost: true }));

  assert.deepEqual(
    model.messages.map((m) => [m.role, m.text, m.status]),
    [
      ["user", "What is 2 + 2?", "completed"],
      ["assistant", "Two and two make 4: the answer is 4, as expected", "generating"],
    ],
  );
  const [tool] = model.messages[1].tools;
  assert.equal(tool.name, "add");
  assert.equal(tool.phase, "done");
  assert.equal(model.activeRunId, "r1");
  // The next live event carries on from the log's last seq.
  assert.equal(model.handleRunEvent({ type: "token", run_id: "r1", seq: 90, text: "." }), VERDICT.APPLY);
  assert.equal(model.messages[1].text, "Two and two make 4: the answer is 4, as expected.");
});

test("a whole log rebuilds the answer from its events alone", () => {
  const model = new ChatModel();
  const whole = [RESUMED[0], { type: "token", run_id: "r1", seq: 2, text: "Four." }];
  model.applySnapshot(snapshot({ run_id: "r1", events: whole }));

  assert.equal(model.messages[1].text, "Four.");
  assert.deepEqual(model.messages[1].tools, []);
});
