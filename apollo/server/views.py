"""What the console shows about runs, derived from their logs (docs/api.md "Shapes").

A run's summary is a fold over its events: the agent's own `ContextView` (guidance and its
life, steps, working time, limits) plus the console's facts (attention signals, tokens,
annotator time, sessions, labels). `RunCache` keeps one fold per run and advances it only
by the events appended since it last looked, so the dashboard never replays whole logs: a
request costs one query on the runs table plus the new events of runs whose row changed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apollo.agent.context import ContextView
from apollo.log.events import Event, Kind, RunRecord, RunStatus, canonical_json
from apollo.log.store import Store

AGENT = "agent"  # the actor of the agent's own events
# Attention thresholds (docs/api.md).
STREAK = 3
LONG_IDLE_S = 300.0


_ENDED = frozenset(s.value for s in RunStatus if s.ended)


def ended(status: str) -> bool:
    """Whether a run with this status has ended (for now: a failed run can be resumed)."""
    return status in _ENDED


def _is_act_output(ev: Event) -> bool:
    """An act call that produced an assistant message (the fold reads its tool calls)."""
    p = ev.payload
    return ev.kind == Kind.MODEL_CALL and p.get("purpose") == "act" and bool(p.get("output"))


@dataclass
class RunFold:
    """The console's facts about one run, advanced event by event."""

    context: ContextView = field(default_factory=ContextView)
    last_seq: int = 0
    # The agent's own first and last events: wall time and idleness are the agent's, so
    # labels and presence reports written after (or during) a run do not stretch them.
    first_ts: float | None = None
    last_ts: float | None = None
    ended: bool = False
    error_streak: int = 0
    error_streak_from: int | None = None
    repeat_key: str | None = None
    repeat_tool: str = ""
    repeat_count: int = 0
    killed: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_retries: int = 0
    presence_s: float = 0.0
    # When each annotator's last presence report arrived (the store's ts of the event).
    presence_at: dict[str, float] = field(default_factory=dict)
    guidance_count: int = 0
    labels: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Arguments of tool calls not yet answered, so an observation knows what was asked.
    call_args: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def apply(self, ev: Event, outputs: dict[str, str]) -> None:
        """Apply one event; `outputs` holds the texts of act calls' assistant messages."""
        self.context.apply(ev)
        self.last_seq = ev.seq
        if ev.actor == AGENT or ev.kind == Kind.RUN_FINISHED:
            if self.first_ts is None:
                self.first_ts = ev.ts
            self.last_ts = ev.ts
        p = ev.payload
        if ev.kind == Kind.MODEL_CALL:
            usage = p.get("usage") or {}
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
            if p.get("purpose") == "act" and p.get("output") in outputs:
                self._actions(json.loads(outputs[p["output"]]))
        elif ev.kind == Kind.MODEL_RETRY:
            self.model_retries += 1
        elif ev.kind == Kind.OBSERVATION:
            self._observe(ev)
        elif ev.kind == Kind.GUIDANCE:
            self.guidance_count += 1
        elif ev.kind == Kind.PRESENCE:
            self._presence(ev)
        elif ev.kind == Kind.LABEL:
            self.labels.append(
                {
                    "step": p.get("step", ev.step),
                    "verdict": p.get("verdict", ""),
                    "reason": p.get("reason", ""),
                    "source": p.get("source", "human"),
                    "author": p.get("author", ev.actor),
                }
            )
        elif ev.kind == Kind.SUBMISSION:
            self.submissions.append(
                {
                    "n": p.get("n"),
                    "score": p.get("score"),
                    "status": p.get("status", "scored" if p.get("score") is not None else None),
                    "error": p.get("error"),
                    "final": bool(p.get("final")),
                    "step": ev.step,
                }
            )
        elif ev.kind == Kind.RUN_FINISHED:
            self.ended = True
        elif ev.kind == Kind.RUN_RESUMED:
            self.ended = False

    def _presence(self, ev: Event) -> None:
        """Credit an annotator's report with at most the real time since their previous
        report on this run: the server measures, the report only caps (it says how much of
        that time the page was visible). A first report only starts the measurement."""
        previous = self.presence_at.get(ev.actor)
        self.presence_at[ev.actor] = ev.ts
        if previous is None:
            return
        try:
            reported = float(ev.payload.get("seconds") or 0.0)
        except (TypeError, ValueError):
            return
        if math.isfinite(reported):
            self.presence_s += max(0.0, min(reported, ev.ts - previous))

    def _actions(self, message: dict[str, Any]) -> None:
        calls = message.get("tool_calls") or []
        if not calls:
            return
        signature: list[tuple[str, Any]] = []
        for c in calls:
            fn = c.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                args = fn.get("arguments")
            signature.append((fn.get("name", ""), args))
            if c.get("id"):
                self.call_args[c["id"]] = (
                    fn.get("name", ""),
                    args if isinstance(args, dict) else {},
                )
        # Same tools with the same arguments, ignoring call ids and the model's prose.
        key = canonical_json(signature)
        if key == self.repeat_key:
            self.repeat_count += 1
        else:
            self.repeat_key, self.repeat_count = key, 1
            self.repeat_tool = ", ".join(name for name, _ in signature)

    def _observe(self, ev: Event) -> None:
        p = ev.payload
        if p.get("error"):
            if self.error_streak == 0:
                self.error_streak_from = ev.step
            self.error_streak += 1
        else:
            self.error_streak, self.error_streak_from = 0, None
        tool, args = self.call_args.pop(p.get("tool_call_id") or "", (p.get("tool"), {}))
        meta = p.get("meta") or {}
        sid = meta.get("session")
        if tool == "session_start" and sid and not p.get("error"):
            self.sessions[sid] = {
                "id": sid,
                "command": args.get("command"),
                "running": True,
                "exit_code": None,
            }
        elif tool == "session_output" and sid in self.sessions:
            self.sessions[sid]["running"] = bool(meta.get("running"))
            self.sessions[sid]["exit_code"] = meta.get("exit_code")
        elif tool == "session_kill" and sid in self.sessions:
            self.sessions[sid]["running"] = False
            if meta.get("was_running"):
                self.killed = {"session": sid, "step": ev.step, "runtime_s": meta.get("runtime_s")}
        elif tool == "session_list" and isinstance(meta.get("running"), list):
            for s in self.sessions.values():
                s["running"] = s["id"] in meta["running"]

    # -- derived values -------------------------------------------------------------------
    def attention(self, status: str, now: float) -> list[dict[str, str]]:
        """The run's attention signals now (docs/api.md): what a person should look at in a
        live run. An ended run needs nobody, so it has none."""
        out: list[dict[str, str]] = []
        if ended(status):
            return out
        if self.error_streak >= STREAK:
            since = f" since step {self.error_streak_from}" if self.error_streak_from else ""
            out.append(
                {
                    "kind": "error_streak",
                    "detail": f"{self.error_streak} failing tool results in a row{since}",
                }
            )
        if self.repeat_count >= STREAK:
            out.append(
                {
                    "kind": "repeated_action",
                    "detail": f"{self.repeat_tool} with the same arguments "
                    f"{self.repeat_count} times in a row",
                }
            )
        if self.idle(status, now):
            minutes = int((now - (self.last_ts or now)) // 60)
            out.append({"kind": "long_idle", "detail": f"no event for {minutes} min"})
        if self.killed is not None:
            k = self.killed
            runtime = k.get("runtime_s")
            after = f" after {float(runtime):.0f}s" if isinstance(runtime, int | float) else ""
            out.append(
                {
                    "kind": "session_killed_early",
                    "detail": f"session {k['session']} killed while running{after} "
                    f"(step {k['step']})",
                }
            )
        return out

    def idle(self, status: str, now: float) -> bool:
        return (
            status == RunStatus.RUNNING
            and self.last_ts is not None
            and now - self.last_ts >= LONG_IDLE_S
        )

    def cost(self) -> dict[str, Any]:
        work_s = self.context.work_s
        return {
            "interventions": self.guidance_count,
            "interventions_per_hour": _per_hour(self.guidance_count, work_s),
            "annotator_seconds": round(self.presence_s, 3),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "model_retries": self.model_retries,
            "wall_s": round((self.last_ts or 0.0) - (self.first_ts or 0.0), 3),
            "work_s": round(work_s, 3),
        }

    def guidance(self) -> list[dict[str, Any]]:
        """Every guidance message with its state: queued, delivered at a step, or cancelled."""
        out = []
        for g in sorted(self.context.guidance.values(), key=lambda g: g.seq):
            if g.delivered_step is not None:
                state = "delivered"
            elif g.cancelled:
                state = "cancelled"
            else:
                state = "queued"
            out.append(
                {
                    "id": g.id,
                    "author": g.author,
                    "kind": g.kind,
                    "text": g.text,
                    "urgent": g.urgent,
                    "drift_from_step": g.drift_from_step,
                    "state": state,
                    "delivered_step": g.delivered_step,
                }
            )
        return out


def _per_hour(count: int, work_s: float) -> float:
    return round(count / (work_s / 3600), 3) if work_s > 0 else 0.0


def _budget(record: RunRecord, fold: RunFold) -> tuple[int | None, float | None]:
    """The run's step budget and working time left (before the run starts: the cap asked for)."""
    started = fold.context.started
    if started is None:
        cap = (record.config.get("options") or {}).get("max_steps")
        return (int(cap) if cap else None), None
    budget = started.get("budget") or {}
    steps = budget.get("steps")
    time_s = budget.get("working_time")
    left = max(0.0, float(time_s) - fold.context.work_s) if time_s is not None else None
    return (int(steps) if steps else None), (round(left, 3) if left is not None else None)


def summary(record: RunRecord, fold: RunFold, now: float) -> dict[str, Any]:
    """A run's RunSummary (docs/api.md)."""
    max_steps, left = _budget(record, fold)
    return {
        "id": record.id,
        "task": record.task,
        "model": (record.config.get("options") or {}).get("model"),
        "started_by": record.config.get("started_by"),
        "status": record.status,
        "step": record.step,
        "max_steps": max_steps,
        "created": record.created,
        "updated": record.updated,
        "working_time_left_s": left,
        "last_score": record.last_score,
        "guidance_count": record.guidance_count,
        "guidance_queued": len(fold.context.pending_guidance()),
        "attention": fold.attention(record.status, now),
        "cost": fold.cost(),
    }


def detail(record: RunRecord, fold: RunFold, now: float) -> dict[str, Any]:
    """A run's RunDetail: its summary plus config, sessions, submissions, guidance, labels."""
    return {
        **summary(record, fold, now),
        "config": record.config,
        "sessions": list(fold.sessions.values()),
        "submissions": list(fold.submissions),
        "guidance": fold.guidance(),
        "labels": list(fold.labels),
    }


COST_FIELDS = (
    "interventions",
    "annotator_seconds",
    "prompt_tokens",
    "completion_tokens",
    "model_retries",
    "wall_s",
    "work_s",
)


def totals(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Cost summed over runs; interventions per hour over their summed working time."""
    sums: dict[str, Any] = {k: 0 for k in COST_FIELDS}
    runs = 0
    for s in summaries:
        runs += 1
        for k in COST_FIELDS:
            sums[k] += s["cost"][k]
    for k in ("annotator_seconds", "wall_s", "work_s"):
        sums[k] = round(float(sums[k]), 3)
    return {
        "runs": runs,
        **sums,
        "interventions_per_hour": _per_hour(sums["interventions"], sums["work_s"]),
    }


class RunCache:
    """One fold per run, advanced by the events appended since the last look.

    A run's row in the runs table changes (`updated`) with every append, so comparing it
    tells which runs have new events without touching the events table. Summaries are
    cached too, keyed by what they depend on. Used from the server's event loop only."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._folds: dict[str, RunFold] = {}
        self._seen: dict[str, float] = {}
        self._summaries: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    def fold(self, run_id: str) -> RunFold:
        """The run's fold, brought up to date with its log."""
        fold = self._folds.setdefault(run_id, RunFold())
        self._advance(fold, self.store.events(run_id, after=fold.last_seq))
        return fold

    def sync(self, records: Sequence[RunRecord]) -> None:
        """Bring the folds of runs whose row changed up to date."""
        for record in records:
            if self._seen.get(record.id) != record.updated:
                self.fold(record.id)
                self._seen[record.id] = record.updated

    def _advance(self, fold: RunFold, events: list[Event]) -> None:
        if not events:
            return
        blobs = [ev.payload["output"] for ev in events if _is_act_output(ev)]
        outputs = self.store.get_blobs(blobs) if blobs else {}
        for ev in events:
            fold.apply(ev, outputs)

    def summary(self, record: RunRecord, now: float) -> dict[str, Any]:
        """The run's summary (call `sync` or `fold` first)."""
        fold = self._folds.get(record.id) or self.fold(record.id)
        key = (record.updated, record.status, fold.last_seq, fold.idle(record.status, now))
        cached = self._summaries.get(record.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        value = summary(record, fold, now)
        self._summaries[record.id] = (key, value)
        return value


def expand(store: Store, events: Sequence[Event]) -> list[dict[str, Any]]:
    """EventViews: events with blob references expanded for display (docs/api.md)."""
    wanted: list[str] = []
    for ev in events:
        p = ev.payload
        if ev.kind == Kind.MODEL_CALL and p.get("output"):
            wanted.append(p["output"])
        elif ev.kind == Kind.OBSERVATION and p.get("message"):
            wanted.append(p["message"])
        elif ev.kind == Kind.SUMMARY and p.get("messages"):
            wanted.append(p["messages"][0])
    texts = store.get_blobs(wanted) if wanted else {}
    out = []
    for ev in events:
        payload = dict(ev.payload)
        if ev.kind == Kind.MODEL_CALL and payload.get("output"):
            payload["message"] = json.loads(texts[payload["output"]])
        elif ev.kind == Kind.OBSERVATION and payload.get("message"):
            payload["content"] = json.loads(texts[payload["message"]]).get("content")
        elif ev.kind == Kind.SUMMARY and payload.get("messages"):
            payload["text"] = json.loads(texts[payload["messages"][0]]).get("content")
        out.append(
            {
                "seq": ev.seq,
                "ts": ev.ts,
                "kind": ev.kind,
                "actor": ev.actor,
                "step": ev.step,
                "payload": payload,
            }
        )
    return out
