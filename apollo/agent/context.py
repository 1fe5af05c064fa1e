"""The agent's context and state as a fold over the run's events.

The live agent and a resumed one build their context by applying the same events in the same
order, so a resumed run sees exactly the context it would have had (docs/design.md
"Principles": one log, many views).
Every message that enters the context is a blob of canonical JSON; events reference it by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apollo.log.calls import apply_input
from apollo.log.events import Event, Kind
from apollo.log.outcome import fold_outcome
from apollo.log.store import Store

# Rough characters-per-token ratio for budget checks; usage from the model refines it.
CHARS_PER_TOKEN = 3.5


@dataclass(slots=True)
class Entry:
    """One message of the context. `step` 0 is the preamble (system, task, summary)."""

    step: int
    blob: str
    text: str | None = None


@dataclass(slots=True)
class Guidance:
    id: str
    seq: int
    author: str
    kind: str
    text: str
    urgent: bool = False
    drift_from_step: int | None = None
    delivered_step: int | None = None
    cancelled: bool = False


@dataclass
class ContextView:
    """Context messages plus the run state the agent needs, derived from events only."""

    entries: list[Entry] = field(default_factory=list)
    tools_blob: str | None = None
    started: dict[str, Any] | None = None
    last_step: int = 0  # highest step with an act model call
    last_seq: int = 0
    last_call_seq: int | None = None  # the latest model_call of the current window
    last_call_ids: list[str] = field(default_factory=list)
    pending_tool_calls: dict[str, str] = field(default_factory=dict)  # id -> tool name
    last_act_output: str | None = None  # blob of the latest act call's assistant message
    # Steps whose cut tool calls were answered "interrupted": they do not spend the budget.
    interrupted_steps: set[int] = field(default_factory=set)
    guidance: dict[str, Guidance] = field(default_factory=dict)
    paused: bool = False
    stop_requested: bool = False
    finished: dict[str, Any] | None = None
    finish_summary: str | None = None  # the agent called finish; the run is ending
    final_scored: bool = False
    # The parse error (or "") of an act reply without a tool call not yet answered.
    uncorrected: str | None = None
    submissions: int = 0
    # Per session, how much of its output the log shows the agent has been given.
    session_cursors: dict[str, int] = field(default_factory=dict)
    work_s: float = 0.0
    summaries: int = 0

    # -- folding --------------------------------------------------------------------------
    def apply(self, ev: Event, texts: dict[str, str] | None = None) -> None:
        """Apply one event. `texts` may hold the JSON of blobs just written (saves a read)."""
        self.last_seq = ev.seq
        p = ev.payload
        k = ev.kind
        if "work_s" in p:
            self.work_s = max(self.work_s, float(p["work_s"]))
        if k == Kind.RUN_STARTED:
            self.started = p
            self.tools_blob = p.get("tools")
            self.entries = [self._entry(0, b, texts) for b in p["messages"]]
        elif k == Kind.MODEL_CALL:
            self.last_call_ids = apply_input(self.last_call_seq, self.last_call_ids, p["input"])
            self.last_call_seq = ev.seq
            if p.get("purpose") == "act" and "output" in p:
                step = ev.step or 0
                self.last_step = max(self.last_step, step)
                self.entries.append(self._entry(step, p["output"], texts))
                self.last_act_output = p["output"]
                self.pending_tool_calls = {c["id"]: c["name"] for c in p.get("calls", [])}
                self.uncorrected = None if p.get("calls") else (p.get("parse_error") or "")
        elif k == Kind.OBSERVATION:
            self.uncorrected = None
            self.entries.append(self._entry(ev.step or 0, p["message"], texts))
            if p.get("tool_call_id"):
                self.pending_tool_calls.pop(p["tool_call_id"], None)
            if p.get("interrupted"):
                self.interrupted_steps.add(ev.step or 0)
            meta = p.get("meta") or {}
            if "finish" in meta:
                self.finish_summary = meta["finish"]
            if "cursor" in meta and "session" in meta:
                self.session_cursors[meta["session"]] = meta["cursor"]
        elif k == Kind.GUIDANCE:
            self.guidance[p["id"]] = Guidance(
                id=p["id"],
                seq=ev.seq,
                author=ev.actor,
                kind=p.get("kind", "hint"),
                text=p["text"],
                urgent=bool(p.get("urgent")),
                drift_from_step=p.get("drift_from_step"),
            )
        elif k == Kind.GUIDANCE_DELIVERED:
            g = self.guidance.get(p["guidance_id"])
            if g is not None:
                g.delivered_step = p["step"]
            if p.get("message"):
                self.entries.append(self._entry(p["step"], p["message"], texts))
        elif k == Kind.GUIDANCE_CANCELLED:
            g = self.guidance.get(p["guidance_id"])
            if g is not None:
                g.cancelled = True
        elif k == Kind.SUMMARY:
            last = p["covers"][1]
            self.summaries += 1
            kept = [e for e in self.entries if e.step > last]
            head = self.entries[: self._preamble_len()]
            self.entries = head + [self._entry(0, b, texts) for b in p["messages"]] + kept
            # The next call starts a new window: no delta against the old one.
            self.last_call_seq = None
            self.last_call_ids = []
        elif k == Kind.CONTROL:
            action = p.get("action")
            if action == "pause":
                self.paused = True
            elif action == "resume":
                self.paused = False
            elif action == "stop":
                self.stop_requested = True
        elif k == Kind.SUBMISSION:
            if p.get("final"):
                self.final_scored = True
            else:
                self.submissions += 1
        elif k == Kind.SESSIONS_CLOSED:
            for closed in p["sessions"]:
                self.session_cursors[closed["id"]] = closed["cursor"]
        elif k in (Kind.RUN_FINISHED, Kind.RUN_RESUMED):
            self.finished = fold_outcome(self.finished, ev)

    def _preamble_len(self) -> int:
        """System prompt and task message: always the first two entries."""
        return len(self.started["messages"]) if self.started else 0

    @staticmethod
    def _entry(step: int, blob: str, texts: dict[str, str] | None) -> Entry:
        return Entry(step, blob, texts.get(blob) if texts else None)

    # -- queries --------------------------------------------------------------------------
    def materialize(self, store: Store) -> None:
        """Fetch the text of entries folded without it (after a replay)."""
        missing = [e.blob for e in self.entries if e.text is None]
        if not missing:
            return
        got = store.get_blobs(missing)
        for e in self.entries:
            if e.text is None:
                e.text = got[e.blob]

    def message_texts(self) -> list[str]:
        """The encoded messages, in order (call `materialize` first after a replay)."""
        out = []
        for e in self.entries:
            assert e.text is not None, "context entry not materialized"
            out.append(e.text)
        return out

    def token_estimate(self) -> int:
        return int(sum(len(e.text or "") for e in self.entries) / CHARS_PER_TOKEN)

    def pending_guidance(self) -> list[Guidance]:
        """Guidance written but not yet delivered, oldest first."""
        return sorted(
            (g for g in self.guidance.values() if g.delivered_step is None and not g.cancelled),
            key=lambda g: g.seq,
        )

    def window_steps(self) -> list[int]:
        """Steps whose messages are in the context verbatim, in order."""
        return sorted({e.step for e in self.entries if e.step > 0})


def replay(store: Store, run_id: str) -> ContextView:
    """Rebuild a run's context view from its log."""
    view = ContextView()
    for ev in store.events(run_id):
        view.apply(ev)
    view.materialize(store)
    return view
