/**
 * Number and time formatting for dense tables: short, fixed-shape strings that can be
 * compared at a glance across hundreds of rows.
 */

/**
 * A duration in seconds as "2h 05m", "4m 09s" or "12s"; "—" when unknown.
 * @param {number|null|undefined} seconds
 * @returns {string}
 */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h >= 24) return `${Math.floor(h / 24)}d ${String(h % 24).padStart(2, "0")}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m ${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

/**
 * A count with k / M suffixes (token totals reach the millions).
 * @param {number|null|undefined} n
 * @returns {string}
 */
export function count(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  return String(Math.round(n));
}

/**
 * A score or rate with at most two decimals; "—" when absent.
 * @param {number|null|undefined} x
 * @returns {string}
 */
export function decimal(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "—";
  return Number(x.toFixed(2)).toString();
}

/**
 * A clock time (today) or a date and time, in the viewer's locale.
 * @param {number|null|undefined} epochSeconds
 * @returns {string}
 */
export function clock(epochSeconds) {
  if (!epochSeconds) return "—";
  const d = new Date(epochSeconds * 1000);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** Human words for the attention signals of the API (docs/api.md "Shapes"). */
export const ATTENTION_LABELS = {
  error_streak: "errors",
  repeated_action: "repeating",
  long_idle: "idle",
  session_killed_early: "killed early",
};
