"""One-line renderings of log events, for live progress in a terminal and `apollo show`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any

from apollo.log.calls import call_output
from apollo.log.events import Event, Kind
from apollo.log.store import Store

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x1b]")


def clip(text: str, width: int = 110) -> str:
    """One safe line: control characters (terminal escapes included) shown as '?'."""
    flat = _CONTROL.sub("?", " ".join(text.split()))
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
        text = f"{what}: {score if score is not None else 'error: ' + str(p.get('error'))}"
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
    return f"{stamp} {step}  {text}"
