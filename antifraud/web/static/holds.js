// The holds page: holds by state with the moves their state allows, and tracing a fraud report.
import { api, attempt, el, signedIn, t, table, when, yuan } from "/static/common.js";

await signedIn(["analyst"]);
const filter = document.getElementById("filter");
// An analyst acts on the police's authority (revoking is the sender's, at the counter: antifraud/holds/models.py HUMAN_MOVES).
const MOVES = { held: ["freeze"], frozen: ["release", "return"] };

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
    [t("col.hold"), h => h.hold_id.slice(0, 12)], [t("col.state"), h => t(`hold.state.${h.state}`)],
    [t("col.payer"), h => h.payer_account], [t("col.payee"), h => h.payee_account],
    [t("col.amount"), h => yuan(h.amount_fen)], [t("col.atm"), h => h.atm_id],
    [t("col.made"), h => when(h.created_at)], [t("col.due"), h => when(h.due_at)],
    ["", h => el("span", { class: "actions" }, el("button", { type: "button", class: "secondary", dataset: { moves: h.hold_id },
      onclick: () => showMoves(h) }, t("holds.moves")), (MOVES[h.state] || []).map(verb =>
      el("button", { type: "button", class: verb === "freeze" ? "danger" : "secondary", dataset: { move: verb },
        onclick: () => move(h, verb) }, t(`hold.move.${verb}`))))],
  ], holds, { id: "holds-table" }));
}

// Who moved a hold, when and why (from the audit trail): a frozen one names the order or the case.
async function showMoves(hold) {
  const moves = await attempt(() => api("GET", `/api/holds/${hold.hold_id}/moves`));
  if (!moves) return;
  document.getElementById("moves").replaceChildren(
    el("h3", {}, t("holds.moves_of", { hold: hold.hold_id.slice(0, 12) })),
    table([[t("col.when"), m => when(m.at)], [t("col.state"), m => t(`hold.state.${m.state}`)],
      [t("col.who"), m => m.by || m.actor], [t("col.reason"), m => m.reason || ""]], moves, { id: "moves-table" }));
}

document.getElementById("report").addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(event.target).entries());
  data.start = new Date(data.start).toISOString();
  data.end = new Date(data.end).toISOString();
  const result = await attempt(() => api("POST", "/api/holds/reports", data));
  if (!result) return;
  document.getElementById("report-result").replaceChildren(
    el("p", {}, t("holds.result", { holds: result.frozen_holds.length, requests: result.requests.length })),
    result.indexed_from ? el("p", { class: "warning", id: "report-incomplete" },
      t("holds.incomplete", { time: when(result.indexed_from) })) : null,
    table([[t("col.account"), a => a.account], [t("col.hop"), a => a.hop], [t("col.received"), a => yuan(a.received_fen)],
      [t("col.passed_on"), a => yuan(a.passed_on_fen)], [t("col.at_risk"), a => yuan(a.retained_fen)]], result.accounts));
  await load();
});
filter.addEventListener("submit", (event) => { event.preventDefault(); load(); });
await load();
