// Shared helpers of the pages: API calls, the signed-in user, building DOM safely (text only, never innerHTML).

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function messageOf(status, data) {
  if (data && typeof data.message === "string") return data.message;
  if (data && typeof data.detail === "string") return data.detail;
  return `request failed (HTTP ${status})`;
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
  ["/counter", "Counter", ["teller", "analyst", "admin"]],
  ["/console", "Console", ["analyst", "admin"]],
  ["/holds", "Holds", ["analyst", "admin"]],
  ["/blacklist", "Blacklist", ["credit_officer", "analyst", "admin"]],
];

// The signed-in user (or a trip to the login page), with the page header filled in.
export async function signedIn(roles) {
  const me = await api("GET", "/api/me");
  csrfToken = me.csrf_token;
  const header = document.querySelector("header.top");
  if (header) {
    header.replaceChildren(
      el("strong", {}, "antifraud"),
      el("nav", {}, LINKS.filter(([, , r]) => r.includes(me.role))
        .map(([href, label]) => el("a", { href, "aria-current": location.pathname === href ? "page" : null }, label))),
      el("span", { class: "who", id: "who" }, `${me.name} · ${me.role}${me.branch_id ? " · " + me.branch_id : ""}`),
      el("button", { type: "button", id: "logout", onclick: async () => {
        await api("DELETE", "/api/session"); location.assign("/login");
      } }, "Log out"),
    );
  }
  if (roles && !roles.includes(me.role) && me.role !== "admin") {
    showError(`This page is not for the ${me.role} role.`);
    throw new ApiError(403, "wrong role");
  }
  return me;
}

export function showError(message) {
  const box = document.getElementById("error");
  if (box) { box.textContent = message; box.hidden = !message; }
}

// Runs an action, showing its error message instead of throwing.
export async function attempt(action) {
  showError("");
  try { return await action(); } catch (error) { showError(error.message); return undefined; }
}

export function yuan(fen) {
  return (fen / 100).toLocaleString("zh-CN", { style: "currency", currency: "CNY" });
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
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
    button.textContent = "Sound on";
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
