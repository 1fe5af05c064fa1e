"""An LLM simulated annotator: a model that follows a run through its log like a person in the
console, and every few steps reads the task, the family's private reference notes
(`eval/annotator_notes.md`, which the agent never sees) and the latest steps, decides whether
the run has drifted and, if so, writes one short strategic hint, posted as guidance under its
own annotator identity. The agent never waits for it.

Every decision is logged (`annotator_decision`), "no intervention" included. A hint is checked
before it is posted: one that holds a hidden value of the instance (`hidden_values`) is
refused and logged as such, never posted. Hints are rate-limited per run (at most
`max_hints`, at least `min_gap_steps` apart). Its state (the steps it decided at, the hints
it posted) is read back from the log, so a restart neither repeats a decision nor exceeds
the limits.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from apollo.env.family import ANNOTATOR_NOTES
from apollo.env.task import TASKS_DIR, TRUTH_DIR, Task
from apollo.llm.base import ChatModel, ModelError
from apollo.log import schema
from apollo.log.actions import ActionFold, action_texts
from apollo.log.events import Event
from apollo.log.store import RunEnded, Store
from apollo.log.writes import MAX_GUIDANCE_CHARS, post_decision
from apollo.rollout.annotator import ensure_identity
from apollo.rollout.prompts import prompt
from apollo.supervise.judge import JudgeConfig, render_step

LLM_NAME = "llm-annotator"
_MIN_HIDDEN = 3  # shorter values (a digit, "no") occur in any text


@dataclass(frozen=True)
class LLMAnnotatorConfig:
    """How often the LLM annotator looks and how much it may say."""

    every_steps: int = 3  # a decision each time the run has gone this many steps further
    recent_steps: int = 6  # the latest steps it reads
    max_hints: int = 3  # hints per run
    min_gap_steps: int = 4  # steps between two hints
    timeout_s: float = 300.0
    params: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.2, "max_tokens": 200})


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def hidden_values(task: Task) -> set[str]:
    """Every value of an instance's hidden truth (`eval/truth/`: JSON leaves and CSV cells)
    of 3 characters or more; shorter ones, like a single digit, occur in any text."""
    found: set[str] = set()
    truth = task.eval_dir / TRUTH_DIR
    for path in sorted(truth.rglob("*")) if truth.is_dir() else ():
        try:
            if path.suffix == ".json":
                leaves = _leaves(json.loads(path.read_text(encoding="utf-8")))
                found |= {str(v) for v in leaves if not isinstance(v, bool) and v is not None}
            elif path.suffix == ".csv":
                with open(path, newline="", encoding="utf-8") as f:
                    found |= {cell for row in csv.reader(f) for cell in row}
        except (ValueError, UnicodeDecodeError):
            continue  # unreadable: nothing to compare with
    return {v.strip() for v in found if len(v.strip()) >= _MIN_HIDDEN}


def reference_notes(task: Task) -> str:
    """The family's private notes for annotators, or '' when it has none. An instance of a
    built-in family reads its family's current notes: the notes are not in the digest, so an
    instance made before they were written or edited holds an old copy."""
    instance = task.spec.instance
    family = TASKS_DIR / instance.family if instance is not None else None
    if family is not None and (family / "task.yaml").is_file():
        path = family / "eval" / ANNOTATOR_NOTES
    else:  # a task of its own, or an instance of a family folder elsewhere: its own copy
        path = task.eval_dir / ANNOTATOR_NOTES
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def parse_decision(text: str) -> tuple[bool, str, str | None] | None:
    """(drifted, reason, hint) from the model's answer: its first JSON object; None when
    there is none or it lacks `drifted`."""
    for match in re.finditer(r"\{", text):
        try:
            data, _ = json.JSONDecoder().raw_decode(text[match.start() :])
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("drifted"), bool):
            hint = data.get("hint")
            hint = hint.strip() if isinstance(hint, str) and hint.strip() else None
            return data["drifted"], str(data.get("reason") or "").strip(), hint
    return None


class LLMAnnotator:
    """Follows one run; decides every `every_steps` steps while hints are allowed."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        task: Task,
        model: ChatModel,
        name: str = LLM_NAME,
        config: LLMAnnotatorConfig | None = None,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.store, self.run_id, self.task, self.model = store, run_id, task, model
        self.name = ensure_identity(store, name)
        self.config = config or LLMAnnotatorConfig()
        self.poll_interval_s = poll_interval_s
        # The run as far as it has been read, folded as it comes (the latest steps are
        # shown with their results): a decision never reads the whole log again.
        self.fold = ActionFold()
        self._task_text: str | None = None
        self.hidden = hidden_values(task)
        self.notes = reference_notes(task)
        self.decided_at = 0  # the last step it decided at
        self.hint_steps: list[int] = []  # the steps it posted hints at
        self._seq = 0

    def _read(self) -> None:
        events = self.store.events(self.run_id, after=self._seq)
        texts = action_texts(self.store, events, results=True)
        for ev in events:
            self.fold.apply(ev, texts)
            decision = schema.ANNOTATOR_DECISION.of(ev)
            if decision is not None and decision["annotator"] == self.name:
                self.decided_at = max(self.decided_at, decision["step"])
                if decision["outcome"] == "posted":
                    self.hint_steps.append(decision["step"])
            self._seq = ev.seq

    @property
    def due(self) -> bool:
        """Whether it should look now: the run goes on, it may still hint, and the run has
        gone `every_steps` further since its last decision and `min_gap_steps` since its
        last hint."""
        step, cfg = self.fold.last_step, self.config
        if self.finished or len(self.hint_steps) >= cfg.max_hints or step < 1:
            return False
        if self.hint_steps and step < self.hint_steps[-1] + cfg.min_gap_steps:
            return False
        return step >= self.decided_at + cfg.every_steps

    async def check(self) -> Event | None:
        """Read new events and, when due, decide; the decision event, or None."""
        self._read()
        if not self.due:
            return None
        try:
            return await self.decide(self.fold.last_step)
        except RunEnded:  # the run ended while the model was thinking
            return None

    @property
    def finished(self) -> bool:
        """Whether the run has ended (and was not resumed since)."""
        return self.fold.outcome is not None

    def task_text(self) -> str:
        """The task message the agent got (read once)."""
        if self._task_text is None:
            started = self.fold.started
            messages = started["messages"] if started is not None else []
            blob = json.loads(self.store.get_blob(messages[1])) if len(messages) > 1 else {}
            self._task_text = str(blob.get("content") or "")
        return self._task_text

    def _message(self, step: int) -> str:
        guidance = sorted(self.fold.guidance.values(), key=lambda g: g.seq)
        delivered: dict[int, list[str]] = {}
        for g in guidance:
            if g.delivered_step is not None:
                delivered.setdefault(g.delivered_step, []).append(g.text)
        recent = [a for a in self.fold.actions if a.step <= step][-self.config.recent_steps :]
        cfg = JudgeConfig()
        given = [f"- at step {g.delivered_step or 'queued'}: {g.text}" for g in guidance]
        return "\n".join(
            [
                f"## Task ({self.task.id})",
                self.task_text()[:3000],
                "## Reference notes (private: the agent cannot see them)",
                self.notes or "none",
                "## Hints already given",
                "\n".join(given) or "none",
                f"## The latest steps (the run is at step {step})",
                *(render_step(a, cfg, delivered.get(a.step, [])) for a in recent),
            ]
        )

    async def decide(self, step: int) -> Event:
        """Ask the model about the run at `step`, post its hint if it passes the checks, and
        log the decision."""
        decision: schema.AnnotatorDecision = {
            "annotator": self.name,
            "step": step,
            "outcome": "no_intervention",
            "drifted": None,
            "reason": "",
            "hint": None,
            "guidance_id": None,
            "model": self.model.name,
            "latency_ms": 0.0,
        }
        messages = [
            {"role": "system", "content": prompt("annotator")},
            {"role": "user", "content": self._message(step)},
        ]
        try:
            answer = await asyncio.wait_for(
                self.model.complete(messages, None, dict(self.config.params)),
                self.config.timeout_s,
            )
        except (ModelError, TimeoutError) as exc:
            decision |= {"outcome": "model_error", "reason": str(exc)[:500] or type(exc).__name__}
            return post_decision(self.store, self.run_id, decision)
        decision["latency_ms"] = answer.latency_ms
        parsed = parse_decision(answer.content or "")
        if parsed is None:
            decision |= {
                "outcome": "unparseable",
                "reason": f"no JSON decision in: {(answer.content or '')[:300]!r}",
            }
            return post_decision(self.store, self.run_id, decision)
        drifted, reason, hint = parsed
        reason = self._withheld(reason)[:500]
        decision |= {"drifted": drifted, "reason": reason}
        if not drifted or hint is None:
            return post_decision(self.store, self.run_id, decision)
        refusal = self.refusal(hint)
        if refusal:  # the refused text is not kept: it may hold the answer
            decision |= {"outcome": "refused", "reason": f"{refusal} ({reason[:300]})"}
            return post_decision(self.store, self.run_id, decision)
        decision |= {"outcome": "posted", "hint": hint}
        return post_decision(self.store, self.run_id, decision, hint_kind="strategy")

    def _withheld(self, text: str) -> str:
        """`text`, or a note in its place when it holds a hidden value (the console and
        `apollo show` display decisions' reasons)."""
        lowered = text.lower()
        if any(v.lower() in lowered for v in self.hidden):
            return "(its reason is withheld: it held a hidden value of the instance)"
        return text

    def refusal(self, hint: str) -> str | None:
        """Why a hint may not be posted, or None: it holds a hidden value of the instance,
        or is too long for guidance."""
        if len(hint) > MAX_GUIDANCE_CHARS:
            return f"the hint is {len(hint)} characters, above {MAX_GUIDANCE_CHARS}"
        if self._withheld(hint) != hint:
            return "the hint held a hidden value of the instance"
        return None

    async def follow(self) -> None:
        """Check the run until it finishes."""
        while True:
            await self.check()
            if self.finished:
                return
            await asyncio.sleep(self.poll_interval_s)
