"""A batch's live progress in the terminal: a rich progress bar (runs done of all, successes
so far, interventions, model tokens, ETA) and a line per run that ends.

Counts come from the events of the runs being driven, so they move while a run is in flight;
when a run ends its episode's figures (read from its whole log) replace what was counted live.
Off a terminal, rich draws no bar and only the lines are printed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from apollo.log import schema
from apollo.log.events import Event, Kind
from apollo.rollout.batch import Episode, Slot
from apollo.terminal import safe


def count(n: float) -> str:
    """A short count: 950, 12.3k, 4.1M."""
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:g}"


def episode_line(slot: Slot, status: str, done: int, total: int) -> str:
    """The line printed when a slot's run ends."""
    head = f"[{done}/{total}] {slot.name} run {slot.run_id}"
    ep = slot.episode
    if ep is None:
        return safe(f"{head}: {status}, not ended for good (the next drive resumes it)")
    score = "no final score" if ep.score is None else f"score {ep.score:g}"
    verdict = "success" if ep.success else "no success"
    return safe(
        f"{head}: {ep.status}, {score} ({verdict}) · {ep.steps} steps · "
        f"{ep.interventions} interventions · {count(ep.tokens)} tokens"
    )


class ProgressView:
    """The BatchView of `apollo collect` and `apollo eval`."""

    def __init__(self, title: str, console: Console | None = None) -> None:
        # Lines are never wrapped (a log file keeps one line per run); off a terminal no bar.
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.title = title
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "· {task.fields[successes]} ok · {task.fields[interventions]} interventions "
                "· {task.fields[tokens]} tokens"
            ),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self._task: TaskID | None = None
        self.total = 0
        self.done = 0
        self.successes = 0
        self._live: dict[str, tuple[int, int]] = {}  # run id -> (tokens, interventions)

    def start(self, slots: Sequence[Slot]) -> None:
        self.total = len(slots)
        ended = [s.episode for s in slots if s.episode is not None]
        self.done = len(ended)
        self.successes = sum(e.success for e in ended)
        for ep in ended:
            self._settle(ep)
        if self.done:
            self.console.print(
                safe(f"{self.title}: {self.done} of {self.total} runs ended before; continuing"),
                markup=False,
            )
        self.progress.start()
        self._task = self.progress.add_task(
            safe(self.title), total=self.total, completed=self.done, **self._fields()
        )

    def _settle(self, ep: Episode) -> None:
        self._live[ep.run_id] = (ep.tokens, ep.interventions)

    def _fields(self) -> dict[str, Any]:
        tokens = sum(t for t, _ in self._live.values())
        interventions = sum(i for _, i in self._live.values())
        return {
            "successes": str(self.successes),
            "interventions": str(interventions),
            "tokens": count(tokens),
        }

    def event(self, ev: Event) -> None:
        tokens, interventions = self._live.get(ev.run_id, (0, 0))
        if (call := schema.MODEL_CALL.of(ev)) is not None:
            tokens += schema.call_tokens(call)[0]
        elif ev.kind == Kind.GUIDANCE:
            interventions += 1
        else:
            return
        self._live[ev.run_id] = (tokens, interventions)
        self._refresh()

    def ended(self, slot: Slot, status: str) -> None:
        if slot.episode is not None:
            self.done += 1
            self.successes += slot.episode.success
            self._settle(slot.episode)
        self.progress.console.print(episode_line(slot, status, self.done, self.total), markup=False)
        self._refresh()

    def _refresh(self) -> None:
        if self._task is not None:
            self.progress.update(self._task, completed=self.done, **self._fields())

    def stop(self) -> None:
        self.progress.stop()
