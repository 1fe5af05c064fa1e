/**
 * The one way the console talks to the server (docs/api.md).
 *
 * The session cookie is HttpOnly, so scripts cannot read it; writes prove they come from
 * this page with the CSRF token that `/api/me` returns, sent as `X-CSRF-Token`. A 401 means
 * the session is gone: the page goes to the login form, which brings the user back after.
 */

/** An API answer other than 2xx, with the server's message (`detail`) when it gave one. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** @type {Promise<{name: string, role: string, csrf_token: string}>|null} */
let mePromise = null;
/** The CSRF token once known: then a write starts its fetch synchronously, which is what
 * lets the presence report sent from `pagehide` leave before the page is gone. */
let csrfToken = "";

/**
 * Who is logged in (name, role, CSRF token); fetched once per page.
 * @returns {Promise<{name: string, role: string, csrf_token: string}>}
 */
export function me() {
  mePromise ??= api("/api/me").then((who) => {
    csrfToken = who.csrf_token;
    return who;
  });
  return mePromise;
}

/**
 * Whether this role may write (guide, control, label, start runs): viewers only read.
 * @param {{role: string}} who
 */
export function canWrite(who) {
  return who.role === "annotator" || who.role === "admin";
}

/** Sends the browser to the login form, asking it to come back to this page. */
export function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

/**
 * A JSON request to the API. Writes carry the CSRF token; errors throw `ApiError` with the
 * server's own explanation, so forms can show it as it is.
 * @param {string} path
 * @param {{method?: string, body?: unknown, keepalive?: boolean}} [options] `keepalive`
 *   lets a request made while the page closes still reach the server
 * @returns {Promise<any>}
 */
export async function api(path, { method = "GET", body, keepalive = false } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") {
    if (path !== "/api/login") headers["X-CSRF-Token"] = csrfToken || (await me()).csrf_token;
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    keepalive,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && path !== "/api/login") {
    toLogin();
    throw new ApiError(401, "not logged in");
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, describe(response.status, data));
  return data;
}

/**
 * The server's `detail` as one line (FastAPI's 422 gives a list of field errors).
 * @param {number} status
 * @param {any} data
 */
function describe(status, data) {
  const detail = data?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc ?? []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return `request failed (HTTP ${status})`;
}

/** Logs out and goes to the login form. */
export async function logout() {
  try {
    await api("/api/logout", { method: "POST" });
  } finally {
    location.assign("/login");
  }
}
