"""A run's actions read back from its log, for the rules, the judge and the report.

The actions are those of `apollo.log.actions.ActionFold` (an act call that produced an
assistant turn, its tool calls paired with their results, the guidance delivered after it),
folded with the text of every reply and result, since the rules and the judge read both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from apollo.log import schema
from apollo.log.actions import Action, GuidanceNote, action_texts, fold_actions
from apollo.log.store import Store, StoreError


@dataclass
class Trajectory:
    """Everything supervision looks at in one run."""

    run_id: str
    task: str
    task_text: str
    status: str | None
    actions: list[Action]
    guidance: list[GuidanceNote]  # oldest first
    submissions: list[tuple[int | None, schema.Submission]]  # (step, submission), in log order
    finish_reason: str | None


def load_trajectory(store: Store, run_id: str) -> Trajectory:
    """Read a run's actions, results, guidance and outcomes from its log."""
    run = store.get_run(run_id)
    if run is None:
        raise StoreError(f"no run {run_id!r} (see `apollo runs`)")
    events = store.events(run_id)
    fold = fold_actions(events, action_texts(store, events, results=True))
    task_text = ""
    if fold.started is not None and len(fold.started["messages"]) > 1:
        task = json.loads(store.get_blob(fold.started["messages"][1]))
        task_text = task["content"]
    outcome = fold.outcome
    return Trajectory(
        run_id,
        run.task,
        task_text,
        outcome["status"] if outcome else None,
        fold.actions,
        sorted(fold.guidance.values(), key=lambda g: g.seq),
        list(zip(fold.submission_steps, fold.submissions, strict=True)),
        outcome["reason"] if outcome else None,
    )
