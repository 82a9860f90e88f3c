// The counter page: the branch's live warnings (flash + beep) and the pre-transfer check form.
import { alarm, alertReasons, api, attempt, el, reason, showError, signedIn, t, table, when, yuan } from "/static/common.js";

const me = await signedIn(["teller", "analyst"]);
const warningsList = document.getElementById("warnings");
const banner = document.getElementById("live-banner");
const streamStatus = document.getElementById("stream-status");
const beep = alarm(document.getElementById("sound"));

// The customer is at the counter now: the teller can put the warning in front of the police at once.
function escalateForm(place, alert) {
  const note = el("input", { name: "note", required: true, maxlength: 2000, size: 50,
    placeholder: t("counter.escalate_note") });
  const form = el("form", { class: "escalate" }, note, " ",
    el("button", { type: "submit", class: "danger" }, t("counter.escalate")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const path = `/api/places/${encodeURIComponent(place)}/warnings/${alert.alert_id}/escalate`;
    const done = await attempt(() => api("POST", path, { note: note.value }));
    if (done) {
      form.replaceWith(el("p", { class: "escalated" },
        t("counter.escalated", { case: done.case_id.slice(0, 12), status: t(`status.${done.status}`) })));
      form.closest("li").querySelector(".handling")?.remove();
    }
  });
  return form;
}

// Whom the warning is about: the teller is serving the payer (with several customers in the hall).
function transferLine(transfer) {
  if (!transfer) return null;
  const desk = transfer.channel === "atm" ? transfer.atm_id : transfer.branch_id;
  return el("div", { class: "transfer" }, t("counter.transfer", {
    payer: transfer.payer_name, account: transfer.payer_account, amount: yuan(transfer.amount_fen),
    channel: t(`channel.${transfer.channel}`), desk: desk || "", time: when(transfer.at) }));
}

// What the counter did about a warning (kept in Redis: a reload or another desk shows it), and the
// buttons to say more: seen, then handled. An escalated warning is done with.
function handlingLine(place, alert) {
  const h = alert.handling;
  if (h && h.state === "escalated") {
    return el("p", { class: "escalated" }, t("counter.escalated_by", { case: h.case_id.slice(0, 12), who: h.by, time: when(h.at) }));
  }
  const line = el("p", { class: "handling", dataset: { state: h ? h.state : "new" } },
    h ? t(`handling.${h.state}`, { who: h.by, time: when(h.at) }) : "", " ");
  for (const state of ["seen", "handled"]) {
    if (h && (h.state === "handled" || (state === "seen" && h.state === "seen"))) continue;
    line.append(el("button", { type: "button", class: "secondary", dataset: { mark: state }, onclick: async () => {
      const marked = await attempt(() =>
        api("POST", `/api/places/${encodeURIComponent(place)}/warnings/${alert.alert_id}/handling`, { state }));
      if (marked) line.replaceWith(handlingLine(place, { ...alert, handling: marked }));
    } }, t(`handling.mark_${state}`)), " ");
  }
  return line;
}

function warningItem(place, alert, fresh) {
  return el("li", { class: fresh ? "fresh" : "", dataset: { alertId: alert.alert_id } },
    el("span", { class: `badge ${alert.severity}` }, t(`severity.${alert.severity}`)), " ",
    el("strong", {}, t("counter.warning_title", { detector: t(`detector.${alert.detector}`),
      kind: t(`kind.${alert.entity.kind}`), value: alert.entity.value })), " ",
    el("span", { class: "muted" }, when(alert.window_end)),
    transferLine(alert.transfer),
    el("div", {}, t("counter.stop_and_talk"), " ",
      alertReasons(alert.reasons).join("；")),
    me.role !== "analyst" ? handlingLine(place, alert) : null,
    me.role !== "analyst" && alert.handling?.state !== "escalated" ? escalateForm(place, alert) : null);
}

function show(place, alert, fresh) {
  if (warningsList.querySelector(`[data-alert-id="${CSS.escape(alert.alert_id)}"]`)) return;
  document.getElementById("no-warnings").hidden = true;
  warningsList.prepend(warningItem(place, alert, fresh));
  if (fresh) {
    banner.textContent = t("counter.new_warning", { severity: t(`severity.${alert.severity}`),
      detector: t(`detector.${alert.detector}`), value: alert.entity.value });
    banner.hidden = false;
    setTimeout(() => { banner.hidden = true; }, 15000);
    beep();
  }
}

let source = null;
async function watch(place) {
  document.getElementById("place-name").textContent = place;
  warningsList.replaceChildren();
  document.getElementById("no-warnings").hidden = false;
  if (source) source.close();
  const recent = await attempt(() => api("GET", `/api/places/${encodeURIComponent(place)}/warnings`));
  for (const alert of (recent || []).slice().reverse()) show(place, alert, false);
  source = new EventSource(`/api/places/${encodeURIComponent(place)}/warnings/stream`);
  source.addEventListener("open", () => {
    streamStatus.textContent = t("counter.live_state"); streamStatus.dataset.state = "live";
  });
  source.addEventListener("error", () => {
    streamStatus.textContent = t("counter.reconnecting"); streamStatus.dataset.state = "down";
  });
  source.addEventListener("warning", (event) => show(place, JSON.parse(event.data), true));
}

const form = document.getElementById("check");
if (me.role === "teller") {
  form.elements.branch_id.value = me.branch_id;
  form.elements.branch_id.readOnly = true;
  await watch(me.branch_id);
} else {
  const placeForm = document.getElementById("place-form");
  placeForm.hidden = false;
  placeForm.addEventListener("submit", (event) => { event.preventDefault(); watch(document.getElementById("place").value.trim()); });
  streamStatus.textContent = t("counter.choose_place");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  document.getElementById("check-result").hidden = true;  // never the last customer's answer under this one's error
  const data = Object.fromEntries(new FormData(form).entries());
  const amount = Number(data.amount);
  if (!Number.isFinite(amount) || amount <= 0) { showError(t("counter.amount_positive")); return; }
  const body = { ...data, amount_fen: Math.round(amount * 100) };
  delete body.amount;
  for (const key of ["branch_id", "atm_id", "payer_phone"]) if (!body[key]) delete body[key];
  const result = await attempt(() => api("POST", "/api/check", body));
  if (!result) return;
  const decision = document.getElementById("decision");
  decision.textContent = t(`decision.${result.decision}`);
  decision.className = `decision ${result.decision}`;
  document.getElementById("score").textContent = result.score
    ? t("counter.score", { score: result.score, alert: result.alert_score }) : "";
  document.getElementById("reasons").replaceChildren(...result.reasons.map(r =>
    el("li", { dataset: { code: r.code } }, reason(r.code, r.value))));
  document.getElementById("check-result").hidden = false;
});

// A customer asks for an ATM transfer back within its hold: the teller finds it by the customer's account
// and revokes it on the customer's request (only a held transfer can be revoked; a frozen one is the police's).
const lookup = document.getElementById("holds-lookup");
async function showHolds() {
  const account = lookup.elements.account.value.trim();
  const holds = await attempt(() => api("GET", `/api/holds/by-payer?${new URLSearchParams({ account })}`));
  if (!holds) return;
  document.getElementById("customer-holds").replaceChildren(holds.length ? table([
    [t("col.hold"), h => h.hold_id.slice(0, 12)], [t("col.state"), h => t(`hold.state.${h.state}`)],
    [t("col.payee"), h => h.payee_account], [t("col.amount"), h => yuan(h.amount_fen)], [t("col.atm"), h => h.atm_id],
    [t("col.made"), h => when(h.created_at)], [t("col.due"), h => when(h.due_at)],
    ["", h => h.state === "held" ? el("button", { type: "button", class: "danger", dataset: { move: "revoke" },
      onclick: () => revoke(h) }, t("hold.move.revoke")) : ""],
  ], holds, { id: "customer-holds-table" }) : el("p", { class: "muted" }, t("counter.no_holds")));
}
async function revoke(hold) {
  const why = document.getElementById("revoke-reason").value.trim() || t("counter.revoke_default");
  if (await attempt(() => api("POST", `/api/holds/${hold.hold_id}/revoke`, { reason: why }))) await showHolds();
}
lookup.addEventListener("submit", (event) => { event.preventDefault(); showHolds(); });

// A customer says they are on the credit blacklist wrongly: the teller checks on the ID card presented and
// takes the objection there (a credit officer decides it; the receipt says which objection it is).
const listingCheck = document.getElementById("blacklist-check");
const objectionForm = document.getElementById("objection");
let listingId = null;
listingCheck.addEventListener("submit", async (event) => {
  event.preventDefault();
  objectionForm.hidden = true;
  const query = new URLSearchParams({ id_number: listingCheck.elements.id_number.value.trim() });
  const result = await attempt(() => api("GET", `/api/blacklist/check?${query}`));
  if (!result) return;
  listingId = result.listing_ids[0] || null;
  document.getElementById("listing-result").textContent = result.listed
    ? t("counter.listed", { subject: result.subject, reasons: result.reason_codes.map(c => t(`reason_code.${c}`)).join("、"),
      until: when(result.until) })
    : t("counter.not_listed", { subject: result.subject });
  objectionForm.hidden = !listingId;
});
objectionForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { party_id: listingCheck.elements.id_number.value.trim(), grounds: objectionForm.elements.grounds.value.trim() };
  const receipt = await attempt(() => api("POST", `/api/blacklist/${encodeURIComponent(listingId)}/objections`, body));
  if (!receipt) return;
  objectionForm.hidden = true;
  objectionForm.reset();
  document.getElementById("listing-result").textContent = t("counter.objection_filed", {
    objection: receipt.objection_id, state: t(`listing.state.${receipt.listing_state}`) });
});
