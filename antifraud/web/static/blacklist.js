// The blacklist page: look up listings, see one with its objections and history; file, decide, repair.
import { api, attempt, el, signedIn, table, when } from "/static/common.js";

const me = await signedIn(["credit_officer", "analyst"]);
const query = document.getElementById("query");
const officer = me.role === "credit_officer" || me.role === "admin";
let current = null;

async function search() {
  const data = new FormData(query);
  const params = new URLSearchParams({ [data.get("kind")]: data.get("value").trim() });
  if (data.get("include_ended")) params.set("include_ended", "true");
  const listings = await attempt(() => api("GET", `/api/blacklist?${params}`));
  if (!listings) return;
  document.getElementById("count").textContent = `(${listings.length})`;
  document.getElementById("listings").replaceChildren(table([
    ["Party", l => `${l.party.kind} ${l.party.id}`], ["State", l => l.state], ["Reason", l => l.reason_code],
    ["Listed", l => when(l.listed_at)], ["Expires", l => when(l.expires_at)], ["Case", l => l.case_id],
    ["", l => el("button", { type: "button", class: "secondary", onclick: () => open(l.listing_id) }, "Open")],
  ], listings, { id: "listings-table" }));
}

async function decide(objection, decision) {
  const note = document.getElementById("decision-note").value.trim();
  if (await attempt(() => api("POST", `/api/blacklist/${current}/objections/${objection.objection_id}/decision`,
    { decision, note }))) await refresh();
}

async function open(listingId) {
  const listing = await attempt(() => api("GET", `/api/blacklist/${encodeURIComponent(listingId)}`));
  if (!listing) return;
  current = listingId;
  document.getElementById("listing").hidden = false;
  document.getElementById("listing-title").textContent = `${listing.party.kind} ${listing.party.id} (${listing.state})`;
  document.getElementById("listing-detail").replaceChildren(
    el("p", {}, `${listing.reason_code}: ${listing.reason}`),
    el("p", { class: "muted" }, `Evidence ${listing.evidence.join(", ")} · accounts ${listing.accounts.join(", ") || "none"}`
      + ` · phones ${listing.phones.join(", ") || "none"} · listed by ${listing.listed_by} ${when(listing.listed_at)}`
      + ` · expires ${when(listing.expires_at)}`));
  document.getElementById("objections").replaceChildren(listing.objections.length ? table([
    ["#", o => o.objection_id], ["State", o => o.state], ["Filed", o => `${when(o.filed_at)} by ${o.filed_by}`],
    ["Grounds", o => o.grounds], ["Decision", o => o.note || ""],
    ["", o => officer && o.state === "pending" ? el("span", { class: "actions" },
      el("button", { type: "button", onclick: () => decide(o, "uphold") }, "Uphold"),
      el("button", { type: "button", class: "secondary", onclick: () => decide(o, "correct") }, "Correct (remove)")) : ""],
  ], listing.objections) : el("p", { class: "muted" }, "No objections."));
  document.getElementById("repair").hidden = !officer;
  const history = await attempt(() => api("GET", `/api/blacklist/${encodeURIComponent(listingId)}/history`)) || [];
  document.getElementById("history").replaceChildren(table([
    ["#", h => h.seq], ["When", h => when(h.at)], ["Who", h => h.actor], ["What", h => h.action], ["State", h => h.state || ""],
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
  if (await attempt(() => api("POST", `/api/blacklist/${current}/objections`, data))) { event.target.reset(); await refresh(); }
});
document.getElementById("repair").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = { conditions: [...form.elements.conditions.selectedOptions].map(o => o.value),
    evidence: [form.elements.evidence.value.trim()], note: form.elements.note.value.trim() };
  if (await attempt(() => api("POST", `/api/blacklist/${current}/repair`, body))) await refresh();
});
query.addEventListener("submit", (event) => { event.preventDefault(); search(); });

const given = new URLSearchParams(location.search);
for (const kind of ["id_number", "credit_code", "account", "phone"]) {
  if (given.get(kind)) {
    query.elements.kind.value = kind;
    query.elements.value.value = given.get(kind);
    await search();
  }
}
