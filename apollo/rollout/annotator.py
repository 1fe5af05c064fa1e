"""A rule-based simulated annotator: follows a run through its log and posts the task's hints
as guidance when their triggers match, under its own annotator identity.

Its state (which hints it has posted) is read back from the log, so it survives restarts and
never posts a hint twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from apollo.env.task import Hint, Task
from apollo.log.actions import POLL_TOOLS, Action, ActionFold, Result, Streak, action_texts
from apollo.log.events import Event, Kind, Role
from apollo.log.store import Store
from apollo.log.writes import post_guidance

SIMULATED_NAME = "simulated-annotator"
ANNOTATORS = ("simulated", "llm", "none")  # who follows a run: these rules, a model, nobody
# The LLM annotator's default model (apollo.rollout.llm_annotator): the embedded model that
# follows the families best.
LLM_ANNOTATOR_MODEL = "embedded:qwen2.5-coder-1.5b"


def ensure_identity(store: Store, name: str = SIMULATED_NAME) -> str:
    """Register the simulated annotator once (role annotator); returns its name."""
    if not any(a.name == name for a in store.list_annotators()):
        store.add_annotator(name, Role.ANNOTATOR)
    return name


@dataclass
class RunFacts:
    """What the triggers look at: the run's actions (its ActionFold) and two streaks of its
    results, the same failing `run` command in a row and polls that got no new output."""

    me: str = SIMULATED_NAME  # the annotator whose hints count as posted
    # The latest action is all the triggers read: constant memory however long the run.
    fold: ActionFold = field(default_factory=lambda: ActionFold(history=False))
    fail_streak: Streak = field(default_factory=Streak)
    poll_streak: Streak = field(default_factory=Streak)

    def apply(self, ev: Event, texts: Mapping[str, str] | None = None) -> None:
        """Apply one event; `texts` holds the replies of its actions (`action_texts`), which
        say the commands of `run` calls."""
        self.fold.apply(ev, texts)
        if ev.kind == Kind.OBSERVATION and self.fold.actions:
            # The fold adds each result to the latest action, whose calls it answers; read
            # from there, the streaks need neither the fold's list of results nor its history.
            action = self.fold.actions[-1]
            self._feed(action, action.results[-1])

    def _feed(self, action: Action, result: Result) -> None:
        if result.tool == "run":
            call = next((c for c in action.calls if c.result is result), None)
            command = str(((call.args if call else None) or {}).get("command", ""))
            self.fail_streak.push(command if result.error else None, result.step)
        polled = result.tool in POLL_TOOLS and not result.meta.get("new_bytes")
        self.poll_streak.push("poll" if polled else None, result.step)

    @property
    def step(self) -> int:
        """The latest step the agent acted at."""
        return self.fold.last_step

    @property
    def finished(self) -> bool:
        """Whether the run has ended (and was not resumed since)."""
        return self.fold.outcome is not None

    @property
    def posted(self) -> set[str]:
        """The hints this annotator has posted into the run."""
        return {g.hint_id for g in self.fold.guidance.values() if g.author == self.me and g.hint_id}

    @property
    def scores(self) -> list[float]:
        """The scores of the run's submissions so far (not the final one)."""
        return [
            float(s["score"])
            for s in self.fold.submissions
            if not s["final"] and s["score"] is not None
        ]

    @property
    def killed_early(self) -> bool:
        """Whether the agent has killed a session that was still running."""
        return self.fold.killed is not None


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
        return facts.fail_streak.count >= (t.count or 1)
    if t.kind == "polling":
        return facts.poll_streak.count >= (t.count or 1)
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
        self.facts = RunFacts(me=self.name)
        self._seq = 0

    def check(self) -> list[Event]:
        """Read new events, post every hint whose trigger now holds; returns what it posted."""
        events = self.store.events(self.run_id, after=self._seq)
        texts = action_texts(self.store, events)
        for ev in events:
            self.facts.apply(ev, texts)
            self._seq = ev.seq
        posted: list[Event] = []
        if self.facts.finished:
            return posted
        # The fold reads this check's hints back from the log at the next check.
        done = self.facts.posted
        for hint in self.task.spec.hints:
            if hint.id in done or not hint_matches(hint, self.facts, self.workspace):
                continue
            posted.append(
                post_guidance(
                    self.store,
                    self.run_id,
                    author=self.name,
                    text=hint.text,
                    kind=hint.kind,
                    hint_id=hint.id,
                )
            )
            done.add(hint.id)
        return posted

    async def follow(self) -> None:
        """Check the run until it finishes."""
        while True:
            self.check()
            if self.facts.finished:
                return
            await asyncio.sleep(self.poll_interval_s)
