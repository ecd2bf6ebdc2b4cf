// Approval of risky tool calls, browser side: the protocol declarations and builder
// (static/chat/protocol.js), the approval state (static/chat/approvals.js) and how the
// ChatModel (static/chat/model.js) tracks it live, from a snapshot's replay and from
// stored tool steps. Run: node --test tests/js/

import test from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

import * as P from "../../static/chat/protocol.js";
import { ChatModel } from "../../static/chat/model.js";
import { approvalArgsText, approvalFromStored, approvalStatusText, waitsForApproval } from "../../static/chat/approvals.js";

const ARGS = { path: "/tmp/report.txt", recursive: true };

// "Delete the report": one tool call that needs approval; `decision` decides how it ends.
function approvalRun(decision = "approved", by = "alice") {
  const ev = (seq, extra) => Object.assign({ run_id: "r7", seq }, extra);
  const events = [
    ev(1, { type: "run_started", model: "offline-demo", user_message: { id: 11, content: "Delete the report", client_id: "c7" } }),
    ev(2, { type: "tool_start", call_id: "call_del", name: "delete_file" }),
    ev(3, { type: "tool_args", call_id: "call_del", delta: '{"path": "/tmp/report.txt", ' }),
    ev(4, { type: "tool_args", call_id: "call_del", delta: '"recursive": true}' }),
    ev(5, { type: "step_end" }),
    ev(6, { type: "approval_requested", approval_id: "ap_1", call_id: "call_del", name: "delete_file", args: ARGS }),
    ev(7, { type: "approval_resolved", approval_id: "ap_1", decision, by }),
  ];
  if (decision === "approved") events.push(ev(8, { type: "tool_result", call_id: "call_del", name: "delete_file", output: "deleted" }));
  else events.push(ev(8, { type: "tool_result", call_id: "call_del", name: "delete_file", error: `The call was ${decision}.` }));
  events.push(
    ev(9, { type: "token", text: "Done." }),
    ev(10, { type: "final", content: "Done.", tools_used: ["delete_file"], usage: { total_tokens: 50 } }),
    ev(11, { type: "done", status: "completed" })
  );
  return events;
}

const EMPTY = { type: "snapshot", messages: [], active_run: null };

const storedUser = () => ({ id: 11, role: "user", content: "Delete the report", status: "completed", client_id: "c7", run_id: "", tool_steps: [], usage: {}, model: "", error: "", created: "" });
const storedBot = (extra = {}) => ({ id: 12, role: "assistant", content: "", status: "generating", client_id: null, run_id: "r7", tool_steps: [], usage: {}, model: "offline-demo", error: "", created: "", ...extra });

/** What a view shows, without revs and keys. */
const shown = (model) =>
  model.messages.map((m) => ({
    role: m.role,
    status: m.status,
    text: m.text,
    tools: m.tools.map((t) => ({ name: t.name, args: t.args, phase: t.phase, output: t.output, error: t.error, approval: t.approval })),
  }));

function live(events) {
  const model = new ChatModel();
  model.applySnapshot(EMPTY);
  for (const e of events) assert.equal(model.handleRunEvent(e), P.VERDICT.APPLY, `${e.type} ${e.seq}`);
  return model;
}

test("protocol: the approval events, frame, decisions and error code", () => {
  assert.equal(P.EVENT.APPROVAL_REQUESTED, "approval_requested");
  assert.equal(P.EVENT.APPROVAL_RESOLVED, "approval_resolved");
  assert.ok(P.EVENT_TYPES.includes("approval_requested") && P.EVENT_TYPES.includes("approval_resolved"));
  assert.deepEqual(P.EVENT_FIELDS.approval_requested, { required: ["approval_id", "args", "call_id", "name"], optional: [] });
  assert.deepEqual(P.EVENT_FIELDS.approval_resolved, { required: ["approval_id", "by", "decision"], optional: [] });
  assert.deepEqual(Object.keys(P.EVENT_FIELDS).sort(), Object.values(P.EVENT).sort());
  assert.equal(P.CLIENT.APPROVAL, "approval");
  assert.deepEqual(P.APPROVAL_DECISION, { APPROVED: "approved", DENIED: "denied", EXPIRED: "expired" });
  assert.deepEqual(P.APPROVAL_CHOICE, { APPROVE: "approve", DENY: "deny" });
  assert.equal(P.DIRECT_ERROR.ALREADY_DECIDED, "already_decided");
  assert.equal(P.SEND_REJECTION_CODES.includes("already_decided"), false, "not a send rejection");
  for (const name of ["APPROVAL_DECISION", "APPROVAL_DECISIONS", "APPROVAL_CHOICE", "CLIENT", "DIRECT_ERROR"]) assert.ok(Object.isFrozen(P[name]), name);
  const error = { type: "error", code: "already_decided", message: "This approval was already decided." };
  assert.equal(P.isDirectError(error), true);
  assert.equal(P.isRunEvent(error), false);
});

test("approvalFrame builds the frame and refuses anything but approve/deny", () => {
  assert.deepEqual(P.approvalFrame("ap_1", "approve"), { type: "approval", approval_id: "ap_1", decision: "approve" });
  assert.deepEqual(P.approvalFrame("ap_1", P.APPROVAL_CHOICE.DENY), { type: "approval", approval_id: "ap_1", decision: "deny" });
  assert.throws(() => P.approvalFrame("ap_1", "approved"), TypeError);
  assert.throws(() => P.approvalFrame("ap_1", undefined), TypeError);
  assert.throws(() => P.approvalFrame("", "approve"), TypeError);
  assert.throws(() => P.approvalFrame(null, "deny"), TypeError);
});

test("the approval run's events carry exactly their declared fields", () => {
  for (const event of approvalRun()) {
    const { required, optional } = P.EVENT_FIELDS[event.type];
    const keys = Object.keys(event).filter((k) => !P.COMMON_FIELDS.includes(k));
    for (const field of required) assert.ok(keys.includes(field), `${event.type} misses ${field}`);
    for (const key of keys) assert.ok(required.includes(key) || optional.includes(key), `${event.type} has ${key}`);
  }
});

test("dump_protocol.mjs keeps its shape and carries the approval declarations", () => {
  const script = fileURLToPath(new URL("./dump_protocol.mjs", import.meta.url));
  const dumped = JSON.parse(execFileSync(process.execPath, [script], { encoding: "utf8" }));
  assert.deepEqual(Object.keys(dumped), ["EVENT", "EVENT_FIELDS", "COMMON_FIELDS", "DONE_STATUSES", "RUN_ERROR", "SERVER_FRAME", "CLIENT", "DIRECT_ERROR", "CLOSE"]);
  assert.equal(dumped.CLIENT.APPROVAL, "approval");
  assert.equal(dumped.DIRECT_ERROR.ALREADY_DECIDED, "already_decided");
  assert.deepEqual(dumped.EVENT_FIELDS.approval_resolved.required, ["approval_id", "by", "decision"]);
});

test("live: requested -> pending (still generating), decided here, resolved -> approved by alice", () => {
  const events = approvalRun("approved");
  const model = live(events.slice(0, 6));
  const bot = model.messages[1];
  const tool = bot.tools[0];
  assert.equal(bot.status, "generating", "a run waiting for approval is still generating");
  assert.equal(model.activeRunId, "r7");
  assert.equal(tool.phase, "running");
  assert.equal(tool.args, '{"path": "/tmp/report.txt", "recursive": true}');
  assert.deepEqual(tool.approval, { id: "ap_1", state: "pending", args: ARGS, by: null, ended: false, sent: null });
  assert.equal(waitsForApproval(bot), true);
  assert.equal(approvalStatusText(tool.approval), "Approval needed");

  // The person approves in this tab: one frame, the buttons wait for the resolution.
  const rev = bot.rev;
  assert.deepEqual(model.decideApproval("ap_1", "approve"), { type: "approval", approval_id: "ap_1", decision: "approve" });
  assert.equal(tool.approval.sent, "approve");
  assert.ok(bot.rev > rev, "the message is re-rendered");
  assert.equal(model.decideApproval("ap_1", "deny"), null, "one decision at a time");
  assert.equal(model.decideApproval("nope", "approve"), null);

  model.handleRunEvent(events[6]);
  assert.deepEqual(tool.approval, { id: "ap_1", state: "approved", args: ARGS, by: "alice", ended: false, sent: null });
  assert.equal(approvalStatusText(tool.approval), "Approved by alice");
  assert.equal(waitsForApproval(bot), false);
  assert.equal(model.decideApproval("ap_1", "approve"), null, "decided: nothing to send");
  assert.equal(bot.status, "generating");

  for (const e of events.slice(7)) model.handleRunEvent(e);
  assert.equal(tool.phase, "done");
  assert.equal(tool.output, "deleted");
  assert.equal(tool.approval.state, "approved");
  assert.equal(bot.status, "completed");
  assert.equal(model.activeRunId, null);
});

test("live: denied and expired, each followed by a tool_result error", () => {
  const denied = live(approvalRun("denied", "bob"));
  const dtool = denied.messages[1].tools[0];
  assert.equal(dtool.approval.state, "denied");
  assert.equal(approvalStatusText(dtool.approval), "Denied by bob");
  assert.equal(dtool.error, "The call was denied.");
  assert.equal(dtool.hasOutput, false);

  const expired = live(approvalRun("expired", null));
  const etool = expired.messages[1].tools[0];
  assert.deepEqual(etool.approval, { id: "ap_1", state: "expired", args: ARGS, by: null, ended: false, sent: null });
  assert.equal(approvalStatusText(etool.approval), "Expired — no decision in time");
  assert.equal(etool.error, "The call was expired.");
});

test("snapshot replay gives the live state: pending, then resolved, then the rest live", () => {
  const events = approvalRun("approved");
  for (const upTo of [6, 7, 8, 11]) {
    const fromLive = live(events.slice(0, upTo));
    const replayed = new ChatModel();
    replayed.applySnapshot({ type: "snapshot", messages: [storedUser(), storedBot()], active_run: { run_id: "r7", events: events.slice(0, upTo) } });
    assert.deepEqual(shown(replayed), shown(fromLive), `replay of ${upTo} events`);
  }
  const model = new ChatModel();
  model.applySnapshot({ type: "snapshot", messages: [storedUser(), storedBot()], active_run: { run_id: "r7", events: events.slice(0, 6) } });
  assert.equal(model.messages[1].tools[0].approval.state, "pending");
  assert.equal(model.messages[1].status, "generating");
  assert.equal(waitsForApproval(model.activeRunMessage), true);
  assert.equal(model.handleRunEvent(events[5]), P.VERDICT.DUPLICATE, "the replayed request again, live");
  assert.equal(model.handleRunEvent(events[6]), P.VERDICT.APPLY);
  assert.equal(model.messages[1].tools[0].approval.by, "alice");
});

test("stored tool_steps with approval give the state the live run ended with", () => {
  for (const [decision, by, step] of [
    ["approved", "alice", { output: "deleted" }],
    ["denied", "bob", { error: "The call was denied." }],
    ["expired", null, { error: "The call was expired." }],
  ]) {
    const fromLive = live(approvalRun(decision, by));
    const stored = new ChatModel();
    const bot = storedBot({
      status: "completed",
      content: "Done.",
      usage: { total_tokens: 50 },
      tool_steps: [{ call_id: "call_del", name: "delete_file", args: ARGS, ...step, approval: { approval_id: "ap_1", decision, by } }],
    });
    stored.applySnapshot({ type: "snapshot", messages: [storedUser(), bot], active_run: null });
    assert.deepEqual(shown(stored), shown(fromLive), decision);
  }
});

test("stored approvals: string args, no approval, a stale row's open approval", () => {
  assert.equal(approvalFromStored(undefined, {}), null);
  assert.equal(approvalFromStored({ decision: "approved" }, {}), null, "no approval_id");
  assert.deepEqual(approvalFromStored({ approval_id: "a", decision: "approved", by: "x" }, '{"x": 1}').args, { x: 1 });
  assert.equal(approvalFromStored({ approval_id: "a", decision: "approved", by: "x" }, '{"x": 1,').args, '{"x": 1,');
  assert.equal(approvalFromStored({ approval_id: "a", decision: "maybe", by: "x" }, {}).state, "expired", "unknown decision");

  // A "generating" row with no active run: nobody can decide any more.
  const model = new ChatModel();
  const bot = storedBot({ tool_steps: [{ call_id: "call_del", name: "delete_file", args: ARGS, approval: { approval_id: "ap_1", decision: null, by: null } }] });
  model.applySnapshot({ type: "snapshot", messages: [storedUser(), bot], active_run: null });
  const approval = model.messages[1].tools[0].approval;
  assert.deepEqual(approval, { id: "ap_1", state: "expired", args: ARGS, by: null, ended: true, sent: null });
  assert.equal(approvalStatusText(approval), "No decision — the run ended first");
  assert.equal(model.decideApproval("ap_1", "approve"), null);
});

test("a run that ends while an approval is open closes it", () => {
  const events = approvalRun();
  const model = live(events.slice(0, 6));
  model.decideApproval("ap_1", "deny");
  model.handleRunEvent({ type: "done", run_id: "r7", seq: 7, status: "cancelled" });
  const approval = model.messages[1].tools[0].approval;
  assert.equal(approval.state, "expired");
  assert.equal(approval.ended, true);
  assert.equal(approval.sent, null);
  assert.equal(model.messages[1].tools[0].phase, "stopped");
});

test("a decision on its way survives a sync's snapshot; a lost socket lets the person decide again", () => {
  const events = approvalRun();
  const model = live(events.slice(0, 6));
  model.decideApproval("ap_1", "approve");
  const snap = { type: "snapshot", messages: [storedUser(), storedBot()], active_run: { run_id: "r7", events: events.slice(0, 6) } };
  model.applySnapshot(snap);
  assert.equal(model.messages[1].tools[0].approval.sent, "approve", "still waiting for the resolution");

  const rev = model.messages[1].rev;
  assert.equal(model.forgetSentDecisions(), true);
  assert.equal(model.messages[1].tools[0].approval.sent, null);
  assert.ok(model.messages[1].rev > rev);
  assert.equal(model.forgetSentDecisions(), false, "nothing left to forget");
  assert.deepEqual(model.decideApproval("ap_1", "deny"), { type: "approval", approval_id: "ap_1", decision: "deny" });

  // Resolved elsewhere meanwhile: the next snapshot drops the decision on its way.
  model.applySnapshot({ ...snap, active_run: { run_id: "r7", events: events.slice(0, 7) } });
  assert.equal(model.messages[1].tools[0].approval.state, "approved");
  assert.equal(model.sentDecisions.size, 0);
});

test("parallel calls: each its own approval; resolving one leaves the other pending", () => {
  const ev = (seq, extra) => Object.assign({ run_id: "r8", seq }, extra);
  const model = live([
    ev(1, { type: "run_started", model: "m", user_message: { id: 1, content: "two", client_id: null } }),
    ev(2, { type: "tool_start", call_id: "a", name: "delete_file" }),
    ev(3, { type: "tool_start", call_id: "b", name: "send_email" }),
    ev(4, { type: "step_end" }),
    ev(5, { type: "approval_requested", approval_id: "ap_a", call_id: "a", name: "delete_file", args: { path: "x" } }),
    ev(6, { type: "approval_requested", approval_id: "ap_b", call_id: "b", name: "send_email", args: { to: "y" } }),
    ev(7, { type: "approval_resolved", approval_id: "ap_a", decision: "denied", by: "alice" }),
    ev(8, { type: "approval_resolved", approval_id: "unknown", decision: "approved", by: "alice" }),
  ]);
  const [a, b] = model.messages[1].tools;
  assert.equal(a.args, '{"path": "x"}', "args never streamed: taken from the request");
  assert.equal(a.approval.state, "denied");
  assert.equal(b.approval.state, "pending");
  assert.equal(waitsForApproval(model.messages[1]), true);
});

test("approval args as the card shows them", () => {
  assert.equal(approvalArgsText({ x: 1, y: [2] }), '{\n  "x": 1,\n  "y": [\n    2\n  ]\n}');
  assert.equal(approvalArgsText("raw <b>text</b>"), "raw <b>text</b>");
  assert.equal(approvalArgsText(null), "null");
  assert.equal(approvalStatusText({ state: "approved", by: null }), "Approved");
  assert.equal(approvalStatusText({ state: "denied", by: "<img>" }), "Denied by <img>");
});

test("the new modules load in Node (no DOM needed at import)", async () => {
  for (const name of ["approvals.js", "dom.js", "helpers.js", "view.js", "app.js"]) {
    await import(`../../static/chat/${name}`);
  }
});

test("a decision the server refused (its error names the approval_id) can be made again", () => {
  const events = approvalRun();
  const model = live(events.slice(0, 6));
  model.decideApproval("ap_1", "approve");
  assert.equal(model.decideApproval("ap_1", "deny"), null, "waiting for the answer to the first");

  model.forgetSentDecision("ap_1");

  assert.equal(model.messages[1].tools[0].approval.sent, null);
  assert.equal(model.sentDecisions.size, 0);
  assert.deepEqual(model.decideApproval("ap_1", "deny"), { type: "approval", approval_id: "ap_1", decision: "deny" });
  model.forgetSentDecision("unknown"); // names nothing here: no harm
});
