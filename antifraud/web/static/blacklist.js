// The blacklist page: look up listings, see one with its objections and history; file, decide, repair.
import { api, attempt, el, showError, signedIn, t, table, when } from "/static/common.js";

const me = await signedIn(["credit_officer", "analyst"]);
const query = document.getElementById("query");
const officer = me.role === "credit_officer" || me.role === "admin";
let current = null;

function party(p) { return `${t(`kind.${p.kind}`)} ${p.id}`; }

async function search() {
  const data = new FormData(query);
  const params = new URLSearchParams({ [data.get("kind")]: data.get("value").trim() });
  if (data.get("include_ended")) params.set("include_ended", "true");
  const listings = await attempt(() => api("GET", `/api/blacklist?${params}`));
  if (!listings) return;
  document.getElementById("count").textContent = `(${listings.length})`;
  document.getElementById("listings").replaceChildren(table([
    [t("col.party"), l => party(l.party)], [t("col.state"), l => t(`listing.state.${l.state}`)],
    [t("col.reason"), l => t(`reason_code.${l.reason_code}`)],
    [t("col.listed"), l => when(l.listed_at)], [t("col.expires"), l => when(l.expires_at)], [t("col.case"), l => l.case_id],
    ["", l => el("button", { type: "button", class: "secondary", onclick: () => open(l.listing_id) }, t("common.open"))],
  ], listings, { id: "listings-table" }));
}

// A correction removes the listing, or amends it with what the amend form changes (left empty: unchanged).
function amendment() {
  const form = document.getElementById("amend-form").elements;
  const list = name => form[name].value.split(/[,，\s]+/).filter(Boolean);
  const amend = {};
  if (form.reason_code.value) amend.reason_code = form.reason_code.value;
  if (form.reason.value.trim()) amend.reason = form.reason.value.trim();
  if (form.accounts.value.trim()) amend.accounts = list("accounts");
  if (form.phones.value.trim()) amend.phones = list("phones");
  if (form.expires_at.value) amend.expires_at = new Date(`${form.expires_at.value}T00:00:00+08:00`).toISOString();
  return Object.keys(amend).length ? amend : null;
}

async function decide(objection, decision) {
  const note = document.getElementById("decision-note").value.trim();
  const amend = decision === "amend" ? amendment() : null;
  if (decision === "amend" && !amend) { showError(t("blacklist.amend_empty")); return; }
  const body = { decision: decision === "amend" ? "correct" : decision, note, ...(amend ? { amend } : {}) };
  if (await attempt(() => api("POST", `/api/blacklist/${current}/objections/${objection.objection_id}/decision`, body))) {
    document.getElementById("amend-form").reset();
    await refreshAll();
  }
}

async function open(listingId) {
  const listing = await attempt(() => api("GET", `/api/blacklist/${encodeURIComponent(listingId)}`));
  if (!listing) return;
  current = listingId;
  document.getElementById("listing").hidden = false;
  const title = document.getElementById("listing-title");
  title.dataset.state = listing.state;
  title.textContent = `${party(listing.party)}（${t(`listing.state.${listing.state}`)}）`;
  document.getElementById("listing-detail").replaceChildren(
    el("p", {}, `${t(`reason_code.${listing.reason_code}`)}：${listing.reason}`),
    el("p", { class: "muted" }, t("blacklist.detail", {
      evidence: listing.evidence.join(", "), accounts: listing.accounts.join(", ") || t("common.none"),
      phones: listing.phones.join(", ") || t("common.none"), by: listing.listed_by, at: when(listing.listed_at),
      expires: when(listing.expires_at) })));
  document.getElementById("objections").replaceChildren(listing.objections.length ? table([
    ["#", o => o.objection_id], [t("col.state"), o => t(`objection.state.${o.state}`)],
    [t("col.filed"), o => t("blacklist.filed_by", { when: when(o.filed_at), who: o.filed_by })],
    [t("col.grounds"), o => o.grounds], [t("col.decision"), o => o.note || ""],
    ["", o => officer && o.state === "pending" && listing.moves.includes("uphold") ? el("span", { class: "actions" },
      el("button", { type: "button", dataset: { decide: "uphold" }, onclick: () => decide(o, "uphold") }, t("blacklist.uphold")),
      el("button", { type: "button", class: "secondary", dataset: { decide: "amend" }, onclick: () => decide(o, "amend") },
        t("blacklist.amend")),
      el("button", { type: "button", class: "secondary", dataset: { decide: "correct" }, onclick: () => decide(o, "correct") },
        t("blacklist.correct"))) : ""],
  ], listing.objections) : el("p", { class: "muted" }, t("blacklist.no_objections")));
  document.getElementById("repair").hidden = !officer || !listing.moves.includes("repair");  // offered by state
  document.getElementById("objection").hidden = !listing.moves.includes("object");
  document.getElementById("amend").hidden = !officer || !listing.moves.includes("amend");
  const history = await attempt(() => api("GET", `/api/blacklist/${encodeURIComponent(listingId)}/history`)) || [];
  document.getElementById("history").replaceChildren(table([
    ["#", h => h.seq], [t("col.when"), h => when(h.at)], [t("col.who"), h => h.actor], [t("col.what"), h => t(`audit.${h.action}`)],
    [t("col.state"), h => (h.state ? t(`listing.state.${h.state}`) : "")],
  ], history));
}

// After an action: the listing and the search results both show its new state.
async function refresh() {
  await open(current);
  if (query.elements.value.value.trim()) await search();
}

document.getElementById("objection").addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(event.target).entries());
  if (await attempt(() => api("POST", `/api/blacklist/${current}/objections`, data))) { event.target.reset(); await refreshAll(); }
});
document.getElementById("repair").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = { conditions: [...form.elements.conditions.selectedOptions].map(o => o.value),
    evidence: [form.elements.evidence.value.trim()], note: form.elements.note.value.trim() };
  if (await attempt(() => api("POST", `/api/blacklist/${current}/repair`, body))) await refreshAll();
});
query.addEventListener("submit", (event) => { event.preventDefault(); search(); });

// The desk's landing: what waits for a credit officer, each list with its count.
function listingRows(listings, id) {
  return table([
    [t("col.party"), l => party(l.party)], [t("col.state"), l => t(`listing.state.${l.state}`)],
    [t("col.reason"), l => t(`reason_code.${l.reason_code}`)], [t("col.listed"), l => when(l.listed_at)],
    [t("col.expires"), l => when(l.expires_at)],
    ["", l => el("button", { type: "button", class: "secondary", onclick: () => open(l.listing_id) }, t("common.open"))],
  ], listings, { id });
}
async function loadWorklist() {
  const work = await attempt(() => api("GET", "/api/blacklist/worklist"));
  if (!work) return;
  const part = (key, rows) => [el("h3", {}, t(`blacklist.work_${key}`, { count: work[key].length })), rows];
  document.getElementById("work-objected").replaceChildren(...part("objected", listingRows(work.objected, "work-objected-table")));
  document.getElementById("work-proposals").replaceChildren(...part("proposals", table([
    [t("col.party"), p => party(p.draft.party)], [t("col.reason"), p => t(`reason_code.${p.draft.reason_code}`)],
    [t("col.who"), p => p.proposed_by], [t("col.when"), p => when(p.proposed_at)],
    ["", p => officer ? el("button", { type: "button", dataset: { approve: p.proposal_id }, onclick: async () => {
      if (await attempt(() => api("POST", `/api/blacklist/proposals/${encodeURIComponent(p.proposal_id)}/approve`))) {
        await loadWorklist();
      }
    } }, t("blacklist.approve")) : ""],
  ], work.proposals, { id: "work-proposals-table" })));
  document.getElementById("work-recent").replaceChildren(...part("recent", listingRows(work.recent, "work-recent-table")));
  document.getElementById("work-ending").replaceChildren(...part("ending", listingRows(work.ending, "work-ending-table")));
}

// After an action: the listing, the search results and the worklist all show its new state.
async function refreshAll() {
  await Promise.all([refresh(), loadWorklist()]);
}

await loadWorklist();
const given = new URLSearchParams(location.search);
for (const kind of ["id_number", "credit_code", "account", "phone"]) {
  if (given.get(kind)) {
    query.elements.kind.value = kind;
    query.elements.value.value = given.get(kind);
    await search();
  }
}
