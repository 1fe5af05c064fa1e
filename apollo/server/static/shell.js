/**
 * The header every logged-in page shares: who is logged in, logout, and a live indicator
 * that says whether the page still receives updates (a silent stale page is the worst
 * failure for someone watching runs for hours).
 */

import { logout, me, toLogin } from "./api.js";
import { byId, replace } from "./dom.js";

/**
 * Shows the user and wires logout; resolves to the user, or sends them to the login page.
 * @returns {Promise<{name: string, role: string, csrf_token: string}>}
 */
export async function initShell() {
  const who = await me();
  replace(byId("whoami"), who.name, " · ", who.role);
  byId("logout").addEventListener("click", () => logout());
  return who;
}

/**
 * Shows the state of a stream in the header: "live", "reconnecting…" or "offline".
 * @param {"live"|"reconnecting"|"offline"} state
 */
function setLive(state) {
  const node = byId("live");
  node.dataset.state = state;
  node.textContent = { live: "live", reconnecting: "reconnecting…", offline: "offline" }[state];
}

/**
 * Keeps an EventSource open and the live indicator honest. EventSource reconnects by itself
 * after a dropped connection (sending Last-Event-ID); it gives up on an HTTP error answer,
 * and then we either go to the login page (the session ended) or open a new one a little
 * later from `url()`, which says where to resume: a page left open overnight must recover
 * from a server restart without a reload.
 * @param {() => string} url where to (re)connect
 * @param {Record<string, (ev: MessageEvent) => void>} handlers by event name
 */
export function openStream(url, handlers) {
  const source = new EventSource(url(), { withCredentials: true });
  source.addEventListener("open", () => setLive("live"));
  source.addEventListener("error", async () => {
    if (source.readyState !== EventSource.CLOSED) {
      setLive("reconnecting");
      return;
    }
    setLive("offline");
    const session = await fetch("/api/me", { credentials: "same-origin" }).catch(() => null);
    if (session?.status === 401) {
      toLogin();
      return;
    }
    setTimeout(() => openStream(url, handlers), RETRY_MS);
  });
  for (const [name, handler] of Object.entries(handlers)) source.addEventListener(name, handler);
}

/** How long to wait before opening a stream the browser gave up on. */
const RETRY_MS = 5000;

/**
 * Shows a short message in a status line, styled by its tone, for as long as it is true.
 * @param {HTMLElement} node
 * @param {string} message
 * @param {"ok"|"error"|"info"} tone
 */
export function say(node, message, tone = "info") {
  node.dataset.tone = tone;
  node.textContent = message;
}
