// The analyst console: the case queue with filters, and one case with its actions, holds, money trail and timeline.
import { alarm, alertReasons, api, attempt, el, signedIn, t, table, when, yuan } from "/static/common.js";
import { drawTrail, pairsOf } from "/static/graph.js";
import { grouped } from "/static/pure.js";

await signedIn(["analyst"]);
const filters = document.getElementById("filters");
let current = null;

// The filters' choices: the values the API takes, each shown in the user's language.
const CHOICES = {
  status: ["new", "in_review", "confirmed", "dismissed", "forwarded", "closed"],
  detector: ["transfer_risk", "mule_account", "fraud_number", "interception", "card_opening", "card_trade",
    "sim_registration", "fake_base_station", "phishing_sms"],
  severity: ["low", "medium", "high", "critical"],
};
for (const select of filters.querySelectorAll("select[data-options]")) {
  const kind = select.dataset.options;
  select.replaceChildren(el("option", { value: "" }, t("common.any")),
    ...CHOICES[kind].map(value => el("option", { value }, t(`${kind}.${value}`))));
}
document.getElementById("trail").setAttribute("aria-label", t("graph.label"));

function badge(severity) { return el("span", { class: `badge ${severity}` }, t(`severity.${severity}`)); }
function escalated(c) {
  return c.escalated_from
    ? el("span", { class: "badge escalated" }, t("console.escalated_from", { place: c.escalated_from })) : null;
}
function entity(e) { return `${t(`kind.${e.kind}`)} ${e.value}`; }

// The queue a page at a time, latest activity first as the API gives it; the page sorted as the analyst asks.
const PAGE = 50;
let page = 0;
const RANK = { low: 0, medium: 1, high: 2, critical: 3 };
const SORTS = {
  last_seen: (a, b) => b.last_seen.localeCompare(a.last_seen),
  severity: (a, b) => RANK[b.severity] - RANK[a.severity] || b.last_seen.localeCompare(a.last_seen),
  alert_count: (a, b) => b.alert_count - a.alert_count || b.last_seen.localeCompare(a.last_seen),
};
document.getElementById("sort").addEventListener("change", () => loadQueue());
document.getElementById("page-prev").addEventListener("click", () => { page = Math.max(0, page - 1); loadQueue(); });
document.getElementById("page-next").addEventListener("click", () => { page += 1; loadQueue(); });

async function loadQueue() {
  const query = new URLSearchParams({ limit: PAGE + 1, offset: page * PAGE });  // one more: is there a next page
  for (const [key, value] of new FormData(filters).entries()) {
    if (!value || key === "entity_kind") continue;
    if (key === "entity_value") query.set(filters.elements.entity_kind.value, value.trim());
    else query.set(key, key === "since" || key === "until" ? new Date(value).toISOString() : value);
  }
  const found = await attempt(() => api("GET", `/api/cases?${query}`));
  if (!found) return;
  const cases = grouped(found.slice(0, PAGE).sort(SORTS[document.getElementById("sort").value]));
  document.getElementById("queue-count").textContent = `(${cases.length})`;
  document.getElementById("page-no").textContent = t("console.page", { page: page + 1 });
  document.getElementById("page-prev").disabled = page === 0;
  document.getElementById("page-next").disabled = found.length <= PAGE;
  document.getElementById("queue").replaceChildren(table([
    [t("col.severity"), c => badge(c.severity)],
    [t("col.status"), c => [t(`status.${c.status}`), " ", escalated(c)]],
    [t("col.entity"), c => c.groupFirst
      ? [el("button", { type: "button", class: "link", title: t("console.all_of_entity"),
        onclick: () => { searchFor(c.entity); } }, entity(c.entity)),
      c.groupSize > 1 ? el("span", { class: "badge group" }, t("console.cases_of_entity", { count: c.groupSize })) : null]
      : el("span", { class: "muted same-entity" }, t("console.same_entity"))],
    [t("col.scenario"), c => t(`scenario.${c.scenario}`)],
    [t("col.detectors"), c => c.detectors.map(d => t(`detector.${d}`)).join("、")],
    [t("col.alerts"), c => c.alert_count],
    [t("col.last_seen"), c => when(c.last_seen)],
    ["", c => el("button", { type: "button", class: "secondary open-case", dataset: { caseId: c.case_id },
      onclick: () => openCase(c.case_id) }, t("common.open"))],
  ], cases, { id: "queue-table" }));
}

// All the cases of one number, account or ID number (one per scenario), as the search finds them.
function searchFor(e) {
  if (!["account", "phone", "id_number"].includes(e.kind)) return;
  filters.reset();
  page = 0;
  filters.elements.entity_kind.value = e.kind;
  filters.elements.entity_value.value = e.value;
  loadQueue();
}

async function loadTrail(c) {
  const svg = document.getElementById("trail");
  const note = document.getElementById("trail-note");
  const list = document.getElementById("trail-table");
  svg.replaceChildren();
  list.replaceChildren();
  if (c.entity.kind !== "account") { note.textContent = t("console.no_trail_kind"); svg.hidden = true; return; }
  const since = new Date(new Date(c.first_seen).getTime() - 3600e3).toISOString();
  const until = new Date(new Date(c.last_seen).getTime() + 48 * 3600e3).toISOString();
  const query = new URLSearchParams({ account: c.entity.value, since, until });
  const trail = await attempt(() => api("GET", `/api/trail?${query}`));
  if (!trail) return;
  svg.hidden = trail.edges.length === 0;
  note.textContent = trail.edges.length ? t("console.trail_window", { since: when(since), until: when(until) })
    : t("console.no_transfers");
  if (!trail.edges.length) return;
  drawTrail(svg, trail, yuan, t);
  const at = seconds => when(new Date(seconds * 1000).toISOString());
  list.replaceChildren(table([  // the graph's lines as rows: what a case file quotes
    [t("col.payer"), p => p.payer], [t("col.payee"), p => p.payee], [t("col.transfers"), p => p.count],
    [t("col.traced"), p => yuan(p.tainted_fen)], [t("col.held_transfers"), p => p.held],
    [t("col.first"), p => at(p.first)], [t("col.last"), p => at(p.last)],
  ], pairsOf(trail), { id: "trail-pairs" }));
}

// The holds of the case's account, from its timeline: each with its state; a frozen or released one with
// who moved it last and why (an order's reference, the case).
function loadHolds(c, timeline) {
  const box = document.getElementById("holds");
  if (c.entity.kind !== "account") { box.replaceChildren(el("p", { class: "muted" }, t("console.not_account"))); return; }
  const holds = timeline.filter(e => e.kind === "hold" && !e.action).map(e => e.detail);
  const lastMove = new Map(timeline.filter(e => e.kind === "hold" && e.action && e.action !== "hold.payee_flagged")
    .map(e => [e.ref.split(":")[0], e]));  // in time order: the last one stays
  const mover = h => { const m = lastMove.get(h.hold_id); return m ? (m.detail.after?.by || m.actor) : ""; };
  const why = h => lastMove.get(h.hold_id)?.detail.after?.reason || "";
  box.replaceChildren(holds.length ? table([
    [t("col.hold"), h => h.hold_id.slice(0, 12)], [t("col.payer"), h => h.payer_account],
    [t("col.payee"), h => h.payee_account], [t("col.amount"), h => yuan(h.amount_fen)],
    [t("col.state"), h => el("span", { class: "hold-state", dataset: { state: h.state } }, t(`hold.state.${h.state}`))],
    [t("col.due"), h => h.state === "held" ? when(h.due_at) : ""],
    [t("col.who"), mover], [t("col.reason"), why],
    ["", h => h.state === "held"
      ? el("button", { type: "button", class: "danger", onclick: () => freeze(h) }, t("console.freeze")) : ""],
  ], holds, { id: "case-holds" }) : el("p", { class: "muted" }, t("console.no_holds")));
}

// What an action on the case (or a hold's move) was, by whom: the audit action named in the user's language;
// a note and an escalation with their words.
function actionText(entry) {
  const after = entry.detail.after || {};
  const what = t(`audit.${entry.action}`);
  if (entry.action === "case.escalate") return t("timeline.escalated", { place: after.place, who: entry.actor, note: after.note });
  if (entry.action === "case.note") return t("timeline.note", { who: entry.actor, note: after.note });
  return t("timeline.by", { what, who: entry.actor });
}

function followUpText(f) {
  const kind = t(`followup.${f.kind}`);
  if (f.state === "done" && f.result.listed === false) return t("timeline.followup_nothing_listed", { kind });
  if (f.state === "done") return t("timeline.followup_done", { kind, attempts: f.attempts });
  if (f.state === "failed") return t("timeline.followup_failed", { kind, error: f.last_error || "" });
  if (f.attempts) return t("timeline.followup_retrying", { kind, attempts: f.attempts, error: f.last_error || "" });
  return t("timeline.followup_pending", { kind });
}

// A timeline entry in the user's language, from its structured parts (the server's ``title`` is English).
function entryText(entry) {
  const d = entry.detail;
  switch (entry.kind) {
    case "alert": return t("timeline.alert", { detector: t(`detector.${d.detector}`), severity: t(`severity.${d.severity}`),
      score: d.score.toFixed(2), reasons: alertReasons(d.reasons).join(t("error.separator")) });
    case "action": return actionText(entry);
    case "hold": return entry.action ? actionText(entry) : t("timeline.hold", { amount: yuan(d.amount_fen),
      payer: d.payer_account, payee: d.payee_account, state: t(`hold.state.${d.state}`) });
    case "follow_up": return followUpText(d);
    case "trail": return t("timeline.trail", { accounts: (d.accounts || []).length,
      amount: yuan((d.requests || []).reduce((sum, r) => sum + r.amount_fen, 0)),
      frozen: (d.frozen_holds || []).length, requests: (d.requests || []).length });
    case "delivery": return t("timeline.delivery", { target: t(`target.${d.target}`),
      state: t(`delivery.state.${d.state}`), attempts: d.attempts });
    default: return entry.title;
  }
}

async function freeze(hold) {
  const reason = document.getElementById("act-reason").value.trim();
  if (await attempt(() => api("POST", `/api/holds/${hold.hold_id}/freeze`, { reason: reason || t("console.frozen_from_console") }))) {
    await openCase(current.case_id);
  }
}

async function openCase(caseId) {
  const view = await attempt(() => api("GET", `/api/cases/${caseId}`));
  if (!view) return;
  const c = view.case;
  current = c;
  document.getElementById("case").hidden = false;
  document.getElementById("case-title").replaceChildren(badge(c.severity), " ", entity(c.entity));
  document.getElementById("case-summary").replaceChildren(
    t("console.summary"), " ", el("strong", { id: "case-status", dataset: { status: c.status } }, t(`status.${c.status}`)),
    " ", escalated(c) ?? "", t("console.scenario_version", { scenario: t(`scenario.${c.scenario}`), version: c.version }),
    c.assignee ? t("console.assigned", { who: c.assignee }) : "",
    c.decision_reason ? t("console.decided", { why: c.decision_reason }) : "");
  for (const action of ["review", "confirm", "dismiss", "forward", "close"]) {  // offered by the case's state
    document.getElementById(`act-${action}`).hidden = !view.actions.includes(action);
  }
  document.getElementById("assign").hidden = !view.actions.includes("assign");
  document.getElementById("note").hidden = !view.actions.includes("note");
  document.getElementById("assignee").value = c.assignee || "";
  document.getElementById("act-reason").hidden = !["confirm", "dismiss"].some(a => view.actions.includes(a));
  const blacklistQuery = c.entity.kind === "phone" ? "phone" : c.entity.kind === "id_number" ? "id_number" : "account";
  document.getElementById("act-blacklist").href = `/blacklist?${blacklistQuery}=${encodeURIComponent(c.entity.value)}`;
  document.getElementById("timeline").replaceChildren(...view.timeline.map(entry =>
    el("div", { dataset: { kind: entry.kind } }, el("span", { class: "muted" }, when(entry.at)), " ",
      el("strong", {}, t(`timeline.kind.${entry.kind}`)), " ", entryText(entry))));
  const deliveries = await attempt(() => api("GET", `/api/cases/${caseId}/deliveries`)) || [];
  document.getElementById("deliveries").replaceChildren(deliveries.length ? table([
    [t("col.target"), d => t(`target.${d.target}`)],
    [t("col.state"), d => el("span", { class: "delivery-state", dataset: { state: d.state } }, t(`delivery.state.${d.state}`))],
    [t("col.attempts"), d => d.attempts], [t("col.created"), d => when(d.created_at)],
    [t("col.error"), d => d.last_error || ""],
    ["", d => d.state === "failed" ? el("button", { type: "button", onclick: async () => {
      if (await attempt(() => api("POST", `/api/deliveries/${d.delivery_id}/retry`))) openCase(caseId);
    } }, t("console.retry")) : ""],
  ], deliveries, { id: "deliveries-table" }) : el("p", { class: "muted" }, t("console.nothing_forwarded")));
  loadHolds(c, view.timeline);
  await loadTrail(c);
}

async function act(action, needsReason) {
  if (!current) return;
  const reason = document.getElementById("act-reason").value.trim();
  const body = action === "forward" ? { targets: [] } : needsReason ? { reason } : undefined;
  if (await attempt(() => api("POST", `/api/cases/${current.case_id}/${action}`, body))) {
    await Promise.all([openCase(current.case_id), loadQueue()]);
  }
}

// Assigning and noting: the assignee from the analysts the app knows; a note goes into the timeline.
const assignee = document.getElementById("assignee");
assignee.replaceChildren(el("option", { value: "" }, "—"),
  ...((await attempt(() => api("GET", "/api/analysts"))) || []).map(name => el("option", { value: name }, name)));
async function caseForm(form, path, body) {
  if (current && await attempt(() => api("POST", `/api/cases/${current.case_id}/${path}`, body()))) {
    form.reset();
    await Promise.all([openCase(current.case_id), loadQueue()]);
  }
}
const assignForm = document.getElementById("assign");
assignForm.addEventListener("submit", (event) => {
  event.preventDefault(); caseForm(assignForm, "assign", () => ({ assignee: assignee.value }));
});
const noteForm = document.getElementById("note");
noteForm.addEventListener("submit", (event) => {
  event.preventDefault(); caseForm(noteForm, "notes", () => ({ text: document.getElementById("note-text").value }));
});

for (const [action, needsReason] of [["review", false], ["confirm", true], ["dismiss", true], ["forward", false], ["close", false]]) {
  document.getElementById(`act-${action}`).addEventListener("click", () => act(action, needsReason));
}
filters.addEventListener("submit", (event) => { event.preventDefault(); page = 0; loadQueue(); });

// A teller escalating a warning means a customer at a counter now: the server pushes each escalation
// (GET /api/escalations/stream) and the console shows it without a reload; the browser reconnects by itself.
const escalationBanner = document.getElementById("escalation-banner");
const beep = alarm(document.getElementById("sound"));
const escalations = new EventSource("/api/escalations/stream");
escalations.addEventListener("escalation", (event) => {
  const c = JSON.parse(event.data);
  escalationBanner.append(el("div", {},
    t("console.escalation", { place: c.escalated_from, kind: t(`kind.${c.entity.kind}`), value: c.entity.value,
      severity: t(`severity.${c.severity}`), time: when(c.escalated_at) }), " ",
    el("button", { type: "button", class: "secondary", onclick: () => {
      escalationBanner.hidden = true; escalationBanner.replaceChildren(); openCase(c.case_id);
    } }, t("common.open"))));
  escalationBanner.hidden = false;
  beep();
  loadQueue();
});

await loadQueue();
const wanted = new URLSearchParams(location.search).get("case");
if (wanted) await openCase(wanted);
