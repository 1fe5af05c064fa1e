"""What the console shows about runs, derived from their logs (docs/api.md "Shapes").

A run's summary is a fold over its events: the run's actions as the one fold of them reads
them (`apollo.log.actions.ActionFold`: results and their streaks, sessions, guidance and its
life, labels, submissions, working time, the budget) plus the console's own facts (the agent's
wall time, tokens, model retries, annotator time). `RunCache` keeps one fold per run and
advances it only by the events appended since it last looked, so the dashboard never replays
whole logs: a request costs one query on the runs table plus the new events of runs whose row
changed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apollo.log import schema
from apollo.log.actions import ActionFold, action_texts
from apollo.log.events import Event, Kind, RunRecord, RunStatus
from apollo.log.store import Store

AGENT = "agent"  # the actor of the agent's own events
# Attention thresholds (docs/api.md).
STREAK = 3
LONG_IDLE_S = 300.0


_ENDED = frozenset(s.value for s in RunStatus if s.ended)


def ended(status: str) -> bool:
    """Whether a run with this status has ended (for now: a failed run can be resumed)."""
    return status in _ENDED


@dataclass
class RunFold:
    """The console's facts about one run, advanced event by event: its actions as the one
    fold of them reads them, plus what only the console counts."""

    # The console follows every run: only the latest actions are kept (constant memory).
    actions: ActionFold = field(default_factory=lambda: ActionFold(history=False))
    last_seq: int = 0
    # The agent's own first and last events: wall time and idleness are the agent's, so
    # labels and presence reports written after (or during) a run do not stretch them.
    first_ts: float | None = None
    last_ts: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_retries: int = 0
    presence_s: float = 0.0
    # When each annotator's last presence report arrived (the store's ts of the event).
    presence_at: dict[str, float] = field(default_factory=dict)

    def apply(self, ev: Event, texts: Mapping[str, str]) -> None:
        """Apply one event; `texts` holds the texts of act calls' replies (`action_texts`)."""
        self.actions.apply(ev, texts)
        self.last_seq = ev.seq
        if ev.actor == AGENT or ev.kind == Kind.RUN_FINISHED:
            if self.first_ts is None:
                self.first_ts = ev.ts
            self.last_ts = ev.ts
        if (call := schema.MODEL_CALL.of(ev)) is not None:
            usage = call.get("usage") or {}
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
        elif ev.kind == Kind.MODEL_RETRY:
            self.model_retries += 1
        elif (presence := schema.PRESENCE.of(ev)) is not None:
            self._presence(ev, presence)

    def _presence(self, ev: Event, presence: schema.Presence) -> None:
        """Credit an annotator's report with at most the real time since their previous
        report on this run: the server measures, the report only caps (it says how much of
        that time the page was visible). A first report only starts the measurement."""
        previous = self.presence_at.get(ev.actor)
        self.presence_at[ev.actor] = ev.ts
        if previous is None:
            return
        reported = presence["seconds"]
        if math.isfinite(reported):
            self.presence_s += max(0.0, min(reported, ev.ts - previous))

    # -- derived values -------------------------------------------------------------------
    def attention(self, status: str, now: float) -> list[dict[str, str]]:
        """The run's attention signals now (docs/api.md): what a person should look at in a
        live run. An ended run needs nobody, so it has none."""
        out: list[dict[str, str]] = []
        if ended(status):
            return out
        errors, repeats = self.actions.error_streak, self.actions.repeat_streak
        if errors.count >= STREAK:
            since = f" since step {errors.since}" if errors.since else ""
            out.append(
                {
                    "kind": "error_streak",
                    "detail": f"{errors.count} failing tool results in a row{since}",
                }
            )
        if repeats.count >= STREAK:
            out.append(
                {
                    "kind": "repeated_action",
                    "detail": f"{repeats.label} with the same arguments "
                    f"{repeats.count} times in a row",
                }
            )
        if self.idle(status, now):
            minutes = int((now - (self.last_ts or now)) // 60)
            out.append({"kind": "long_idle", "detail": f"no event for {minutes} min"})
        if (killed := self.actions.killed) is not None:
            runtime = killed.runtime_s
            after = f" after {float(runtime):.0f}s" if isinstance(runtime, int | float) else ""
            out.append(
                {
                    "kind": "session_killed_early",
                    "detail": f"session {killed.session} killed while running{after} "
                    f"(step {killed.step})",
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
        work_s = self.actions.work_s
        interventions = len(self.actions.guidance)
        return {
            "interventions": interventions,
            "interventions_per_hour": _per_hour(interventions, work_s),
            "annotator_seconds": round(self.presence_s, 3),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "model_retries": self.model_retries,
            "wall_s": round((self.last_ts or 0.0) - (self.first_ts or 0.0), 3),
            "work_s": round(work_s, 3),
        }

    def guidance(self) -> list[dict[str, Any]]:
        """Every guidance message with its state: queued, delivered at a step, or cancelled."""
        return [
            {
                "id": g.id,
                "author": g.author,
                "kind": g.kind,
                "text": g.text,
                "urgent": g.urgent,
                "drift_from_step": g.drift_from_step,
                "state": g.state,
                "delivered_step": g.delivered_step,
            }
            for g in sorted(self.actions.guidance.values(), key=lambda g: g.seq)
        ]

    def sessions(self) -> list[dict[str, Any]]:
        """The sessions the agent started, as its tool results tell."""
        return [
            {"id": s.id, "command": s.command, "running": s.running, "exit_code": s.exit_code}
            for s in self.actions.sessions.values()
        ]

    def submissions(self) -> list[dict[str, Any]]:
        """Every evaluation of the workspace, with the step it came after."""
        return [
            {
                "n": s["n"],
                "score": s["score"],
                "status": s["status"],
                "error": s["error"],
                "final": bool(s["final"]),
                "step": step,
            }
            for s, step in zip(self.actions.submissions, self.actions.submission_steps, strict=True)
        ]

    def labels(self) -> list[dict[str, Any]]:
        """Every label on the run's actions, oldest first."""
        return [
            {
                "step": lb.step,
                "verdict": lb.verdict,
                "reason": lb.reason,
                "source": lb.source,
                "author": lb.author,
            }
            for lb in self.actions.labels()
        ]


def _per_hour(count: int, work_s: float) -> float:
    return round(count / (work_s / 3600), 3) if work_s > 0 else 0.0


def _budget(record: RunRecord, fold: RunFold) -> tuple[int | None, float | None]:
    """The run's step budget and working time left (before the run starts: the cap asked for)."""
    started = fold.actions.started
    if started is None:
        cap = (record.config.get("options") or {}).get("max_steps")
        return (int(cap) if cap else None), None
    budget = started["budget"]
    left = max(0.0, float(budget["working_time"]) - fold.actions.work_s)
    return budget["steps"], round(left, 3)


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
        "guidance_queued": len(fold.actions.pending_guidance()),
        "attention": fold.attention(record.status, now),
        "cost": fold.cost(),
    }


def detail(record: RunRecord, fold: RunFold, now: float) -> dict[str, Any]:
    """A run's RunDetail: its summary plus config, sessions, submissions, guidance, labels."""
    return {
        **summary(record, fold, now),
        "config": record.config,
        "sessions": fold.sessions(),
        "submissions": fold.submissions(),
        "guidance": fold.guidance(),
        "labels": fold.labels(),
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
        texts = action_texts(self.store, events)
        for ev in events:
            fold.apply(ev, texts)

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


def _shown_blob(ev: Event) -> tuple[str, str] | None:
    """The blob an EventView expands, and the payload key its text goes under: a model
    call's reply (`message`), a tool result's text (`content`), a summary's (`text`)."""
    if (call := schema.MODEL_CALL.of(ev)) is not None:
        output = call.get("output")
        return ("message", output) if output else None
    if (observation := schema.OBSERVATION.of(ev)) is not None:
        return ("content", observation["message"]) if observation["message"] else None
    if (summarized := schema.SUMMARY.of(ev)) is not None:
        return ("text", summarized["messages"][0]) if summarized["messages"] else None
    return None


def expand(store: Store, events: Sequence[Event]) -> list[dict[str, Any]]:
    """EventViews: events with blob references expanded for display (docs/api.md)."""
    shown = [_shown_blob(ev) for ev in events]
    wanted = [blob for _, blob in filter(None, shown)]
    texts = store.get_blobs(wanted) if wanted else {}
    out = []
    for ev, blob in zip(events, shown, strict=True):
        payload = dict(ev.payload)
        if blob is not None:
            key, ref = blob
            message = json.loads(texts[ref])
            # A reply is shown whole (content, tool calls); a result or summary by its text.
            payload[key] = message if key == "message" else message.get("content")
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
