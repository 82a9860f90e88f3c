import { api, attempt, HOME } from "/static/common.js";

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const me = await attempt(() => api("POST", "/api/session", { token: document.getElementById("token").value }));
  if (!me) return;
  const next = new URLSearchParams(location.search).get("next");
  location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : HOME[me.role]);
});
