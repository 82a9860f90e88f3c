// Shared helpers of the pages: the language, API calls, the signed-in user, building DOM safely (text only,
// never innerHTML).

import { rounded } from "/static/pure.js";

// The interface speaks Chinese unless the user switched to English (kept in this browser). The catalog holds
// the pages' texts and the reasons and units the server says alerts with (/i18n/<language>.json).
export const LANGUAGES = ["zh-CN", "en"];
const chosen = localStorage.getItem("antifraud.language");
export const LANGUAGE = LANGUAGES.includes(chosen) ? chosen : LANGUAGES[0];
const catalog = await (await fetch(`/i18n/${LANGUAGE}.json`, { credentials: "same-origin" })).json();

// A catalog text's placeholders: {name}, or {name:how} (a unit for a reason, a prefix of words for a refusal).
const PLACEHOLDER = /\{(\w+)(?::([\w.]+))?\}/g;

function fill(template, params) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// A text of the pages in the user's language, its {placeholders} filled from ``params``.
export function t(key, params = {}) {
  const template = catalog.texts[key];
  if (template === undefined) { console.error(`no text ${key} in ${LANGUAGE}`); return key; }
  return fill(template, params);
}

const DECIMALS = { hours: 1, minutes: 1, days: 1, times: 1, percent: 0, count: 0, yuan: 2 };

// A value rounded for its unit and labelled: as antifraud/alerts/explain.py's format_unit.
export function unit(value, kind) {
  const shown = kind === "percent" ? value * 100 : value;
  const number = kind === "yuan"
    ? rounded(shown, 2).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })
    : String(rounded(shown, DECIMALS[kind]) + 0);  // + 0: -0 reads "0"
  return catalog.units[kind].replace("{n}", number);
}

const FLAGGED_BY = "payee_flagged_by_";

// The reasons that say how much, not why (as explain.py's SCORES): never shown as sentences.
const SCORES = ["score", "population_score"];

// An alert's reasons as sentences, without its score: as explain_alert() on the server.
export function alertReasons(reasons) {
  return reasons.filter(r => !SCORES.includes(r.feature)).map(r => reason(r.feature, r.value));
}

// A detector's reason (feature and value) as a sentence: as explain() on the server.
export function reason(feature, value) {
  if (feature.startsWith(FLAGGED_BY)) {
    const detector = feature.slice(FLAGGED_BY.length);
    return catalog.reasons.payee_flagged_by.replace("{detector}", t(`detector.${detector}`));
  }
  const template = catalog.reasons[feature];
  if (template === undefined) return value === null || value === undefined ? feature : `${feature} ${value}`;
  return template.replace(PLACEHOLDER, (whole, name, kind) => unit(value ?? 0, kind || "count"));
}

// The static texts of a page: elements name their text's key in data-i18n (data-i18n-placeholder for an
// input's placeholder); the title's key is the body's data-title.
function translatePage() {
  document.documentElement.lang = LANGUAGE;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  if (document.body.dataset.title) document.title = `${t("app.name")} · ${t(document.body.dataset.title)}`;
}
translatePage();

// The button that switches the interface to the other language.
export function languageSwitch() {
  const other = LANGUAGES.find(language => language !== LANGUAGE);
  return el("button", { type: "button", id: "language", class: "secondary", lang: other, onclick: () => {
    localStorage.setItem("antifraud.language", other); location.reload();
  } }, t("app.other_language"));
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// One broken field of a 422 in words: "invalid.<type>" names the rule, "field.<name>" the field as the
// form labels it; a rule without words keeps the server's message.
function invalid(error) {
  const name = [...error.loc].reverse().find(part => typeof part === "string" && part !== "body") || "";
  const field = catalog.texts[`field.${name}`] ?? name;
  const rule = catalog.texts[`invalid.${error.type}`];
  return rule === undefined ? `${field}: ${error.msg}` : fill(rule, { field, ...(error.ctx || {}) });
}

// A refusal of the app's rules in the user's words: "refusal.<code>" filled from its params, where
// {name:prefix} says a value (or a list of them) by its words under prefix, and {name:when} is a time.
// A code without words keeps the server's sentence.
function refusal(data) {
  const template = catalog.texts[`refusal.${data.code}`];
  if (template === undefined) return data.detail;
  return template.replace(PLACEHOLDER, (whole, name, how) => {
    const value = (data.params || {})[name];
    if (value === undefined) return whole;
    if (!how) return value;
    if (how === "when") return when(value);
    return value.split(", ").map(part => t(`${how}.${part}`)).join(t("list.separator"));
  });
}

function messageOf(status, data) {
  if (data && typeof data.code === "string") return refusal(data);
  if (data && Array.isArray(data.detail)) return data.detail.map(invalid).join(t("error.separator"));
  if (data && typeof data.message === "string") return data.message;
  if (data && typeof data.detail === "string") return data.detail;
  return t("error.http", { status });
}

// The session's CSRF token (from /api/me or the login): every change made with the session cookie sends it.
let csrfToken = null;

export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET" && csrfToken) init.headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && !path.startsWith("/api/session")) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!response.ok) throw new ApiError(response.status, messageOf(response.status, data));
  return data;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const HOME = { teller: "/counter", analyst: "/console", credit_officer: "/blacklist", admin: "/console" };
const LINKS = [
  ["/counter", "page.counter", ["teller", "analyst", "admin"]],
  ["/console", "page.console", ["analyst", "admin"]],
  ["/holds", "page.holds", ["analyst", "admin"]],
  ["/blacklist", "page.blacklist", ["credit_officer", "analyst", "admin"]],
];

// The signed-in user (or a trip to the login page), with the page header filled in.
export async function signedIn(roles) {
  const me = await api("GET", "/api/me");
  csrfToken = me.csrf_token;
  const header = document.querySelector("header.top");
  if (header) {
    header.replaceChildren(
      el("strong", {}, t("app.name")),
      el("nav", {}, LINKS.filter(([, , r]) => r.includes(me.role))
        .map(([href, label]) => el("a", { href, "aria-current": location.pathname === href ? "page" : null }, t(label)))),
      el("span", { class: "who", id: "who" },
        `${me.name} · ${t(`role.${me.role}`)}${me.branch_id ? " · " + me.branch_id : ""}`),
      languageSwitch(),
      el("button", { type: "button", id: "logout", onclick: async () => {
        await api("DELETE", "/api/session"); location.assign("/login");
      } }, t("app.logout")),
    );
  }
  if (roles && !roles.includes(me.role) && me.role !== "admin") {
    showError(t("error.wrong_role", { role: t(`role.${me.role}`) }));
    throw new ApiError(403, "wrong role");
  }
  return me;
}

export function showError(message) {
  const box = document.getElementById("error");
  if (box) {
    box.textContent = message;
    box.hidden = !message;
    if (message) box.scrollIntoView({ block: "nearest" });  // a form far down the page: its error in view
  }
}

// Runs an action, showing its error message instead of throwing.
export async function attempt(action) {
  showError("");
  try { return await action(); } catch (error) { showError(error.message); return undefined; }
}

// An amount in fen as yuan: ¥ and two decimals, in either language.
export function yuan(fen) {
  return unit(fen / 100, "yuan");
}

const CLOCK = new Intl.DateTimeFormat(LANGUAGE, {
  timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

// A time as the users read it: Beijing time, 24-hour clock.
export function when(iso) {
  return iso ? CLOCK.format(new Date(iso)) : "";
}

// A table from rows of objects; columns: [header, row => cell content].
export function table(columns, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, columns.map(([head]) => el("th", {}, head)))),
    el("tbody", {}, rows.map(row => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(row)))))));
}

// An audible cue for what cannot wait (a counter's warning, a counter's escalation). Browsers only let a
// page make sound after a click on it: ``button`` (or any click) unlocks it. Returns the beep; every call
// is counted in ``window.antifraudBeeps``, sound or not, so tests can see it.
export function alarm(button) {
  let audio = null;
  window.antifraudBeeps = 0;
  function unlock() {
    audio = audio || new AudioContext();
    audio.resume();
    button.textContent = t("sound.on");
    button.disabled = true;
  }
  button.addEventListener("click", unlock);
  document.addEventListener("click", unlock, { once: true });
  return function beep() {
    window.antifraudBeeps += 1;
    if (!audio || audio.state !== "running") return;
    for (const [start, freq] of [[0, 880], [0.25, 660], [0.5, 880]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      gain.gain.value = 0.2;
      osc.frequency.value = freq;
      osc.connect(gain).connect(audio.destination);
      osc.start(audio.currentTime + start);
      osc.stop(audio.currentTime + start + 0.2);
    }
  };
}
