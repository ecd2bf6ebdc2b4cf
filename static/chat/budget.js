// What is left of the user's token budget, shown above the composer once under a fifth of a limit
// (conversations/budgets.py). The page gets it with its config, then from `budget` frames as answers end.

const PERIOD = Object.freeze({ day: "today's", month: "this month's" });

/** The notice's text for `low` ({period, remaining, limit}), or "" when nothing is low. */
export function budgetText(low) {
  if (!low || typeof low !== "object" || !(low.period in PERIOD)) return "";
  const remaining = Number(low.remaining);
  const limit = Number(low.limit);
  if (!Number.isFinite(remaining) || !Number.isFinite(limit) || limit <= 0) return "";
  const period = PERIOD[low.period];
  const format = (n) => Math.max(0, Math.round(n)).toLocaleString("en");
  if (remaining <= 0) {
    const renews = low.period === "day" ? "at midnight UTC" : "on the 1st (UTC)";
    return `You have used ${period} token budget (${format(limit)} tokens); it renews ${renews}.`;
  }
  return `${format(remaining)} of ${period} ${format(limit)} tokens left.`;
}

/** Show `low` in the notice element `el` (hidden when nothing is low). */
export function showBudget(el, low) {
  if (!el) return;
  const text = budgetText(low);
  el.textContent = text;
  el.hidden = !text;
}
