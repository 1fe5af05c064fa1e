/**
 * The guidance composer and the run controls of the run view.
 *
 * Guidance is asynchronous: posting only queues it, and the agent reads it at its next step.
 * The composer says so plainly and then follows that one message through its states
 * (queued → delivered at step N, or cancelled), so the annotator never has to wonder whether
 * the agent got it.
 */

import { api } from "./api.js";
import { byId } from "./dom.js";
import { say } from "./shell.js";

export class Composer {
  /** @param {string} runId */
  constructor(runId) {
    this.runId = runId;
    this.form = /** @type {HTMLFormElement} */ (byId("guidance-form"));
    this.textArea = /** @type {HTMLTextAreaElement} */ (byId("guidance-text"));
    this.status = byId("guidance-status");
    /** @type {number|null} */
    this.driftStep = null;
    /** The guidance this composer sent last, whose state it reports. */
    this.sentId = "";
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.textArea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.send();
      }
    });
    byId("drift-clear").addEventListener("click", () => this.setDrift(null));
    byId("composer").hidden = false;
  }

  /**
   * Sets or clears "drifted since step N" (picked by clicking a step in the timeline).
   * @param {number|null} step
   */
  setDrift(step) {
    this.driftStep = step;
    byId("drift").hidden = step === null;
    byId("drift-label").textContent = step === null ? "" : `drifted since step ${step}`;
    if (step !== null) this.textArea.focus();
  }

  async send() {
    const text = this.textArea.value.trim();
    if (!text) {
      say(this.status, "Write the guidance first.", "error");
      this.textArea.focus();
      return;
    }
    const kind = /** @type {HTMLSelectElement} */ (byId("guidance-kind")).value;
    const urgentBox = /** @type {HTMLInputElement} */ (byId("guidance-urgent"));
    /** @type {Record<string, unknown>} */
    const body = { text, kind, urgent: urgentBox.checked };
    if (this.driftStep !== null) body.drift_from_step = this.driftStep;
    const button = /** @type {HTMLButtonElement} */ (byId("guidance-send"));
    button.disabled = true;
    say(this.status, "Sending…");
    try {
      const result = await api(`/api/runs/${encodeURIComponent(this.runId)}/guidance`,
        { method: "POST", body });
      this.sentId = String(result.id);
      say(this.status, "Queued: the agent receives it at its next step.", "info");
      this.textArea.value = "";
      urgentBox.checked = false;
      this.setDrift(null);
    } catch (err) {
      say(this.status, `Not sent: ${err.message}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  /**
   * Follows the state of the guidance sent last (called for every guidance state change).
   * @param {string} id
   * @param {string} state
   * @param {string} words
   */
  track(id, state, words) {
    if (id !== this.sentId || state === "queued") return;
    say(this.status, `Your guidance was ${words}.`, state === "delivered" ? "ok" : "error");
  }
}

export class Controls {
  /** @param {string} runId */
  constructor(runId) {
    this.runId = runId;
    this.status = byId("ctl-status");
    this.pause = /** @type {HTMLButtonElement} */ (byId("ctl-pause"));
    this.resume = /** @type {HTMLButtonElement} */ (byId("ctl-resume"));
    this.stop = /** @type {HTMLButtonElement} */ (byId("ctl-stop"));
    this.stopArmed = 0;
    this.pause.addEventListener("click", () => this.send("pause"));
    this.resume.addEventListener("click", () => this.send("resume"));
    this.stop.addEventListener("click", () => this.armStop());
    byId("controls").hidden = false;
  }

  /**
   * Enables what makes sense for the run's status.
   * @param {string} status
   */
  update(status) {
    const ended = ["finished", "stopped", "failed", "timeout"].includes(status);
    this.pause.disabled = ended || status === "paused";
    this.resume.disabled = ended || status !== "paused";
    this.stop.disabled = ended;
  }

  /** Stop ends the run for good: the first click arms it, a second within 4 s sends it. */
  armStop() {
    if (this.stopArmed) {
      clearTimeout(this.stopArmed);
      this.disarm();
      this.send("stop");
      return;
    }
    this.stop.textContent = "Confirm stop";
    this.stop.classList.add("armed");
    this.stopArmed = window.setTimeout(() => this.disarm(), 4000);
  }

  disarm() {
    this.stopArmed = 0;
    this.stop.textContent = "Stop";
    this.stop.classList.remove("armed");
  }

  /** @param {"pause"|"resume"|"stop"} action */
  async send(action) {
    try {
      await api(`/api/runs/${encodeURIComponent(this.runId)}/control`,
        { method: "POST", body: { action } });
      const when = action === "stop" ? "the run stops at its next step boundary"
        : `takes effect at the next step boundary`;
      say(this.status, `${action[0].toUpperCase()}${action.slice(1)} sent: ${when}.`, "ok");
    } catch (err) {
      say(this.status, `${action} failed: ${err.message}`, "error");
    }
  }
}
