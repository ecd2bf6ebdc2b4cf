// The budget notice above the composer: what it says for each `low`, and when it hides.
import { test } from "node:test";
import assert from "node:assert/strict";

import { budgetText, showBudget } from "../../static/chat/budget.js";

test("a low day budget says how much is left of it", () => {
  assert.equal(budgetText({ period: "day", remaining: 150, limit: 1000 }), "150 of today's 1,000 tokens left.");
  assert.equal(
    budgetText({ period: "month", remaining: 12000, limit: 100000 }),
    "12,000 of this month's 100,000 tokens left.",
  );
});

test("a spent budget says when it renews", () => {
  assert.match(budgetText({ period: "day", remaining: 0, limit: 1000 }), /used today's token budget .* midnight UTC/);
  assert.match(budgetText({ period: "month", remaining: 0, limit: 5 }), /on the 1st/);
});

test("nothing low, or anything malformed, shows nothing", () => {
  for (const low of [null, undefined, {}, "day", { period: "week", remaining: 1, limit: 2 }, { period: "day", remaining: "x", limit: 10 }, { period: "day", remaining: 1, limit: 0 }]) {
    assert.equal(budgetText(low), "");
  }
});

test("showBudget fills and hides the element", () => {
  const el = { textContent: "", hidden: true };
  showBudget(el, { period: "day", remaining: 10, limit: 100 });
  assert.equal(el.hidden, false);
  assert.equal(el.textContent, "10 of today's 100 tokens left.");
  showBudget(el, null);
  assert.equal(el.hidden, true);
  showBudget(null, null); // no element: nothing to do
});
