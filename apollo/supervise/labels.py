"""Labels: keep / mask verdicts on a run's actions, from humans, the LLM judge and rules.

A label is a `label` event (`apollo.log.schema.Label`) in the run's log, so every verdict
carries who or what made it and when (docs/design.md "Principles": provenance); it is read as
an `apollo.log.actions.Label`. Labels are never edited: a later label of the same origin
replaces an earlier one (see `current`).
"""

from __future__ import annotations

from collections.abc import Iterable

from apollo.log.actions import Label
from apollo.log.events import Kind
from apollo.log.store import Store


def current(labels: Iterable[Label]) -> list[Label]:
    """The labels still in force: the latest of each origin (see `Label.origin`)."""
    latest: dict[tuple[str, str, str], Label] = {}
    for label in sorted(labels, key=lambda lb: lb.seq):
        latest[label.origin()] = label
    return sorted(latest.values(), key=lambda lb: lb.seq)


def read_labels(store: Store, run_id: str) -> list[Label]:
    """All label events of a run, oldest first."""
    return [Label.of(ev) for ev in store.events(run_id, kinds=[Kind.LABEL])]
