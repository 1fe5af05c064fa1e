"""`apollo experiment`'s driver: the phases in order, each resumable because its state is what
it made in the home: runs found by their batch tag, and files (exports) written whole or not
at all. Running it again redoes nothing that finished.

Built so far: the guided collection, the unguided collection matched to its steps, supervision
(the rules) and each arm's tokenized export. Training, evaluation and the report come next.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apollo.experiment.plan import GUIDED, UNGUIDED, ArmData, arm_data
from apollo.experiment.spec import NO_HUMAN, Experiment, ExperimentError
from apollo.export.card import card_figures, card_path
from apollo.export.formats.tokenized import Tokenized, load_tokenizer
from apollo.export.pipeline import RunFilter, export
from apollo.export.windows import WindowOptions
from apollo.llm import models
from apollo.rollout.batch import Batch, BatchPlan, BatchResult, BatchView, Episode
from apollo.rollout.home import Home
from apollo.rollout.runner import RunOptions
from apollo.supervise.policy import Policy
from apollo.supervise.report import supervise_runs

BUILT = ("collect", "supervise", "export")
NEXT = ("train", "evaluate", "report")
# Unguided rounds are added until their steps reach the guided collection's; each round adds
# at least one step per instance, so this only stops a collection that makes no progress.
MAX_ROUNDS = 50
SPEC_RECORD = "spec.json"


class ExperimentIncomplete(ExperimentError):
    """A phase that could not finish (runs that stopped on an error): the same command
    continues it."""


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


def experiment_dir(home: Home, exp: Experiment) -> Path:
    """Where an experiment keeps its files in the home."""
    return home.path / "experiments" / exp.name


def _recorded(exp: Experiment) -> dict[str, Any]:
    """What must not change once an experiment started: everything but the power settings,
    which only the report reads, and the profiles (applied already)."""
    return exp.spec.model_dump(mode="json", exclude={"power", "profiles"})


class Driver:
    """Runs an experiment's phases in a home. `view(title)` gives the progress view of a
    collection (None: none); `say` gets one line per phase step."""

    def __init__(
        self,
        home: Home,
        exp: Experiment,
        *,
        say: Callable[[str], None] = print,
        view: Callable[[str], BatchView | None] = lambda title: None,
        concurrency: int = 1,
    ) -> None:
        self.home, self.exp = home, exp
        self.say, self.view, self.concurrency = say, view, concurrency
        self.dir = experiment_dir(home, exp)

    def claim(self) -> None:
        """Record the spec in the home, or refuse one that differs from the recorded one
        (continuing would mix two experiments under one name)."""
        path = self.dir / SPEC_RECORD
        now = _recorded(self.exp)
        if path.is_file():
            was = json.loads(path.read_text(encoding="utf-8"))
            differs = sorted(k for k in now.keys() | was.keys() if now.get(k) != was.get(k))
            if differs:
                raise ExperimentError(
                    f"experiment {self.exp.name!r} in {self.home.path} was started with another "
                    f"spec ({', '.join(differs)} differ); restore those fields, or give the "
                    "experiment another name"
                )
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(now, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    async def run(self) -> dict[str, ArmExport]:
        """The phases built so far, in order; each arm's training data."""
        self.claim()
        n_phases = len(BUILT) + len(NEXT)
        guided = await self.collect(GUIDED, annotator=self.exp.spec.collect.annotator)
        self.say(f"[1/{n_phases}] collect: guided: {self._describe(guided)}")
        collections = {GUIDED: guided}
        if NO_HUMAN in self.exp.spec.arms:
            unguided = await self.collect(UNGUIDED, annotator="none", steps=guided.steps)
            self.say(f"[1/{n_phases}] collect: unguided: {self._describe(unguided)}")
            collections[UNGUIDED] = unguided
        runs = [e.run_id for c in collections.values() for e in c.episodes]
        labels = await self.supervise(runs)
        self.say(f"[2/{n_phases}] supervise: {len(runs)} runs, {labels} rule labels written")
        exports = {}
        for arm in self.exp.spec.trained_arms:
            done = self.export(arm_data(arm), collections)
            exports[arm] = done
            self.say(f"[3/{n_phases}] export: {self._describe_export(done)}")
        return exports

    def tag(self, collection: str) -> str:
        """The batch tag of a collection of this experiment."""
        return f"exp-{self.exp.name}-{collection}"

    def _options(self, annotator: str) -> RunOptions:
        spec = self.exp.spec
        return RunOptions(model=spec.model, model_name=spec.model_name, annotator=annotator)

    async def _drive(self, collection: str, annotator: str, rounds: int) -> BatchResult:
        spec = self.exp.spec.collect
        plan = BatchPlan(
            kind="collect",
            tag=self.tag(collection),
            families=tuple(str(f.task.path) for f in self.exp.families),
            split=spec.split,
            n=spec.n,
            repeats=rounds,
            options=self._options(annotator),
        )
        title = f"experiment {self.exp.name} · collect {collection}"
        if rounds > 1:
            title += f" · round {rounds}"
        result = await Batch(self.home, plan).drive(self.concurrency, self.view(title))
        if result.open:
            why = "; ".join(f"{run}: {reason}" for run, reason in result.failed.items())
            raise ExperimentIncomplete(
                f"collect {collection}: {len(result.open)} runs did not end"
                + (f" ({why})" if why else "")
                + "; run the same command again to resume them"
            )
        return result

    async def collect(self, collection: str, annotator: str, steps: int = 0) -> Collected:
        """One collection of the training instances; with `steps`, whole rounds of them are
        added until their steps reach it (the no-human arm's rollout compute matches the
        guided collection's)."""
        rounds = 1
        while True:
            result = await self._drive(collection, annotator, rounds)
            done = Collected(self.tag(collection), tuple(result.episodes), rounds)
            if done.steps >= steps or rounds >= MAX_ROUNDS:
                return done
            rounds += 1

    async def supervise(self, runs: Sequence[str]) -> int:
        """Label the runs with the rules (a rule label already written is not written again);
        the number of labels written now."""
        store = self.home.open_store()
        try:
            report = await supervise_runs(store, list(runs))
        finally:
            store.close()
        return report.rule_labels_written

    def export(self, data: ArmData, collections: dict[str, Collected]) -> ArmExport:
        """An arm's tokenized training data (made once: an export is written whole or not at
        all, so its card means it is done)."""
        episodes = collections[data.collection].episodes
        runs = tuple(e.run_id for e in episodes if e.success or not data.successes_only)
        if not runs:  # an empty filter would mean every run
            return ArmExport(data, runs, None, {})
        out = self.dir / "data" / f"{data.arm}.jsonl"
        card = card_path(out)
        if not card.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            base = models.parse(self.exp.spec.base_model)
            assert base is not None  # the spec checked it
            gguf = models.ensure(base, models.cache_dir(self.home.path))
            fmt = Tokenized(load_tokenizer(str(gguf)))
            command = f"apollo experiment {self.exp.path} (arm {data.arm})"
            store = self.home.open_store()
            try:
                export(
                    store,
                    out,
                    fmt,
                    Policy(data.policy),
                    RunFilter(runs=runs),
                    WindowOptions(guidance=data.guidance),
                    command,
                    force=True,  # a file without its card is an export that did not finish
                )
            finally:
                store.close()
        figures = card_figures(card.read_text(encoding="utf-8"))
        if figures is None:
            raise ExperimentError(
                f"{card}: not a dataset card with figures; delete it and {out} to export again"
            )
        return ArmExport(data, runs, out, figures)

    @staticmethod
    def _describe(c: Collected) -> str:
        ok = sum(e.success for e in c.episodes)
        rounds = f" in {c.rounds} rounds" if c.rounds > 1 else ""
        return f"{len(c.episodes)} runs{rounds}, {ok} successes, {c.steps} steps"

    @staticmethod
    def _describe_export(done: ArmExport) -> str:
        if done.path is None:
            return f"{done.data.arm}: no run qualifies ({done.data.describe()}), no data"
        card = done.card
        return (
            f"{done.data.arm}: {card['samples']} samples from {card['runs']} runs, "
            f"{card['tokens_trained']} tokens trained, {card['tokens_masked']} masked"
        )
