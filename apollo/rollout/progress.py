"""One-line renderings of log events, for live progress in a terminal and `apollo show`.

Every line is terminal-safe (`apollo.terminal.safe`): agent output, guidance and names are
shown, never obeyed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

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


def _retry(p: dict[str, Any]) -> str:
    """A model_retry line: how long the model has not answered and what happens next."""
    attempt = int(p.get("attempt") or 0)
    max_attempts = p.get("max_attempts")
    of = (
        f" of {int(max_attempts) - 1}"
        if max_attempts
        else f" (gives up after {duration(float(p.get('window_s') or 0))})"
    )
    what = "model" if p.get("purpose") == "act" else f"model ({p.get('purpose')})"
    return (
        f"{what} not answering for {duration(float(p.get('since_s') or 0))}: "
        f"retry {attempt}{of} in {duration(float(p.get('delay_s') or 0))} · "
        f"{clip(str(p.get('error', '')), 70)}"
    )


def retry_summary(events: Iterable[Event]) -> str:
    """One line on what failed model attempts cost a run: retries and the time they took."""
    retries = [ev.payload for ev in events if ev.kind == Kind.MODEL_RETRY]
    spent = sum(float(p.get("waited_s") or 0) + float(p.get("delay_s") or 0) for p in retries)
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
        try:
            args = json.loads(fn["arguments"] or "{}")
            shown = ", ".join(f"{k}={clip(str(v), 60)}" for k, v in args.items())
        except ValueError:
            shown = clip(fn["arguments"] or "", 60)
        parts.append(f"{fn['name']}({shown})")
    return "; ".join(parts)


def describe(ev: Event, store: Store) -> str | None:
    """A line for an event, or None for events not worth a line."""
    p = ev.payload
    k = ev.kind
    stamp = time.strftime("%H:%M:%S", time.localtime(ev.ts))
    step = f"step {ev.step:>4}" if ev.step else "         "
    if k == Kind.RUN_STARTED:
        text = f"run started: task {p.get('task')} · model {p.get('model')}"
    elif k == Kind.RUN_RESUMED:
        text = f"run resumed · sessions reattached: {', '.join(p.get('sessions') or []) or 'none'}"
        if p.get("rerun"):
            text += f" · reads cut by the crash made again: {len(p['rerun'])}"
    elif k == Kind.MODEL_CALL:
        if p.get("error"):
            text = f"model call FAILED: {clip(p['error'], 90)}"
        elif p.get("purpose") == "summarize":
            text = "summarizing the older half of the context"
        else:
            text = f"→ {_call_summary(call_output(store, p))}"
    elif k == Kind.MODEL_RETRY:
        text = _retry(p)
    elif k == Kind.OBSERVATION:
        msg = json.loads(store.get_blob(p["message"]))
        body = str(msg.get("content") or "").rsplit("\n\n[step ", 1)[0]
        flag = "ERROR " if p.get("error") else ""
        text = f"← {flag}{p.get('tool') or 'malformed call'}: {clip(body, 90)}"
    elif k == Kind.GUIDANCE:
        text = f"guidance queued from {ev.actor} [{p.get('kind')}]: {clip(p.get('text', ''), 80)}"
    elif k == Kind.GUIDANCE_DELIVERED:
        text = f"guidance {p.get('guidance_id')} delivered at step {p.get('step')}"
    elif k == Kind.SUMMARY:
        first, last = p["covers"]
        text = f"context summarized (steps {first}-{last} condensed)"
    elif k == Kind.CONTROL:
        text = f"control: {p.get('action')} by {ev.actor}"
    elif k == Kind.SUBMISSION:
        score = p.get("score")
        what = "final score" if p.get("final") else f"submission {p.get('n')}"
        if score is not None:
            text = f"{what}: {score:g}"
        elif p.get("status") == "evaluator_error":
            text = f"{what}: none, the EVALUATOR FAILED: {clip(str(p.get('error')), 90)}"
        else:
            text = f"{what}: error: {clip(str(p.get('error')), 90)}"
    elif k == Kind.SESSIONS_CLOSED:
        closed = [
            f"{c['id']} ({c['new_bytes']} bytes{', killed' if c.get('killed') else ''})"
            for c in p["sessions"]
        ]
        text = f"unread session output recorded at run end: {', '.join(closed)}"
    elif k == Kind.RUN_FINISHED:
        text = f"run {p.get('status')}: {clip(str(p.get('reason', '')), 90)}"
        if p.get("resumable"):
            text += f" · resumable: `apollo resume {ev.run_id}`"
    else:
        return None
    return safe(f"{stamp} {step}  {text}")
