/**
 * The run timeline: the run's log, event by event, grouped into step cards.
 *
 * It is a pure function of the events it is given (in `seq` order), so a reconnect that
 * resumes the stream extends it without any second source of truth. Events arrive in bursts
 * (thousands when a long run is opened), so they are queued and rendered once per frame.
 * All text goes through dom.js: nothing from the log is ever parsed as HTML.
 */

import { append, el, replace } from "./dom.js";
import { clock, decimal, duration } from "./format.js";

/** Observations longer than this many lines or characters start collapsed. */
const COLLAPSE_LINES = 14;
const COLLAPSE_CHARS = 1600;

/**
 * @typedef {{seq: number, ts: number, kind: string, actor: string, step: number|null,
 *   payload: Record<string, any>}} EventView
 * @typedef {{canWrite: boolean, onPickStep: (step: number) => void,
 *   onLabel: (step: number, verdict: string, reason: string) => Promise<void>,
 *   onGuidanceState: (id: string, state: string, detail: string) => void,
 *   onRendered: () => void}} TimelineHooks
 */

export class Timeline {
  /**
   * @param {HTMLElement} root the scrolling container
   * @param {HTMLElement} jump the "new events below" button
   * @param {TimelineHooks} hooks
   */
  constructor(root, jump, hooks) {
    this.root = root;
    this.jump = jump;
    this.hooks = hooks;
    /** @type {EventView[]} */
    this.queue = [];
    this.frame = 0;
    this.lastSeq = 0;
    /** The highest step shown (the run header shows the same). */
    this.latestStep = 0;
    /** Step cards by step number. @type {Map<number, HTMLElement>} */
    this.steps = new Map();
    /** Guidance cards by guidance id. @type {Map<string, HTMLElement>} */
    this.guidance = new Map();
    /** Labels that arrived before their step's card. @type {Map<number, EventView[]>} */
    this.earlyLabels = new Map();
    /** The label form currently open, if any. @type {HTMLElement|null} */
    this.labelForm = null;
    this.unseen = 0;
    root.addEventListener("scroll", () => {
      if (this.atBottom()) this.clearUnseen();
    });
    jump.addEventListener("click", () => {
      root.scrollTop = root.scrollHeight;
      this.clearUnseen();
    });
  }

  /**
   * Queues an event; duplicates (a resumed stream overlapping what we have) are dropped.
   * @param {EventView} event
   */
  add(event) {
    if (event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    this.queue.push(event);
    this.frame ||= requestAnimationFrame(() => this.flush());
  }

  /** Renders the queued events; keeps following the end if the reader was there. */
  flush() {
    this.frame = 0;
    const follow = this.atBottom();
    const events = this.queue;
    this.queue = [];
    this.root.querySelector(":scope > .empty")?.remove(); // the "waiting" placeholder
    for (const event of events) this.render(event);
    if (follow) this.root.scrollTop = this.root.scrollHeight;
    else {
      this.unseen += events.length;
      this.jump.hidden = false;
      this.jump.textContent = `↓ ${this.unseen} new`;
    }
    this.hooks.onRendered();
  }

  atBottom() {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < 80;
  }

  clearUnseen() {
    this.unseen = 0;
    this.jump.hidden = true;
  }

  /**
   * One event into the DOM.
   * @param {EventView} ev
   */
  render(ev) {
    const p = ev.payload ?? {};
    switch (ev.kind) {
      case "run_started":
        this.note(ev, "start", "Run started", ` · task ${p.task ?? "?"} · model ${p.model ?? "?"}`);
        break;
      case "run_resumed":
        this.note(ev, "resume", "Resumed",
          (p.sessions ?? []).length ? ` · sessions reattached: ${p.sessions.join(", ")}` : "");
        break;
      case "model_call":
        this.modelCall(ev, p);
        break;
      case "model_retry":
        this.put(ev, entry("warn", "model", retryText(p)));
        break;
      case "observation":
        this.observation(ev, p);
        break;
      case "guidance":
        this.guidanceCard(ev, p);
        break;
      case "guidance_delivered":
        this.delivered(ev, p);
        break;
      case "guidance_cancelled":
        this.setGuidanceState(String(p.guidance_id), "cancelled", `cancelled: ${p.reason ?? ""}`);
        break;
      case "summary":
        this.summary(ev, p);
        break;
      case "control":
        this.note(ev, `control control-${p.action}`, CONTROL_WORDS[p.action] ?? String(p.action),
          ` by ${p.author ?? ev.actor}`);
        break;
      case "label":
        this.label(ev);
        break;
      case "submission":
        this.submission(ev, p);
        break;
      case "annotator_decision":
        this.note(ev, `decision decision-${p.outcome}`,
          `${p.annotator ?? ev.actor} looked at step ${p.step}: `
            + (DECISION_WORDS[p.outcome] ?? String(p.outcome)),
          p.reason ? ` · ${p.reason}` : "");
        break;
      case "run_finished":
        this.note(ev, `finished finished-${p.status}`, `Run ${p.status}`,
          p.reason ? ` · ${p.reason}` : "");
        break;
      default:
        break; // presence and kinds this console does not show
    }
  }

  /**
   * The card of a step, created on its first event.
   * @param {number} step
   * @param {number} ts
   */
  stepCard(step, ts) {
    let card = this.steps.get(step);
    if (card) return card;
    const number = this.hooks.canWrite
      ? el("button", { type: "button", class: "step-no", title: "Mark: drifted since this step" },
        `Step ${step}`)
      : el("span", { class: "step-no" }, `Step ${step}`);
    if (this.hooks.canWrite) number.addEventListener("click", () => this.hooks.onPickStep(step));
    const header = el("header", {}, number, el("time", { class: "muted" }, clock(ts)),
      el("span", { class: "labels" }));
    if (this.hooks.canWrite) {
      const open = el("button", { type: "button", class: "btn btn-small label-open" }, "Label…");
      open.addEventListener("click", () => this.openLabelForm(step, card));
      append(header, open);
    }
    card = el("article", { class: "step", "data-step": step }, header, el("div", { class: "body" }));
    this.steps.set(step, card);
    this.latestStep = Math.max(this.latestStep, step);
    this.root.appendChild(card);
    for (const label of this.earlyLabels.get(step) ?? []) this.label(label);
    this.earlyLabels.delete(step);
    return card;
  }

  /**
   * Appends an entry to a step's card (or to the timeline when it has no step).
   * @param {EventView} ev
   * @param {HTMLElement} node
   */
  put(ev, node) {
    if (ev.step === null || ev.step === undefined) this.root.appendChild(node);
    else this.stepCard(ev.step, ev.ts).querySelector(".body")?.appendChild(node);
  }

  /**
   * A one-line note (start, control, end).
   * @param {EventView} ev
   * @param {string} cls
   * @param {string} title
   * @param {string} rest
   */
  note(ev, cls, title, rest) {
    this.root.appendChild(el("div", { class: `note ${cls}` }, el("strong", {}, title), rest,
      el("time", { class: "muted" }, clock(ev.ts))));
  }

  /**
   * Thought and actions of an act call; failures and cancellations of any call.
   * @param {EventView} ev
   * @param {Record<string, any>} p
   */
  modelCall(ev, p) {
    if (p.cancelled) {
      this.put(ev, entry("warn", "model",
        "Model call cancelled: urgent guidance arrived, the step restarts with it"));
      return;
    }
    if (p.error) {
      this.put(ev, entry("error", "model",
        `${p.purpose === "summarize" ? "Summary" : "Model"} call failed: ${p.error}`));
      return;
    }
    if (p.purpose !== "act") return; // summaries show as their own event
    const message = p.message ?? {};
    if (message.reasoning_content) {
      this.put(ev, entry("reasoning", "reasoning", el("details", {},
        el("summary", {}, firstLine(message.reasoning_content)),
        el("div", { class: "prose" }, message.reasoning_content))));
    }
    if (message.content) {
      this.put(ev, entry("thought", "thought", el("div", { class: "prose" }, message.content)));
    }
    for (const call of message.tool_calls ?? []) {
      const fn = call.function ?? call;
      this.put(ev, entry("action", "action", el("code", { class: "tool" }, fn.name ?? "?"),
        collapsible(prettyArgs(fn.arguments), "args")));
    }
    if (p.parse_error) {
      this.put(ev, entry("warn", "parse", p.parse_error));
    }
  }

  /**
   * A tool result: tool, exit, duration; long outputs collapsed and expandable.
   * @param {EventView} ev
   * @param {Record<string, any>} p
   */
  observation(ev, p) {
    const meta = [p.tool ?? (p.malformed ? "no tool call" : "?")];
    if (p.exit !== undefined && p.exit !== null) meta.push(`exit ${p.exit}`);
    if (typeof p.duration_ms === "number") {
      meta.push(p.duration_ms < 1000 ? `${Math.round(p.duration_ms)} ms` : duration(p.duration_ms / 1000));
    }
    if (p.truncated) meta.push("output capped");
    if (p.interrupted) meta.push("interrupted by a restart");
    const [output, footer] = splitFooter(String(p.content ?? ""));
    this.put(ev, entry(p.error ? "observation error" : "observation", "observation",
      el("div", { class: "meta" }, meta.join(" · ")), collapsible(output, "output", footer)));
  }

  /**
   * A guidance card with its delivery state, updated in place later.
   * @param {EventView} ev
   * @param {Record<string, any>} p
   */
  guidanceCard(ev, p) {
    const id = String(p.id);
    const state = el("span", { class: "state badge" }, "queued");
    const card = el("article", { class: "guidance", "data-id": id, "data-state": "queued" },
      el("header", {}, tag("guidance"), el("span", { class: "badge kind" }, p.kind ?? "other"),
        p.urgent ? el("span", { class: "badge urgent" }, "urgent") : null,
        el("span", { class: "author" }, p.author ?? ev.actor),
        Number.isInteger(p.drift_from_step)
          ? el("span", { class: "muted" }, `drifted since step ${p.drift_from_step}`) : null,
        el("time", { class: "muted" }, clock(ev.ts)), state),
      el("div", { class: "prose" }, p.text ?? ""));
    this.guidance.set(id, card);
    this.root.appendChild(card);
    this.hooks.onGuidanceState(id, "queued", "queued");
  }

  /**
   * Marks guidance delivered, and shows where the agent received it.
   * @param {EventView} ev
   * @param {Record<string, any>} p
   */
  delivered(ev, p) {
    const id = String(p.guidance_id);
    this.setGuidanceState(id, "delivered", `delivered at step ${p.step}`);
    const card = this.guidance.get(id);
    const preview = card?.querySelector(".prose")?.textContent ?? "";
    this.put(ev, entry("delivered", "guidance",
      `delivered to the agent: ${preview.length > 90 ? `${preview.slice(0, 90)}…` : preview}`));
  }

  /**
   * @param {string} id
   * @param {"queued"|"delivered"|"cancelled"} state
   * @param {string} words
   */
  setGuidanceState(id, state, words) {
    const card = this.guidance.get(id);
    if (card) {
      card.dataset.state = state;
      const badge = card.querySelector(".state");
      if (badge) badge.textContent = words;
    }
    this.hooks.onGuidanceState(id, state, words);
  }

  /**
   * A summary: which steps it condensed, its text collapsed.
   * @param {EventView} ev
   * @param {Record<string, any>} p
   */
  summary(ev, p) {
    const [first, last] = p.covers ?? ["?", "?"];
    this.root.appendChild(el("article", { class: "summary" },
      el("header", {}, tag("summary"), `Steps ${first}–${last} condensed`,
        el("time", { class: "muted" }, clock(ev.ts))),
      collapsible(p.text ?? "", "summary")));
  }

  /**
   * A submission and its score.
   * @param {EventView} ev
   * @param {Record<string, any>} p
   */
  submission(ev, p) {
    const score = p.score === null || p.score === undefined ? "not scored" : `score ${decimal(p.score)}`;
    const details = p.details && Object.keys(p.details).length
      ? collapsible(JSON.stringify(p.details, null, 2), "details") : null;
    this.put(ev, entry(p.score === null ? "submission error" : "submission",
      p.final ? "final score" : "submission",
      el("div", {}, el("strong", {}, `#${p.n} · ${score}`), p.error ? ` · ${p.error}` : "",
        p.note ? ` · ${p.note}` : ""), details));
  }

  /**
   * A label chip in its step's header.
   * @param {EventView} ev
   */
  label(ev) {
    const p = ev.payload;
    const step = Number(p.step);
    const card = this.steps.get(step);
    if (!card) {
      this.earlyLabels.set(step, [...(this.earlyLabels.get(step) ?? []), ev]);
      return;
    }
    const who = p.source === "human" ? p.author ?? ev.actor : p.source;
    card.querySelector(".labels")?.appendChild(el("span",
      { class: `badge verdict verdict-${p.verdict === "mask" ? "mask" : "keep"}`,
        title: `${p.verdict} by ${who}: ${p.reason ?? ""}` },
      `${p.verdict} · ${p.reason || "no reason"} · ${who}`));
    card.classList.toggle("masked", p.verdict === "mask");
  }

  /**
   * The inline keep / mask form of a step (one open at a time).
   * @param {number} step
   * @param {HTMLElement|undefined} card
   */
  openLabelForm(step, card) {
    this.labelForm?.remove();
    if (!card) return;
    const reason = el("input", { type: "text", class: "reason", placeholder: "Reason (required)",
      "aria-label": `Reason for the label of step ${step}`, maxlength: 2000 });
    const status = el("span", { class: "status-line", role: "status" });
    const keep = el("button", { type: "submit", class: "btn btn-small btn-keep", value: "keep" }, "Keep");
    const mask = el("button", { type: "submit", class: "btn btn-small btn-mask", value: "mask" }, "Mask");
    const cancel = el("button", { type: "button", class: "btn btn-small btn-quiet" }, "Cancel");
    const form = el("form", { class: "label-form" }, reason, keep, mask, cancel, status);
    cancel.addEventListener("click", () => form.remove());
    form.addEventListener("keydown", (event) => {
      if (/** @type {KeyboardEvent} */ (event).key === "Escape") form.remove();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const verdict = /** @type {HTMLButtonElement} */ (/** @type {SubmitEvent} */ (event).submitter)?.value;
      const why = /** @type {HTMLInputElement} */ (reason).value.trim();
      if (!why) {
        status.textContent = "Say why.";
        reason.focus();
        return;
      }
      try {
        await this.hooks.onLabel(step, verdict ?? "keep", why);
        form.remove();
      } catch (err) {
        status.textContent = `Not saved: ${err.message}`;
      }
    });
    card.querySelector("header")?.after(form);
    this.labelForm = form;
    reason.focus();
  }
}

/** Words for control actions in the timeline. */
const CONTROL_WORDS = { pause: "Paused", resume: "Resumed", stop: "Stop requested" };
/** What an LLM annotator decided (annotator_decision outcomes, docs/api.md). */
const DECISION_WORDS = {
  posted: "posted a hint",
  no_intervention: "no intervention",
  refused: "its hint was refused",
  unparseable: "no decision in its answer",
  model_error: "its model failed",
};

/**
 * A failed model attempt about to be made again, as `apollo show` says it
 * (apollo/rollout/progress.py): "Model not answering for 2m 05s: retry 3 of 5 in 4s · …".
 * @param {Record<string, any>} p a model_retry payload
 */
function retryText(p) {
  const of = p.max_attempts
    ? ` of ${p.max_attempts - 1}`
    : ` (gives up after ${duration(p.window_s)})`;
  const what = p.purpose === "summarize" ? "Summary model" : "Model";
  return `${what} not answering for ${duration(p.since_s)}: retry ${p.attempt}${of} ` +
    `in ${duration(p.delay_s)} · ${p.error ?? ""}`;
}

/**
 * An entry of a step: a kind tag in the left column, its content in the right one.
 * @param {string} cls extra classes
 * @param {string} kind the tag's word
 * @param {...(Node|string|null)} content
 */
function entry(cls, kind, ...content) {
  return el("div", { class: `entry ${cls}` }, tag(kind), el("div", { class: "content" }, ...content));
}

/**
 * A small kind tag at the start of an entry.
 * @param {string} name
 */
function tag(name) {
  return el("span", { class: "tag" }, name);
}

/**
 * The first line of a text, shortened, for a collapsed heading.
 * @param {string} s
 */
function firstLine(s) {
  const line = String(s).split("\n", 1)[0];
  return line.length > 100 ? `${line.slice(0, 100)}…` : line;
}

/** Arguments whose one-line JSON is at most this long stay on one line. */
const ONE_LINE_ARGS = 110;

/**
 * Tool-call arguments as JSON when they parse (one line when short, so a step stays
 * compact; indented when long), else exactly as the model sent them.
 * @param {unknown} args
 */
function prettyArgs(args) {
  let value = args ?? {};
  if (typeof args === "string") {
    try {
      value = JSON.parse(args);
    } catch {
      return args;
    }
  }
  const line = JSON.stringify(value);
  return line.length <= ONE_LINE_ARGS ? line : JSON.stringify(value, null, 2);
}

/** The budget footer the agent reads after every tool result (agent/prompts/footer.txt). */
const FOOTER = /\n\n(\[step \d+\/[^\n]*\])$/;

/**
 * Splits the budget footer off a tool result, so it can be shown dimmed: it repeats on
 * every step and would otherwise drown the output the annotator is reading.
 * @param {string} content
 * @returns {[string, string]}
 */
function splitFooter(content) {
  const match = FOOTER.exec(content);
  return match ? [content.slice(0, match.index), match[1]] : [content, ""];
}

/**
 * Monospace text; long text starts collapsed with a button that expands it.
 * @param {string} body
 * @param {string} what the name of the text, for the button
 * @param {string} [footer] a last line shown dimmed, after the text
 * @returns {HTMLElement}
 */
function collapsible(body, what, footer = "") {
  const s = String(body);
  const lines = s.split("\n").length;
  const pre = el("pre", { class: "out" }, s,
    footer ? el("span", { class: "footer" }, `${s ? "\n" : ""}${footer}`) : null);
  if (lines <= COLLAPSE_LINES && s.length <= COLLAPSE_CHARS) return pre;
  pre.classList.add("collapsed");
  const toggle = el("button", { type: "button", class: "btn btn-small btn-quiet expand",
    "aria-expanded": "false" }, `Show all ${what} (${lines} lines)`);
  toggle.addEventListener("click", () => {
    const open = pre.classList.toggle("collapsed") === false;
    toggle.setAttribute("aria-expanded", String(open));
    replace(toggle, open ? `Collapse ${what}` : `Show all ${what} (${lines} lines)`);
  });
  return el("div", { class: "collapsible" }, pre, toggle);
}
