"""How a run ended, read from its log: the one rule for every reader of `run_finished`.

A failed run (its model went away, say) can be resumed, so one log may hold several
`run_finished` events: each resume writes `run_resumed` after the previous one. A run's outcome
is therefore its last `run_finished` with no `run_resumed` after it; a run whose latest
`run_finished` was followed by `run_resumed` has not ended. Every `run_finished` says whether
it may still be followed by a resume (`resumable`), so a reader of one event is not misled
either (docs/design.md "Crash safety").
"""

from __future__ import annotations

from collections.abc import Iterable

from apollo.log import schema
from apollo.log.events import Event, Kind, RunStatus
from apollo.log.store import FINAL_STATUSES

# Ends a run can come back from: a failed run's cause (its model went away, say) may be fixed.
RESUMABLE = frozenset(s for s in RunStatus if s.ended and s not in FINAL_STATUSES)


def resumable(status: str) -> bool:
    """Whether a run that ended with `status` may be resumed (only a failed run may)."""
    return status in RESUMABLE


def fold_outcome(current: schema.RunFinished | None, ev: Event) -> schema.RunFinished | None:
    """The run's outcome after `ev`, given the outcome before it: the `run_finished` payload
    that ends the run so far, or None while it has not ended (or was resumed since)."""
    if ev.kind == Kind.RUN_FINISHED:
        return schema.RUN_FINISHED.payload(ev)
    if ev.kind == Kind.RUN_RESUMED:
        return None
    return current


def final_outcome(events: Iterable[Event]) -> schema.RunFinished | None:
    """The `run_finished` payload a run's events end on, or None if the run has not ended."""
    outcome: schema.RunFinished | None = None
    for ev in events:
        outcome = fold_outcome(outcome, ev)
    return outcome
