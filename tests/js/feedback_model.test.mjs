// The stored feedback on an answer reaches the page's model from a snapshot (static/chat/model.js);
// feedback.js draws it. Run: node --test tests/js/

import test from "node:test";
import assert from "node:assert/strict";

import { ChatModel } from "../../static/chat/model.js";

const stored = (feedback) => ({
  type: "snapshot",
  active_run: null,
  messages: [
    { id: 1, role: "user", content: "2 + 3?", status: "completed", client_id: "c1", run_id: "", feedback: null },
    { id: 2, role: "assistant", content: "5", status: "completed", client_id: null, run_id: "r1", feedback },
  ],
});

test("a snapshot's feedback is kept on the answer", () => {
  const model = new ChatModel();
  const feedback = { rating: -1, comment: "Too short.", updated: "2026-12-01T10:00:00+00:00" };
  model.applySnapshot(stored(feedback));
  assert.deepEqual(model.messages[1].feedback, feedback);
  assert.equal(model.messages[0].feedback, null);
});

test("an answer without feedback, or with a malformed one, has none", () => {
  const model = new ChatModel();
  model.applySnapshot(stored(null));
  assert.equal(model.messages[1].feedback, null);
  model.applySnapshot(stored("thumbs"));
  assert.equal(model.messages[1].feedback, null);
});

test("a feedback frame from another tab reaches the answer, found by id or by run", () => {
  const model = new ChatModel();
  model.applySnapshot({
    type: "snapshot",
    active_run: null,
    messages: [
      { id: 1, role: "user", content: "2 + 2?" },
      { id: 2, role: "assistant", content: "4", run_id: "r2", status: "completed" },
    ],
  });
  const answer = model.messages[1];
  const before = answer.rev;

  assert.equal(model.applyFeedback({ type: "feedback", message_id: 2, run_id: "r2", feedback: { rating: -1, comment: "Too short", updated: "t" } }), true);
  assert.deepEqual(answer.feedback, { rating: -1, comment: "Too short", updated: "t" });
  assert.ok(answer.rev > before);

  // A tab that watched the answer stream knows only its run; the frame names both.
  answer.id = null;
  assert.equal(model.applyFeedback({ type: "feedback", message_id: 2, run_id: "r2", feedback: null }), true);
  assert.equal(answer.feedback, null);
  assert.equal(answer.id, 2);

  assert.equal(model.applyFeedback({ type: "feedback", message_id: 99, run_id: "nope", feedback: null }), false);
  assert.equal(model.applyFeedback(null), false);
});
