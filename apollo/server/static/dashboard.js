/**
 * The runs dashboard: one row per run, kept live from `GET /api/stream`.
 *
 * Built to stay fast with thousands of runs: stream updates are collected and applied once
 * per animation frame, a row is only touched when its summary changed, and only the cells
 * whose shown text changed are rewritten. The row order is recomputed per frame but the DOM
 * is only reordered when the order actually changed, so a busy stream does not reflow the
 * whole table. The default order (attention first, then newest) changes rarely, so rows do
 * not jump under the reader's eyes.
 *
 * The totals row is the API's own (`GET /api/runs` totals for the same filters), fetched at
 * most every TOTALS_MS: a rate over many runs is not a sum of per-run rates.
 */

import { api, canWrite } from "./api.js";
import { append, byId, el, link, replace, text } from "./dom.js";
import { ATTENTION_LABELS, clock, count, decimal, duration } from "./format.js";
import { initShell, openStream, say } from "./shell.js";

/**
 * @typedef {{interventions: number, interventions_per_hour: number, annotator_seconds: number,
 *   prompt_tokens: number, completion_tokens: number, wall_s: number, work_s: number}} Cost
 * @typedef {{id: string, task: string, status: string, step: number,
 *   max_steps: number|null, created: number, updated: number, working_time_left_s: number|null,
 *   last_score: number|null, guidance_count: number, guidance_queued: number,
 *   attention: {kind: string, detail: string}[], cost: Cost}} RunSummary
 * @typedef {{run: RunSummary, tr: HTMLTableRowElement, shown: string[], json: string}} Row
 */

/** Sort keys of the header cells → the value a run sorts by. */
const SORT_VALUE = {
  id: (/** @type {RunSummary} */ r) => r.id,
  task: (r) => r.task,
  status: (r) => r.status,
  step: (r) => r.step,
  time_left: (r) => r.working_time_left_s ?? -1,
  score: (r) => r.last_score ?? -Infinity,
  guidance: (r) => r.guidance_queued * 1e6 + r.guidance_count,
  // Live runs first (an ended run needs nobody), then by how many signals they have.
  attention: (r) => (ENDED.has(r.status) ? 0 : 1 + r.attention.length),
  interventions: (r) => r.cost.interventions,
  per_hour: (r) => r.cost.interventions_per_hour,
  annotator: (r) => r.cost.annotator_seconds,
  tokens: (r) => tokens(r.cost),
  wall: (r) => r.cost.wall_s,
  updated: (r) => r.updated,
};

/** Statuses of runs that have ended (apollo/log/events.py RunStatus). */
const ENDED = new Set(["finished", "stopped", "failed", "timeout"]);
/** The totals row is refetched at most this often. */
const TOTALS_MS = 1000;

/** Column keys in table order; each row has one cell per key. */
const COLUMNS = Object.keys(SORT_VALUE);

/** @type {Map<string, Row>} */
const rows = new Map();
/** Runs whose summary arrived since the last frame. @type {Map<string, RunSummary>} */
const pending = new Map();
let sortKey = "attention";
let sortDesc = true;
let frame = 0;
/** The ids in the order the table body shows them. @type {string[]} */
let shownOrder = [];
/** Guidance queued / total over the shown runs (plain counts: they add up). */
let shownGuidance = { queued: 0, total: 0 };
let totalsTimer = 0;
let totalsAsked = 0;
let totalsAsk = 0;

const body = byId("runs-body");
const filterText = /** @type {HTMLInputElement} */ (byId("filter-text"));
const filterStatus = /** @type {HTMLSelectElement} */ (byId("filter-status"));
const filterTask = /** @type {HTMLSelectElement} */ (byId("filter-task"));
const filterAttention = /** @type {HTMLInputElement} */ (byId("filter-attention"));

/** @param {Cost} c */
function tokens(c) {
  return (c.prompt_tokens ?? 0) + (c.completion_tokens ?? 0);
}

/**
 * Queues a run summary for the next frame (later summaries of one run replace earlier ones).
 * @param {RunSummary} run
 */
function receive(run) {
  pending.set(run.id, run);
  frame ||= requestAnimationFrame(flush);
}

/** Applies what arrived since the last frame, then filter, order and totals. */
function flush() {
  frame = 0;
  for (const run of pending.values()) upsert(run);
  pending.clear();
  layout();
}

/**
 * Creates or updates one row; unchanged summaries cost one string comparison.
 * @param {RunSummary} run
 */
function upsert(run) {
  const json = JSON.stringify(run);
  let row = rows.get(run.id);
  if (row && row.json === json) return;
  if (!row) {
    const tr = /** @type {HTMLTableRowElement} */ (el("tr", { "data-id": run.id }));
    for (let i = 0; i < COLUMNS.length; i++) tr.appendChild(document.createElement("td"));
    row = { run, tr, shown: [], json: "" };
    rows.set(run.id, row);
    addTaskOption(run.task);
  }
  row.run = run;
  row.json = json;
  row.tr.dataset.status = run.status;
  row.tr.classList.toggle("attention", run.attention.length > 0);
  COLUMNS.forEach((key, i) => {
    const [signature, build] = cell(key, run);
    if (row.shown[i] === signature) return;
    row.shown[i] = signature;
    const td = /** @type {HTMLTableCellElement} */ (row.tr.cells[i]);
    td.className = CELL_CLASS[key] ?? "";
    replace(td, build());
  });
}

/** Classes of the cells, by column (numbers align right, in tabular figures). */
const CELL_CLASS = {
  id: "mono", step: "num", time_left: "num", score: "num", guidance: "num",
  interventions: "num", per_hour: "num", annotator: "num", tokens: "num", wall: "num",
  updated: "num muted",
};

/**
 * What a cell shows: a signature (to skip unchanged cells) and a builder for its content.
 * @param {string} key
 * @param {RunSummary} r
 * @returns {[string, () => Node]}
 */
function cell(key, r) {
  switch (key) {
    case "id":
      return [r.id, () => link("run", r.id, r.id)];
    case "task":
      return [r.task, () => text(r.task)];
    case "status":
      return [r.status, () => el("span", { class: `badge status-${safeClass(r.status)}` }, r.status)];
    case "step": {
      const sig = `${r.step}/${r.max_steps}`;
      return [sig, () => {
        const wrap = el("span", { class: "stepcell" }, el("span", {}, String(r.step)),
          el("span", { class: "muted" }, ` / ${r.max_steps ?? "—"}`));
        if (r.max_steps) {
          append(wrap, el("progress", { value: Math.min(r.step, r.max_steps), max: r.max_steps }));
        }
        return wrap;
      }];
    }
    case "time_left": {
      const s = duration(r.working_time_left_s);
      return [s, () => text(s)];
    }
    case "score": {
      const s = decimal(r.last_score);
      return [s, () => text(s)];
    }
    case "guidance":
      return [`${r.guidance_queued}/${r.guidance_count}`, () => el("span",
        { class: r.guidance_queued > 0 ? "queued" : "", title: "queued / total" },
        `${r.guidance_queued} / ${r.guidance_count}`)];
    case "attention":
      return [JSON.stringify(r.attention), () => {
        const box = el("span", { class: "badges" });
        for (const a of r.attention) {
          append(box, el("span", { class: `badge attn attn-${safeClass(a.kind)}`, title: a.detail },
            ATTENTION_LABELS[a.kind] ?? a.kind));
        }
        return box;
      }];
    default: {
      const s = plainCell(key, r);
      return [s, () => text(s)];
    }
  }
}

/**
 * The text of the purely numeric columns.
 * @param {string} key
 * @param {RunSummary} r
 */
function plainCell(key, r) {
  const c = r.cost;
  switch (key) {
    case "interventions": return String(c.interventions);
    case "per_hour": return decimal(c.interventions_per_hour);
    case "annotator": return duration(c.annotator_seconds);
    case "tokens": return count(tokens(c));
    case "wall": return duration(c.wall_s);
    case "updated": return clock(r.updated);
    default: return "";
  }
}

/**
 * A value reduced to what is safe in a class name (statuses and kinds come from the server).
 * @param {string} value
 */
function safeClass(value) {
  return String(value).replace(/[^a-z0-9_-]/gi, "_");
}

/**
 * Adds a task to the task filter the first time it is seen.
 * @param {string} task
 */
function addTaskOption(task) {
  if ([...filterTask.options].some((o) => o.value === task)) return;
  filterTask.appendChild(el("option", { value: task }, task));
}

/**
 * Whether a run passes the filters.
 * @param {RunSummary} r
 * @param {string} needle lower-case filter text
 */
function matches(r, needle) {
  if (filterStatus.value && r.status !== filterStatus.value) return false;
  if (filterTask.value && r.task !== filterTask.value) return false;
  if (filterAttention.checked && (ENDED.has(r.status) || r.attention.length === 0)) return false;
  if (!needle) return true;
  return `${r.id} ${r.task} ${r.status}`.toLowerCase().includes(needle);
}

/** Filters and orders the rows, touching the DOM only when the shown order changed. */
function layout() {
  const needle = filterText.value.trim().toLowerCase();
  const value = SORT_VALUE[sortKey];
  const shown = [...rows.values()].filter((row) => matches(row.run, needle));
  shown.sort((a, b) => {
    const x = value(a.run);
    const y = value(b.run);
    const order = x < y ? -1 : x > y ? 1 : b.run.created - a.run.created;
    return sortDesc && x !== y ? -order : order;
  });
  const order = shown.map((row) => row.run.id);
  if (order.length !== shownOrder.length || order.some((id, i) => id !== shownOrder[i])) {
    const fragment = document.createDocumentFragment();
    for (const row of shown) fragment.appendChild(row.tr);
    body.replaceChildren(fragment);
    shownOrder = order;
  }
  byId("runs-empty").hidden = rows.size > 0;
  byId("shown-count").textContent =
    shown.length === rows.size ? `${rows.size} runs` : `${shown.length} of ${rows.size} runs`;
  shownGuidance = { queued: 0, total: 0 };
  for (const row of shown) {
    shownGuidance.queued += row.run.guidance_queued;
    shownGuidance.total += row.run.guidance_count;
  }
  scheduleTotals();
}

/** Refetches the totals soon (coalescing bursts of changes into one request). */
function scheduleTotals() {
  if (totalsTimer) return;
  const wait = Math.max(0, totalsAsked + TOTALS_MS - Date.now());
  totalsTimer = window.setTimeout(loadTotals, wait);
}

/** The API's totals over the runs the filters show (so filtering by task gives its cost). */
async function loadTotals() {
  totalsTimer = 0;
  totalsAsked = Date.now();
  const ask = ++totalsAsk;
  const params = new URLSearchParams({ limit: "1" });
  const needle = filterText.value.trim();
  if (needle) params.set("q", needle);
  if (filterStatus.value) params.set("status", filterStatus.value);
  if (filterTask.value) params.set("task", filterTask.value);
  if (filterAttention.checked) params.set("attention", "true");
  /** @type {(Cost & {runs: number})|null} */
  let totals = null;
  try {
    totals = (await api(`/api/runs?${params}`)).totals;
  } catch {
    totals = null; // a filter the API refuses (too long, say): no totals rather than wrong ones
  }
  if (ask === totalsAsk) renderTotals(totals);
}

/**
 * The totals row: the API's totals, and the guidance counts of the shown rows.
 * @param {(Cost & {runs: number})|null} t
 */
function renderTotals(t) {
  const tr = el("tr", {},
    el("th", { colspan: 6, class: "totals-label" }, `Totals · ${t ? t.runs : "—"} runs`),
    el("td", { class: "num" }, `${shownGuidance.queued} / ${shownGuidance.total}`),
    el("td", {}),
    el("td", { class: "num" }, t ? String(t.interventions) : "—"),
    el("td", { class: "num", title: "interventions per hour of working time, over all these runs" },
      decimal(t?.interventions_per_hour)),
    el("td", { class: "num" }, duration(t?.annotator_seconds)),
    el("td", { class: "num" }, t ? count(tokens(t)) : "—"),
    el("td", { class: "num" }, duration(t?.wall_s)),
    el("td", {}));
  replace(byId("runs-totals"), tr);
}

/** Header buttons sort; a second click on the same column reverses the order. */
function initSorting() {
  for (const th of byId("runs").querySelectorAll("thead th")) {
    const key = /** @type {HTMLElement} */ (th).dataset.key ?? "";
    th.querySelector("button")?.addEventListener("click", () => {
      sortDesc = sortKey === key ? !sortDesc : !["id", "task", "status"].includes(key);
      sortKey = key;
      markSorted();
      layout();
    });
  }
  markSorted();
}

/** Shows the sort column and direction (aria-sort, also styled). */
function markSorted() {
  for (const th of byId("runs").querySelectorAll("thead th")) {
    const header = /** @type {HTMLElement} */ (th);
    if (header.dataset.key !== sortKey) header.removeAttribute("aria-sort");
    else header.setAttribute("aria-sort", sortDesc ? "descending" : "ascending");
  }
}

/** Filters apply as the user types; "/" jumps to the text filter. */
function initFilters() {
  for (const input of [filterText, filterStatus, filterTask, filterAttention]) {
    input.addEventListener("input", layout);
  }
  document.addEventListener("keydown", (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (event.key === "/" && !["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) {
      event.preventDefault();
      filterText.focus();
    }
  });
}

/**
 * The "start run" form, for annotators and admins.
 * @param {{id: string, title: string}[]} tasks
 */
async function initStartForm(tasks) {
  const toggle = byId("start-toggle");
  const form = /** @type {HTMLFormElement} */ (byId("start-form"));
  const status = byId("start-status");
  const select = byId("start-task");
  for (const t of tasks) select.appendChild(el("option", { value: t.id }, `${t.id} — ${t.title}`));
  // Runs use the embedded model or an endpoint an admin configured, never a typed URL.
  const models = byId("start-model");
  try {
    const { endpoints } = await api("/api/endpoints");
    for (const e of endpoints) {
      models.appendChild(el("option", { value: e.name }, `${e.name} — ${e.model_name}`));
    }
  } catch (err) {
    say(status, `Only the embedded model: ${err.message}`, "error");
  }
  toggle.hidden = false;
  toggle.addEventListener("click", () => {
    form.hidden = !form.hidden;
    toggle.setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) select.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    /** @type {Record<string, unknown>} */
    const payload = {
      task: data.get("task"),
      model: data.get("model"),
      annotator: data.get("simulated") ? "simulated" : "none",
    };
    const maxSteps = String(data.get("max_steps")).trim();
    if (maxSteps) payload.max_steps = Number(maxSteps);
    say(status, "Starting…");
    try {
      const { id, state } = await api("/api/runs", { method: "POST", body: payload });
      replace(status, state === "queued" ? "Queued " : "Started ", link("run", id, id),
        state === "queued" ? " (it starts when a slot frees)" : "");
      status.dataset.tone = "ok";
    } catch (err) {
      say(status, `Not started: ${err.message}`, "error");
    }
  });
}

async function main() {
  const who = await initShell();
  initSorting();
  initFilters();
  const [tasks, list] = await Promise.all([api("/api/tasks"), api("/api/runs")]);
  for (const t of tasks.tasks) addTaskOption(t.id);
  if (canWrite(who)) await initStartForm(tasks.tasks);
  else byId("start-form").remove();
  for (const run of list.runs) receive(run);
  openStream(() => "/api/stream", {
    run: (event) => receive(JSON.parse(event.data)),
  });
}

main();
