/**
 * The login form: name + token → POST /api/login, which sets the HttpOnly session cookie;
 * then back to the page that sent the user here (only a path of this console, never a URL
 * from the query string, so the form cannot be used to bounce people elsewhere).
 */

import { ApiError, api } from "./api.js";
import { byId } from "./dom.js";
import { say } from "./shell.js";

/** Paths `?next=` may send the user back to: the dashboard or a run view. */
const NEXT = /^\/(runs\/[A-Za-z0-9_.~%-]+)?$/;

const form = /** @type {HTMLFormElement} */ (byId("login-form"));
const status = byId("login-status");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const button = /** @type {HTMLButtonElement} */ (byId("login-submit"));
  button.disabled = true;
  say(status, "Signing in…");
  try {
    await api("/api/login", {
      method: "POST",
      body: { name: String(data.get("name")).trim(), token: String(data.get("token")).trim() },
    });
    const next = new URLSearchParams(location.search).get("next") ?? "/";
    location.assign(NEXT.test(next) ? next : "/");
  } catch (err) {
    const wrong = err instanceof ApiError && err.status === 401;
    say(status, wrong ? "Wrong name or token." : String(err.message ?? err), "error");
    button.disabled = false;
    /** @type {HTMLInputElement} */ (byId("login-token")).select();
  }
});
