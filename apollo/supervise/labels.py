"""Labels: keep / mask verdicts on a run's actions, from humans, the LLM judge and rules.

A label is a `label` event {step, verdict, reason, source, author, rule?, model?} in the run's
log, so every verdict carries who or what made it and when (docs/design.md "Principles":
provenance). Labels are never edited: a later label of the same origin replaces an earlier one
(see `current`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from apollo.log.events import Event, Kind
from apollo.log.store import Store


@dataclass(frozen=True, slots=True)
class Label:
    """One verdict on one action, with its provenance."""

    step: int
    verdict: str
    reason: str
    source: str
    author: str
    seq: int
    ts: float
    rule: str | None = None
    model: str | None = None

    def origin(self) -> tuple[str, str, str]:
        """Labels of the same origin replace each other: a rule per rule name, a judge per
        model, a human per person."""
        return (self.source, self.rule or self.author, str(self.step))


def from_events(events: Iterable[Event]) -> list[Label]:
    """Every label event of a run, oldest first."""
    out = []
    for ev in events:
        if ev.kind != Kind.LABEL:
            continue
        p = ev.payload
        out.append(
            Label(
                step=int(p["step"]),
                verdict=p["verdict"],
                reason=p.get("reason") or "",
                source=p["source"],
                author=p.get("author") or ev.actor,
                seq=ev.seq,
                ts=ev.ts,
                rule=p.get("rule"),
                model=p.get("model"),
            )
        )
    return out


def current(labels: Iterable[Label]) -> list[Label]:
    """The labels still in force: the latest of each origin (see `Label.origin`)."""
    latest: dict[tuple[str, str, str], Label] = {}
    for label in sorted(labels, key=lambda lb: lb.seq):
        latest[label.origin()] = label
    return sorted(latest.values(), key=lambda lb: lb.seq)


def read_labels(store: Store, run_id: str) -> list[Label]:
    """All label events of a run."""
    return from_events(store.events(run_id, kinds=[Kind.LABEL]))
