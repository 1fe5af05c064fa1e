"""What an experiment's phases made: its collections, each arm's training data, the
trainings and the evaluations (apollo.experiment.driver makes them, .report reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apollo.experiment.plan import ArmData
from apollo.rollout.batch import Episode


@dataclass(frozen=True)
class Collected:
    """A finished collection: its episodes, and how many rounds of the instances it took."""

    tag: str
    episodes: tuple[Episode, ...]
    rounds: int

    @property
    def steps(self) -> int:
        return sum(e.steps for e in self.episodes)


@dataclass(frozen=True)
class ArmExport:
    """One trained arm's training data: the export (None when no run qualified)."""

    data: ArmData
    runs: tuple[str, ...]
    path: Path | None
    card: dict[str, Any]


@dataclass(frozen=True)
class Trained:
    """One training of an arm: its folder, or None and why not (no data to train on)."""

    arm: str
    seed: int
    out: Path | None
    why_not: str = ""

    @property
    def label(self) -> str:
        return f"{self.arm}-seed{self.seed}"


@dataclass(frozen=True)
class Evaluated:
    """One model's evaluation: which arm (and training seed), its folder and episodes."""

    arm: str
    seed: int | None
    model: str
    out: Path
    episodes: tuple[Episode, ...]


@dataclass(frozen=True)
class Outcome:
    """What the phases made."""

    collections: dict[str, Collected]
    exports: dict[str, ArmExport]
    trainings: tuple[Trained, ...]
    evaluations: tuple[Evaluated, ...]
    # CPU and wall seconds per phase, over every process that ran it (experiment.compute).
    compute: dict[str, dict[str, float]] = field(default_factory=dict)
    # Each LLM judge's agreement with the rules and people (experiment.agreement).
    judges: list[dict[str, Any]] = field(default_factory=list)
