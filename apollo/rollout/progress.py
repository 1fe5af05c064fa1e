"""One-line renderings of log events, for live progress in a terminal and `apollo show`.

Every line is terminal-safe (`apollo.terminal.safe`): agent output, guidance and names are
shown, never obeyed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from apollo.log import schema
from apollo.log.actions import parse_arguments, strip_footer
from apollo.log.calls import call_output
from apollo.log.events import Event, Kind
from apollo.log.store import Store
from apollo.terminal import safe


def clip(text: str, width: int = 110) -> str:
    """One safe line of at most `width` characters: whitespace runs become one space,
    control characters and bidi overrides are shown as escapes."""
    flat = safe(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def duration(seconds: float) -> str:
    """A short duration: 45s, 2m05s, 1h02m."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def _retry(retry: schema.ModelRetry) -> str:
    """A model_retry line: how long the model has not answered and what happens next."""
    max_attempts = retry["max_attempts"]
    of = (
        f" of {max_attempts - 1}"
        if max_attempts
        else f" (gives up after {duration(retry['window_s'])})"
    )
    what = "model" if retry["purpose"] == "act" else f"model ({retry['purpose']})"
    return (
        f"{what} not answering for {duration(retry['since_s'])}: "
        f"retry {retry['attempt']}{of} in {duration(retry['delay_s'])} · "
        f"{clip(retry['error'], 70)}"
    )


def retry_summary(events: Iterable[Event]) -> str:
    """One line on what failed model attempts cost a run: retries and the time they took."""
    retries = [r for r in map(schema.MODEL_RETRY.of, events) if r is not None]
    spent = sum(r["waited_s"] + r["delay_s"] for r in retries)
    return f"model retries: {len(retries)} ({duration(spent)} spent on failed attempts and waits)"


def short_id(run_id: str) -> str:
    """The random tail of a run id (r20261201-091225-3fa9c2 -> 3fa9c2): enough to tell the
    runs in one terminal apart, and a suffix of the full id the other commands take."""
    return run_id.rsplit("-", 1)[-1] or run_id


def printer(store: Store, prefix: bool = True) -> Callable[[Event], None]:
    """Live progress: a line per event worth one. With `prefix`, each line starts with the
    run's short id, then its task, so runs of one task can be told apart."""
    heads: dict[str, str] = {}

    def show(ev: Event) -> None:
        line = describe(ev, store)
        if not line:
            return
        if prefix:
            if ev.run_id not in heads:
                run = store.get_run(ev.run_id)
                heads[ev.run_id] = safe(f"{short_id(ev.run_id)} {run.task if run else '?'}")
            line = f"{heads[ev.run_id]}  {line}"
        print(line, flush=True)

    return show


def _call_summary(out: dict[str, Any]) -> str:
    calls = out.get("tool_calls") or []
    if not calls:
        return "no tool call: " + clip(out.get("content") or "", 80)
    parts = []
    for c in calls:
        fn = c["function"]
        args = parse_arguments(fn["arguments"])
        if args is None:
            shown = clip(fn["arguments"] or "", 60)
        else:
            shown = ", ".join(f"{k}={clip(str(v), 60)}" for k, v in args.items())
        parts.append(f"{fn['name']}({shown})")
    return "; ".join(parts)


def _started(ev: Event, store: Store) -> str:
    started = schema.RUN_STARTED.payload(ev)
    return f"run started: task {started['task']} · model {started['model']}"


def _resumed(ev: Event, store: Store) -> str:
    resumed = schema.RUN_RESUMED.payload(ev)
    text = f"run resumed · sessions reattached: {', '.join(resumed['sessions']) or 'none'}"
    if resumed["rerun"]:
        text += f" · reads cut by the crash made again: {len(resumed['rerun'])}"
    return text


def _model_call(ev: Event, store: Store) -> str:
    call = schema.MODEL_CALL.payload(ev)
    if call.get("error"):
        return f"model call FAILED: {clip(call['error'], 90)}"
    if call["purpose"] == "summarize":
        return "summarizing the older half of the context"
    return f"→ {_call_summary(call_output(store, call))}"


def _observation(ev: Event, store: Store) -> str:
    obs = schema.OBSERVATION.payload(ev)
    msg = json.loads(store.get_blob(obs["message"]))
    body = strip_footer(str(msg.get("content") or ""))
    flag = "ERROR " if obs["error"] else ""
    return f"← {flag}{obs['tool'] or 'malformed call'}: {clip(body, 90)}"


def _guidance(ev: Event, store: Store) -> str:
    guidance = schema.GUIDANCE.payload(ev)
    return f"guidance queued from {ev.actor} [{guidance['kind']}]: {clip(guidance['text'], 80)}"


def _delivered(ev: Event, store: Store) -> str:
    delivered = schema.GUIDANCE_DELIVERED.payload(ev)
    return f"guidance {delivered['guidance_id']} delivered at step {delivered['step']}"


def _decision(ev: Event, store: Store) -> str:
    d = schema.ANNOTATOR_DECISION.payload(ev)
    said = {"posted": "posted a hint", "no_intervention": "no intervention"}
    what = said.get(d["outcome"], d["outcome"].replace("_", " "))
    return f"{d['annotator']} looked at step {d['step']}: {what} ({clip(d['reason'], 80)})"


def _summary(ev: Event, store: Store) -> str:
    first, last = schema.SUMMARY.payload(ev)["covers"]
    return f"context summarized (steps {first}-{last} condensed)"


def _control(ev: Event, store: Store) -> str:
    return f"control: {schema.CONTROL.payload(ev)['action']} by {ev.actor}"


def _submission(ev: Event, store: Store) -> str:
    sub = schema.SUBMISSION.payload(ev)
    what = "final score" if sub["final"] else f"submission {sub['n']}"
    if sub["score"] is not None:
        return f"{what}: {sub['score']:g}"
    if sub["status"] == "evaluator_error":
        return f"{what}: none, the EVALUATOR FAILED: {clip(str(sub['error']), 90)}"
    return f"{what}: error: {clip(str(sub['error']), 90)}"


def _sessions_closed(ev: Event, store: Store) -> str:
    closed = [
        f"{c['id']} ({c['new_bytes']} bytes{', killed' if c['killed'] else ''})"
        for c in schema.SESSIONS_CLOSED.payload(ev)["sessions"]
    ]
    return f"unread session output recorded at run end: {', '.join(closed)}"


def _finished(ev: Event, store: Store) -> str:
    finished = schema.RUN_FINISHED.payload(ev)
    text = f"run {finished['status']}: {clip(finished['reason'], 90)}"
    if finished["resumable"]:
        text += f" · resumable: `apollo resume {ev.run_id}`"
    return text


# The kinds worth a line, and how each reads.
_LINES: dict[str, Callable[[Event, Store], str]] = {
    Kind.RUN_STARTED: _started,
    Kind.RUN_RESUMED: _resumed,
    Kind.MODEL_CALL: _model_call,
    Kind.MODEL_RETRY: lambda ev, store: _retry(schema.MODEL_RETRY.payload(ev)),
    Kind.OBSERVATION: _observation,
    Kind.GUIDANCE: _guidance,
    Kind.GUIDANCE_DELIVERED: _delivered,
    Kind.ANNOTATOR_DECISION: _decision,
    Kind.SUMMARY: _summary,
    Kind.CONTROL: _control,
    Kind.SUBMISSION: _submission,
    Kind.SESSIONS_CLOSED: _sessions_closed,
    Kind.RUN_FINISHED: _finished,
}


def describe(ev: Event, store: Store) -> str | None:
    """A line for an event, or None for events not worth a line."""
    line = _LINES.get(ev.kind)
    if line is None:
        return None
    stamp = time.strftime("%H:%M:%S", time.localtime(ev.ts))
    step = f"step {ev.step:>4}" if ev.step else "         "
    return safe(f"{stamp} {step}  {line(ev, store)}")
