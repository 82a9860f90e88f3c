// The analyst console: the case queue with filters, and one case with its actions, holds, money trail and timeline.
import { alarm, api, attempt, el, signedIn, table, when, yuan } from "/static/common.js";
import { drawTrail } from "/static/graph.js";

await signedIn(["analyst"]);
const filters = document.getElementById("filters");
let current = null;

function badge(text) { return el("span", { class: `badge ${text}` }, text); }
function escalated(c) { return c.escalated_from ? el("span", { class: "badge escalated" }, `escalated from ${c.escalated_from}`) : null; }

async function loadQueue() {
  const query = new URLSearchParams();
  for (const [key, value] of new FormData(filters).entries()) {
    if (!value) continue;
    query.set(key, key === "since" || key === "until" ? new Date(value).toISOString() : value);
  }
  const cases = await attempt(() => api("GET", `/api/cases?${query}`));
  if (!cases) return;
  document.getElementById("queue-count").textContent = `(${cases.length})`;
  document.getElementById("queue").replaceChildren(table([
    ["Severity", c => badge(c.severity)],
    ["Status", c => [c.status, " ", escalated(c)]],
    ["Entity", c => `${c.entity.kind} ${c.entity.value}`],
    ["Scenario", c => c.scenario],
    ["Detectors", c => c.detectors.join(", ")],
    ["Alerts", c => c.alert_count],
    ["Last seen", c => when(c.last_seen)],
    ["", c => el("button", { type: "button", class: "secondary open-case", dataset: { caseId: c.case_id },
      onclick: () => openCase(c.case_id) }, "Open")],
  ], cases, { id: "queue-table" }));
}

async function loadTrail(c) {
  const svg = document.getElementById("trail");
  const note = document.getElementById("trail-note");
  svg.replaceChildren();
  if (c.entity.kind !== "account") { note.textContent = "Only an account has a money trail."; svg.hidden = true; return; }
  const since = new Date(new Date(c.first_seen).getTime() - 3600e3).toISOString();
  const until = new Date(new Date(c.last_seen).getTime() + 48 * 3600e3).toISOString();
  const query = new URLSearchParams({ account: c.entity.value, since, until });
  const trail = await attempt(() => api("GET", `/api/trail?${query}`));
  if (!trail) return;
  svg.hidden = trail.edges.length === 0;
  note.textContent = trail.edges.length ? `From ${when(since)} to ${when(until)}; red: money moved on, green: held.`
    : "No outgoing transfers of this account in the window.";
  if (trail.edges.length) drawTrail(svg, trail, yuan);
}

async function loadHolds(c) {
  const box = document.getElementById("holds");
  if (c.entity.kind !== "account") { box.replaceChildren(el("p", { class: "muted" }, "Not an account.")); return; }
  const held = await attempt(() => api("GET", "/api/holds?state=held&limit=1000"));
  const mine = (held || []).filter(h => h.payee_account === c.entity.value || h.payer_account === c.entity.value);
  box.replaceChildren(mine.length ? table([
    ["Hold", h => h.hold_id.slice(0, 12)], ["Payer", h => h.payer_account], ["Payee", h => h.payee_account],
    ["Amount", h => yuan(h.amount_fen)], ["Due", h => when(h.due_at)],
    ["", h => el("button", { type: "button", class: "danger", onclick: () => freeze(h) }, "Freeze")],
  ], mine) : el("p", { class: "muted" }, "No held transfers."));
}

async function freeze(hold) {
  const reason = document.getElementById("act-reason").value.trim();
  if (await attempt(() => api("POST", `/api/holds/${hold.hold_id}/freeze`, { reason: reason || "frozen from the console" }))) {
    await openCase(current.case_id);
  }
}

async function openCase(caseId) {
  const view = await attempt(() => api("GET", `/api/cases/${caseId}`));
  if (!view) return;
  const c = view.case;
  current = c;
  document.getElementById("case").hidden = false;
  document.getElementById("case-title").replaceChildren(badge(c.severity), " ", `${c.entity.kind} ${c.entity.value}`);
  document.getElementById("case-summary").replaceChildren(
    "Status ", el("strong", { id: "case-status" }, c.status), " ", escalated(c), ` · scenario ${c.scenario} · version ${c.version}`,
    c.assignee ? ` · assigned to ${c.assignee}` : "", c.decision_reason ? ` · decided: ${c.decision_reason}` : "");
  const blacklistQuery = c.entity.kind === "phone" ? "phone" : c.entity.kind === "id_number" ? "id_number" : "account";
  document.getElementById("act-blacklist").href = `/blacklist?${blacklistQuery}=${encodeURIComponent(c.entity.value)}`;
  document.getElementById("timeline").replaceChildren(...view.timeline.map(entry =>
    el("div", { dataset: { kind: entry.kind } }, el("span", { class: "muted" }, when(entry.at)), " ",
      el("strong", {}, entry.kind), " ", entry.title)));
  const deliveries = await attempt(() => api("GET", `/api/cases/${caseId}/deliveries`)) || [];
  document.getElementById("deliveries").replaceChildren(deliveries.length ? table([
    ["Target", d => d.target], ["State", d => el("span", { class: "delivery-state" }, d.state)],
    ["Attempts", d => d.attempts], ["Created", d => when(d.created_at)], ["Error", d => d.last_error || ""],
    ["", d => d.state === "failed" ? el("button", { type: "button", onclick: async () => {
      if (await attempt(() => api("POST", `/api/deliveries/${d.delivery_id}/retry`))) openCase(caseId);
    } }, "Retry") : ""],
  ], deliveries, { id: "deliveries-table" }) : el("p", { class: "muted" }, "Nothing forwarded yet."));
  await Promise.all([loadHolds(c), loadTrail(c)]);
}

async function act(action, needsReason) {
  if (!current) return;
  const reason = document.getElementById("act-reason").value.trim();
  const body = action === "forward" ? { targets: [] } : needsReason ? { reason } : undefined;
  if (await attempt(() => api("POST", `/api/cases/${current.case_id}/${action}`, body))) {
    await Promise.all([openCase(current.case_id), loadQueue()]);
  }
}

for (const [action, needsReason] of [["review", false], ["confirm", true], ["dismiss", true], ["forward", false], ["close", false]]) {
  document.getElementById(`act-${action}`).addEventListener("click", () => act(action, needsReason));
}
filters.addEventListener("submit", (event) => { event.preventDefault(); loadQueue(); });

// A teller escalating a warning means a customer at a counter now: the analyst is told without a reload.
// The feed is read by the server's clock, a minute back from the newest escalation seen: one stamped
// before another may commit after it, so each poll re-reads the overlap and shows only what is new.
const ESCALATION_POLL_MS = 5000;
const ESCALATION_OVERLAP_MS = 60_000;
const escalationBanner = document.getElementById("escalation-banner");
const beep = alarm(document.getElementById("sound"));
const escalationsSeen = new Set();
let newestEscalation = 1000;  // epoch ms; the feed refuses times before 1970
async function readEscalations() {
  const since = new Date(Math.max(1000, newestEscalation - ESCALATION_OVERLAP_MS)).toISOString();
  const cases = await api("GET", `/api/escalations?since=${encodeURIComponent(since)}&limit=1000`).catch(() => null);
  if (!cases) return [];
  const fresh = cases.filter(c => !escalationsSeen.has(`${c.case_id}@${c.escalated_at}`));
  for (const c of fresh) {
    escalationsSeen.add(`${c.case_id}@${c.escalated_at}`);
    newestEscalation = Math.max(newestEscalation, new Date(c.escalated_at).getTime());
  }
  return fresh;
}
async function watchEscalations() {
  const fresh = await readEscalations();
  if (fresh.length) {
    escalationBanner.replaceChildren(...fresh.map(c => el("div", {},
      `Counter ${c.escalated_from} escalated ${c.entity.kind} ${c.entity.value} (${c.severity}) at ${when(c.escalated_at)} `,
      el("button", { type: "button", class: "secondary", onclick: () => { escalationBanner.hidden = true; openCase(c.case_id); } },
        "Open"))));
    escalationBanner.hidden = false;
    beep();
    loadQueue();
  }
  setTimeout(watchEscalations, ESCALATION_POLL_MS);
}
await readEscalations();  // what was escalated before the page opened is in the queue, not news
setTimeout(watchEscalations, ESCALATION_POLL_MS);

await loadQueue();
const wanted = new URLSearchParams(location.search).get("case");
if (wanted) await openCase(wanted);
