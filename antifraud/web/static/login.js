import { api, attempt, HOME, languageSwitch } from "/static/common.js";

document.querySelector("header.top").append(languageSwitch());
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value;
  const body = token
    ? { token }
    : { name: document.getElementById("name").value, password: document.getElementById("password").value };
  const me = await attempt(() => api("POST", "/api/session", body));
  if (!me) return;
  const next = new URLSearchParams(location.search).get("next");
  location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : HOME[me.role]);
});
