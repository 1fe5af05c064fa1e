/**
 * The run view: live timeline, side panel (state, cost, guidance, sessions, submissions),
 * composer and controls for annotators, and presence reporting.
 *
 * The timeline follows `/api/runs/{id}/stream` (EventSource resumes with Last-Event-ID by
 * itself). The side panel shows `GET /api/runs/{id}`, refetched shortly after events that
 * change it, at most every REFRESH_MS, so a busy run does not flood the server.
 */

import { api, canWrite } from "./api.js";
import { append, byId, el, replace } from "./dom.js";
import { ATTENTION_LABELS, count, decimal, duration } from "./format.js";
import { Composer, Controls } from "./composer.js";
import { initShell, openStream } from "./shell.js";
import { Timeline } from "./timeline.js";

const REFRESH_MS = 1500;
/** Presence is reported this often while the page is visible (docs/api.md). */
const PRESENCE_MS = 30_000;
/** The API refuses presence reports above this many seconds. */
const PRESENCE_MAX_S = 120;

/** Every event kind of the log (apollo/log/events.py); EventSource needs them by name. */
const KINDS = [
  "run_started", "run_resumed", "model_call", "model_retry", "observation", "guidance",
  "guidance_delivered", "guidance_cancelled", "summary", "control", "label", "presence",
  "submission", "sessions_closed", "annotator_decision", "run_finished",
];

const runId = document.body.dataset.runId ?? "";
const base = `/api/runs/${encodeURIComponent(runId)}`;

/** @type {Controls|null} */
let controls = null;
/** @type {Timeline|null} */
let timeline = null;
/** The latest RunDetail. @type {any} */
let detail = null;
let refreshTimer = 0;
let lastRefresh = 0;

/** Refetches the run's detail soon (coalescing bursts of events into one request). */
function scheduleRefresh() {
  if (refreshTimer) return;
  const wait = Math.max(0, lastRefresh + REFRESH_MS - Date.now());
  refreshTimer = window.setTimeout(refresh, wait);
}

async function refresh() {
  refreshTimer = 0;
  lastRefresh = Date.now();
  renderDetail(await api(base));
}

/**
 * Fills the header and the side panel from a RunDetail.
 * @param {any} d
 */
function renderDetail(d) {
  detail = d;
  const status = byId("run-status");
  status.textContent = d.status;
  status.className = `badge status-${String(d.status).replace(/[^a-z]/g, "")}`;
  byId("run-task").textContent = d.task;
  renderStep();
  controls?.update(d.status);

  const attention = d.attention.map((a) => el("span",
    { class: `badge attn attn-${String(a.kind).replace(/[^a-z_]/g, "")}`, title: a.detail },
    ATTENTION_LABELS[a.kind] ?? a.kind));
  facts(byId("state"), [
    ["Status", d.status],
    ["Step", el("span", { id: "state-step" }, stepText())],
    ["Working time left", duration(d.working_time_left_s)],
    ["Last score", decimal(d.last_score)],
    ["Attention", attention.length ? el("span", { class: "badges" }, ...attention) : "none"],
  ]);
  const c = d.cost;
  facts(byId("cost"), [
    ["Interventions", `${c.interventions} (${decimal(c.interventions_per_hour)} / h)`],
    ["Annotator time", duration(c.annotator_seconds)],
    ["Tokens", `${count(c.prompt_tokens)} in · ${count(c.completion_tokens)} out`],
    ["Model retries", count(c.model_retries)],
    ["Wall time", duration(c.wall_s)],
    ["Working time", duration(c.work_s)],
  ]);

  replace(byId("guidance-counts"), `${d.guidance_queued} queued / ${d.guidance_count}`);
  replace(byId("guidance-list"), ...d.guidance.slice().reverse().map((g) => el("li",
    { "data-state": g.state },
    el("span", { class: "badge state" },
      g.state === "delivered" ? `delivered · step ${g.delivered_step}` : g.state),
    el("span", { class: "badge kind" }, g.kind), " ", el("span", { class: "author" }, g.author),
    el("div", { class: "clip" }, g.text))));
  if (!d.guidance.length) append(byId("guidance-list"), el("li", { class: "muted" }, "none yet"));

  replace(byId("sessions"), ...d.sessions.map((s) => el("li", {},
    el("span", { class: `badge ${s.running ? "status-running" : "status-stopped"}` },
      s.running ? "running" : `exit ${s.exit_code ?? "?"}`),
    el("code", {}, s.id), el("div", { class: "clip mono" }, s.command))));
  if (!d.sessions.length) append(byId("sessions"), el("li", { class: "muted" }, "none"));

  replace(byId("submissions"), ...d.submissions.map((s) => el("li", {},
    el("strong", {}, `#${s.n}`),
    s.status === "evaluator_error" ? el("span", { class: "badge status-failed", title: s.error ?? "" },
      "evaluator failed") : ` score ${decimal(s.score)}`,
    s.final ? el("span", { class: "badge" }, "final") : null,
    el("span", { class: "muted" }, ` at step ${s.step}`))));
  if (!d.submissions.length) append(byId("submissions"), el("li", { class: "muted" }, "none"));
}

/**
 * "N / M": the step is the latest the timeline shows (it follows the log live, the detail
 * is refetched at most every REFRESH_MS), so the header never lags the step cards.
 */
function stepText() {
  const step = Math.max(detail?.step ?? 0, timeline?.latestStep ?? 0);
  return `${step} / ${detail?.max_steps ?? "—"}`;
}

/** Writes the current step into the header and the state panel. */
function renderStep() {
  byId("run-step").textContent = `step ${stepText()}`;
  const state = document.getElementById("state-step");
  if (state) state.textContent = stepText();
}

/**
 * A definition list of label → value (text or node).
 * @param {HTMLElement} dl
 * @param {[string, string|Node][]} pairs
 */
function facts(dl, pairs) {
  replace(dl, ...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

/**
 * Reports time spent watching this run, every PRESENCE_MS while the page is visible, and
 * what is left when it is hidden or closed (the cost report counts annotator minutes). The
 * server credits a report at most the time since the previous one arrived, so watching
 * starts with a report of 0 seconds.
 */
function initPresence() {
  let since = 0;
  /** @param {number} seconds @param {boolean} keepalive */
  const send = (seconds, keepalive) => {
    api(`${base}/presence`, { method: "POST", body: { seconds }, keepalive }).catch(() => {});
  };
  const start = () => {
    since = Date.now();
    send(0, false);
  };
  const report = (keepalive = false) => {
    if (!since) return;
    const seconds = Math.min(PRESENCE_MAX_S, (Date.now() - since) / 1000);
    since = document.visibilityState === "visible" ? Date.now() : 0;
    if (seconds < 1) return;
    send(seconds, keepalive);
  };
  if (document.visibilityState === "visible") start();
  window.setInterval(() => report(), PRESENCE_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") start();
    else report(true);
  });
  window.addEventListener("pagehide", () => report(true));
}

async function main() {
  const who = await initShell();
  const writer = canWrite(who);
  /** @type {Composer|null} */
  let composer = null;
  if (writer) {
    composer = new Composer(runId);
    controls = new Controls(runId);
  } else {
    // Viewers read only: the write controls are not in the page at all.
    byId("composer").remove();
    byId("controls").remove();
  }
  const view = new Timeline(byId("timeline"), byId("jump-latest"), {
    canWrite: writer,
    onPickStep: (step) => composer?.setDrift(step),
    onLabel: async (step, verdict, reason) => {
      await api(`${base}/labels`, { method: "POST", body: { step, verdict, reason } });
    },
    onGuidanceState: (id, state, words) => composer?.track(id, state, words),
    onRendered: renderStep,
  });
  timeline = view;
  await refresh();
  /** @type {Record<string, (ev: MessageEvent) => void>} */
  const handlers = {};
  for (const kind of KINDS) {
    handlers[kind] = (message) => {
      view.add(JSON.parse(message.data));
      scheduleRefresh();
    };
  }
  // A stream reopened after the browser gave up resumes where the timeline is; duplicates
  // (Last-Event-ID and ?after= disagreeing) are dropped by the timeline.
  openStream(() => `${base}/stream${view.lastSeq ? `?after=${view.lastSeq}` : ""}`,
    handlers);
  // Working time left and idle signals move without events, too.
  window.setInterval(scheduleRefresh, 20_000);
  if (writer) initPresence();
}

main();
