// The holds page: holds by state with the moves their state allows, and tracing a fraud report.
import { api, attempt, el, signedIn, table, when, yuan } from "/static/common.js";

await signedIn(["analyst"]);
const filter = document.getElementById("filter");
const MOVES = { held: ["revoke", "freeze"], frozen: ["release", "return"] };

async function move(hold, verb) {
  const reason = document.getElementById("reason").value.trim();
  if (await attempt(() => api("POST", `/api/holds/${hold.hold_id}/${verb}`, { reason }))) await load();
}

async function load() {
  const state = new FormData(filter).get("state");
  const holds = await attempt(() => api("GET", `/api/holds?state=${encodeURIComponent(state)}&limit=500`));
  if (!holds) return;
  document.getElementById("count").textContent = `(${holds.length})`;
  document.getElementById("holds").replaceChildren(table([
    ["Hold", h => h.hold_id.slice(0, 12)], ["State", h => h.state], ["Payer", h => h.payer_account],
    ["Payee", h => h.payee_account], ["Amount", h => yuan(h.amount_fen)], ["ATM", h => h.atm_id],
    ["Made", h => when(h.created_at)], ["Due", h => when(h.due_at)],
    ["", h => el("span", { class: "actions" }, (MOVES[h.state] || []).map(verb =>
      el("button", { type: "button", class: verb === "freeze" ? "danger" : "secondary", dataset: { move: verb },
        onclick: () => move(h, verb) }, verb)))],
  ], holds, { id: "holds-table" }));
}

document.getElementById("report").addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(event.target).entries());
  data.start = new Date(data.start).toISOString();
  data.end = new Date(data.end).toISOString();
  const result = await attempt(() => api("POST", "/api/holds/reports", data));
  if (!result) return;
  document.getElementById("report-result").replaceChildren(
    el("p", {}, `Frozen holds: ${result.frozen_holds.length}; requests raised: ${result.requests.length}.`),
    result.indexed_from ? el("p", { class: "warning", id: "report-incomplete" },
      `Transfers before ${when(result.indexed_from)} were no longer indexed: the trail may miss money moved earlier.`) : null,
    table([["Account", a => a.account], ["Hop", a => a.hop], ["Received", a => yuan(a.received_fen)],
      ["Passed on", a => yuan(a.passed_on_fen)], ["At risk", a => yuan(a.retained_fen)]], result.accounts));
  await load();
});
filter.addEventListener("submit", (event) => { event.preventDefault(); load(); });
await load();
