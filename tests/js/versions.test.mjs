// Versions of messages: where a message is among its versions, the frames that change the branch,
// and the snapshot's `versions` reaching the model.
import test from "node:test";
import assert from "node:assert/strict";

import { versionPosition } from "../../static/chat/versions.js";
import { branchFrame, editFrame, regenerateFrame } from "../../static/chat/protocol.js";
import { ChatModel } from "../../static/chat/model.js";

test("versionPosition: none for a single version, else the index, count and neighbours", () => {
  assert.equal(versionPosition([7], 7), null);
  assert.equal(versionPosition([], 7), null);
  assert.equal(versionPosition(undefined, 7), null);
  assert.equal(versionPosition([3, 7], 9), null); // not among them: nothing to show
  assert.deepEqual(versionPosition([3, 7, 12], 3), { index: 0, count: 3, previous: null, next: 7 });
  assert.deepEqual(versionPosition([3, 7, 12], 7), { index: 1, count: 3, previous: 3, next: 12 });
  assert.deepEqual(versionPosition([3, 7, 12], 12), { index: 2, count: 3, previous: 7, next: null });
});

test("the branching frames carry what the server reads, and refuse a non-integer id", () => {
  assert.deepEqual(regenerateFrame("r1"), { type: "regenerate", client_id: "r1" });
  assert.deepEqual(editFrame(5, "Capital of Italy?", "e1"), {
    type: "edit",
    message_id: 5,
    content: "Capital of Italy?",
    client_id: "e1",
  });
  assert.deepEqual(branchFrame(9), { type: "branch", message_id: 9 });
  assert.throws(() => editFrame("5", "x", "e1"), TypeError);
  assert.throws(() => branchFrame(null), TypeError);
});

test("a snapshot's versions reach the messages; junk is dropped", () => {
  const model = new ChatModel();
  model.applySnapshot({
    messages: [
      { id: 1, role: "user", content: "Capital of Italy?", client_id: "e1", versions: [0, 1] },
      { id: 2, role: "assistant", content: "Rome.", run_id: "r2", status: "completed", versions: [2, "x", null, 4] },
      { id: 5, role: "user", content: "old server" },
    ],
    active_run: null,
  });
  assert.deepEqual(
    model.messages.map((m) => m.versions),
    [[0, 1], [2, 4], []]
  );
});
