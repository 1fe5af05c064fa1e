"""A rule-based simulated annotator: follows a run through its log and posts the task's hints
as guidance when their triggers match, under its own annotator identity.

Its state (which hints it has posted) is read back from the log, so it survives restarts and
never posts a hint twice.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apollo.env.task import Hint, Task
from apollo.log.calls import call_output
from apollo.log.events import Event, Kind, Role
from apollo.log.outcome import fold_outcome
from apollo.log.store import Store
from apollo.log.writes import post_guidance

SIMULATED_NAME = "simulated-annotator"
# Tools whose repeated use with nothing new is polling.
_POLL_TOOLS = {"session_output", "session_list", "sleep"}


def ensure_identity(store: Store, name: str = SIMULATED_NAME) -> str:
    """Register the simulated annotator once (role annotator); returns its name."""
    if not any(a.name == name for a in store.list_annotators()):
        store.add_annotator(name, Role.ANNOTATOR)
    return name


@dataclass
class RunFacts:
    """What the triggers look at, folded from the run's events."""

    step: int = 0
    outcome: dict[str, Any] | None = None  # how the run ended (None while it is live)
    posted: set[str] = field(default_factory=set)
    scores: list[float] = field(default_factory=list)
    killed_early: bool = False
    fail_streak: int = 0
    last_failed_command: str | None = None
    poll_streak: int = 0
    call_args: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def apply(self, ev: Event, me: str, store: Store) -> None:
        p = ev.payload
        if ev.kind == Kind.MODEL_CALL and p.get("purpose") == "act":
            self.step = max(self.step, ev.step or 0)
            if not any(c["name"] == "run" for c in p.get("calls", [])):
                return
            for call in call_output(store, p).get("tool_calls") or []:
                try:
                    args = json.loads(call["function"]["arguments"] or "{}")
                except ValueError:
                    args = {}
                self.call_args[call["id"]] = (call["function"]["name"], args)
        elif ev.kind == Kind.OBSERVATION:
            self._observe(p)
        elif ev.kind == Kind.GUIDANCE and ev.actor == me and p.get("hint_id"):
            self.posted.add(p["hint_id"])
        elif ev.kind == Kind.SUBMISSION and not p.get("final") and p.get("score") is not None:
            self.scores.append(float(p["score"]))
        elif ev.kind in (Kind.RUN_FINISHED, Kind.RUN_RESUMED):
            self.outcome = fold_outcome(self.outcome, ev)

    def _observe(self, p: dict[str, Any]) -> None:
        tool, args = self.call_args.pop(p.get("tool_call_id") or "", (p.get("tool"), {}))
        meta = p.get("meta") or {}
        if tool == "session_kill" and meta.get("was_running"):
            self.killed_early = True
        if tool == "run":
            command = str(args.get("command", ""))
            if p.get("error"):
                same = command == self.last_failed_command
                self.fail_streak = self.fail_streak + 1 if same else 1
                self.last_failed_command = command
            else:
                self.fail_streak, self.last_failed_command = 0, None
        if tool in _POLL_TOOLS and not meta.get("new_bytes"):
            self.poll_streak += 1
        else:
            self.poll_streak = 0


def hint_matches(hint: Hint, facts: RunFacts, workspace: Path) -> bool:
    """Whether a hint's trigger holds now."""
    t = hint.trigger
    if t.kind == "step_reached":
        return facts.step >= (t.step or 0)
    if t.kind == "no_progress":
        return facts.step >= (t.step or 0) and not any(workspace.glob(t.pattern or "*"))
    if t.kind == "no_submission":
        return facts.step >= (t.step or 0) and not facts.scores
    if t.kind == "low_score":
        return bool(facts.scores) and facts.scores[-1] < (t.score or 0.0)
    if t.kind == "session_killed_early":
        return facts.killed_early
    if t.kind == "repeated_failure":
        return facts.fail_streak >= (t.count or 1)
    if t.kind == "polling":
        return facts.poll_streak >= (t.count or 1)
    return False


class SimulatedAnnotator:
    """Posts a task's hints into a run when they apply; stops when the run ends."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        task: Task,
        workspace: Path,
        name: str = SIMULATED_NAME,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.task = task
        self.workspace = workspace
        self.name = ensure_identity(store, name)
        self.poll_interval_s = poll_interval_s
        self.facts = RunFacts()
        self._seq = 0

    def check(self) -> list[Event]:
        """Read new events, post every hint whose trigger now holds; returns what it posted."""
        for ev in self.store.events(self.run_id, after=self._seq):
            self.facts.apply(ev, self.name, self.store)
            self._seq = ev.seq
        posted: list[Event] = []
        if self.facts.finished:
            return posted
        for hint in self.task.spec.hints:
            if hint.id in self.facts.posted or not hint_matches(hint, self.facts, self.workspace):
                continue
            posted.append(
                post_guidance(
                    self.store,
                    self.run_id,
                    author=self.name,
                    text=hint.text,
                    kind=hint.kind,
                    extra={"hint_id": hint.id},
                )
            )
            self.facts.posted.add(hint.id)
        return posted

    async def follow(self) -> None:
        """Check the run until it finishes."""
        while True:
            self.check()
            if self.facts.finished:
                return
            await asyncio.sleep(self.poll_interval_s)
