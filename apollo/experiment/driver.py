"""`apollo experiment`'s driver: the phases in order, each resumable because its state is what
it made in the home: runs found by their batch tag, and files (exports) written whole or not
at all. Running it again redoes nothing that finished.

The phases: the guided collections (by the rules' annotator, and by the LLM annotator for the
apollo-llm arm) and the unguided one matched to their steps, supervision (the rules, and an
LLM judge when the spec names one), each arm's tokenized export, the trainings (every trained
arm x seed), the evaluations (every model on the test split, unguided) and the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from apollo.experiment.agreement import agreement
from apollo.experiment.compute import Compute
from apollo.experiment.outcome import ArmExport, Collected, Evaluated, Outcome, Trained
from apollo.experiment.plan import GUIDED, GUIDED_LLM, UNGUIDED, ArmData, arm_data
from apollo.experiment.spec import (
    APOLLO_LLM,
    NO_HUMAN,
    UNTRAINED,
    Experiment,
    ExperimentError,
    Supervise,
)
from apollo.export.card import card_figures, card_path
from apollo.export.formats.tokenized import Tokenized, load_tokenizer
from apollo.export.pipeline import RunFilter, export
from apollo.export.windows import WindowOptions
from apollo.llm import models
from apollo.log.store import FINAL_STATUSES, Store
from apollo.rollout.batch import Batch, BatchPlan, BatchResult, BatchView
from apollo.rollout.home import Home, try_lock
from apollo.rollout.runner import Runner, RunOptions
from apollo.supervise.judge import Judge, write_judge_labels
from apollo.supervise.labels import read_labels
from apollo.supervise.policy import Policy
from apollo.supervise.report import supervise_runs
from apollo.supervise.trajectory import load_trajectory

PHASES = ("collect", "supervise", "export", "train", "evaluate", "report")
# Unguided rounds are added until their steps reach the guided collection's; each round adds
# at least one step per instance, so this only stops a collection that makes no progress.
MAX_ROUNDS = 50
SPEC_RECORD = "spec.json"
LOCK = "experiment.lock"


class ExperimentIncomplete(ExperimentError):
    """A phase that could not finish (runs that stopped on an error): the same command
    continues it."""


def experiment_dir(home: Home, exp: Experiment) -> Path:
    """Where an experiment keeps its files in the home."""
    return home.path / "experiments" / exp.name


def _recorded(exp: Experiment) -> dict[str, Any]:
    """What must not change once an experiment started: everything but the power settings,
    which only the report reads, and the profiles (applied already); and the version
    (digest) of every family, since an edited family makes other instances."""
    out = exp.spec.model_dump(mode="json", exclude={"power", "profiles"})
    out["family_digests"] = {f.id: f.digest for f in exp.families}
    return out


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
        self._lock: IO[str] | None = None  # held from claim() to release()

    def claim(self) -> None:
        """Hold the experiment for this process, and record its spec in the home, or refuse
        one that differs from the recorded one (continuing would mix two experiments under
        one name)."""
        if self._lock is None:
            self._lock = try_lock(self.dir / LOCK)
            if self._lock is None:
                raise ExperimentError(
                    f"experiment {self.exp.name!r} in {self.home.path} is being run by another "
                    "live process; wait for it to end or stop it"
                )
        path = self.dir / SPEC_RECORD
        now = _recorded(self.exp)
        if path.is_file():
            was = json.loads(path.read_text(encoding="utf-8"))
            differs = sorted(k for k in now.keys() | was.keys() if now.get(k) != was.get(k))
            if differs:
                self.release()
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

    async def run(self) -> Outcome:
        """Every phase, in order."""
        self.home.open_store().close()  # a store that cannot be used is refused before anything
        self.claim()
        spent = Compute(self.dir)
        try:
            with spent.phase("collect"):
                collections = await self.collect_all()
            collected = [e.run_id for c in collections.values() for e in c.episodes]
            with spent.phase("supervise"):
                await self.supervise(collected)
            with spent.phase("export"):
                exports = self.export_all(collections)
            with spent.phase("train"):
                trainings = self.train_all(exports)
            with spent.phase("evaluate"):
                evaluations = await self.evaluate_all(trainings)
            outcome = Outcome(
                collections, exports, trainings, evaluations, spent.spent, self.agreement(collected)
            )
            self.report(outcome)
            return outcome
        finally:
            self.release()

    def release(self) -> None:
        """Let another process run the experiment (claim() held it)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def report(self, outcome: Outcome) -> None:
        """results.json, report.md, episodes.jsonl and the plots (rewritten every time: they
        are read from what the phases made)."""
        from apollo.experiment import report

        res = report.write(self.exp, outcome, self.exp.report_dir)
        target = "met" if res["target"]["met"] else "not met"
        self._say("report", f"{self.exp.report_dir / report.REPORT} (the method's target {target})")

    def _say(self, phase: str, text: str) -> None:
        self.say(f"[{PHASES.index(phase) + 1}/{len(PHASES)}] {phase}: {text}")

    async def collect_all(self) -> dict[str, Collected]:
        """The guided collection, and the unguided one when the no-human arm needs it."""
        spec = self.exp.spec
        guided = await self.collect(GUIDED, annotator=spec.collect.annotator)
        self._say("collect", f"guided: {self._describe(guided)}")
        collections = {GUIDED: guided}
        if APOLLO_LLM in spec.arms:
            by_llm = await self.collect(GUIDED_LLM, annotator="llm")
            self._say("collect", f"guided by the LLM annotator: {self._describe(by_llm)}")
            collections[GUIDED_LLM] = by_llm
        if NO_HUMAN in spec.arms:
            unguided = await self.collect(UNGUIDED, annotator="none", steps=guided.steps)
            self._say("collect", f"unguided: {self._describe(unguided)}")
            collections[UNGUIDED] = unguided
        return collections

    def export_all(self, collections: dict[str, Collected]) -> dict[str, ArmExport]:
        """Every trained arm's training data."""
        exports = {}
        for arm in self.exp.spec.trained_arms:
            exports[arm] = self.export(arm_data(arm), collections)
            self._say("export", self._describe_export(exports[arm]))
        return exports

    def train_all(self, exports: dict[str, ArmExport]) -> tuple[Trained, ...]:
        """Every trained arm, once per training seed, one after another."""
        trainings = []
        for arm in self.exp.spec.trained_arms:
            for seed in self.exp.spec.training.seeds:
                done = self.train(exports[arm], seed)
                trainings.append(done)
                said = f"in {done.out}" if done.out else f"not trained: {done.why_not}"
                self._say("train", f"{done.label}: {said}")
        return tuple(trainings)

    async def evaluate_all(self, trainings: Sequence[Trained]) -> tuple[Evaluated, ...]:
        """The untrained base (when an arm) and every trained model, one after another."""
        base = self.exp.spec.base_model
        todo: list[tuple[str, int | None, str]] = []
        if UNTRAINED in self.exp.spec.arms:
            todo.append((UNTRAINED, None, base))
        todo += [(t.arm, t.seed, f"{base}+{t.out}") for t in trainings if t.out]
        evaluations = []
        for arm, seed, model in todo:
            done = await self.evaluate(arm, seed, model)
            evaluations.append(done)
            ok = sum(e.success for e in done.episodes)
            self._say("evaluate", f"{done.out.name}: {ok} of {len(done.episodes)} succeeded")
        return tuple(evaluations)

    def tag(self, collection: str) -> str:
        """The batch tag of a collection of this experiment."""
        return f"exp-{self.exp.name}-{collection}"

    def _options(self, annotator: str, max_steps: int | None, model: str = "") -> RunOptions:
        spec = self.exp.spec
        return RunOptions(
            model=model or spec.model,
            model_name=spec.model_name if not model else "default",
            api_key_env=spec.api_key_env if not model else None,
            annotator=annotator,
            annotator_model=spec.collect.annotator_model,
            annotator_model_name=spec.collect.annotator_model_name,
            annotator_api_key_env=spec.collect.annotator_api_key_env,
            max_steps=max_steps,
        )

    async def _drive(
        self, plan: BatchPlan, what: str, stop: Callable[[], bool] | None = None
    ) -> BatchResult:
        """Drive a batch to its end (`stop`: asked before each new run); ExperimentIncomplete
        when runs stopped on errors."""
        title = f"experiment {self.exp.name} · {what}"
        batch = Batch(self.home, plan)
        result = await batch.drive(self.concurrency, self.view(title), stop=stop)
        unended = [s for s in result.open if s.run_id is not None]  # not: never started
        if unended:
            why = "; ".join(f"{run}: {reason}" for run, reason in result.failed.items())
            raise ExperimentIncomplete(
                f"{what}: {len(unended)} runs did not end"
                + (f" ({why})" if why else "")
                + "; run the same command again to resume them"
            )
        return result

    def _families(self) -> tuple[str, ...]:
        return tuple(str(f.task.path) for f in self.exp.families)

    async def collect(self, collection: str, annotator: str, steps: int = 0) -> Collected:
        """One collection of the training instances; with `steps`, rounds of them (repeat 0,
        1, ...) until their steps reach it, no run started once they have: the no-human
        arm's rollout compute matches the guided collection's, up to the steps of the run
        that reached it. The same rule gives the same runs on a resume."""
        spec = self.exp.spec.collect
        tag = self.tag(collection)
        reached = (lambda: self._ended_steps(tag) >= steps) if steps else None
        rounds = 1
        while True:
            plan = BatchPlan(
                kind="collect",
                tag=tag,
                families=self._families(),
                split=spec.split,
                n=spec.n,
                repeats=rounds,
                options=self._options(annotator, spec.max_steps),
            )
            what = f"collect {collection}" + (f" · round {rounds}" if rounds > 1 else "")
            result = await self._drive(plan, what, stop=reached)
            done = Collected(tag, tuple(result.episodes), rounds)
            if done.steps >= steps:
                return done
            if rounds >= MAX_ROUNDS:
                self._say(
                    "collect",
                    f"{collection}: {rounds} rounds gave {done.steps} of {steps} steps; "
                    "stopped there (the runs make next to no steps)",
                )
                return done
            rounds += 1

    def _ended_steps(self, tag: str) -> int:
        """The steps of a batch's runs that ended, from the runs table."""
        store = self.home.open_store()
        try:
            return sum(
                r.step
                for r in store.list_runs(limit=10**9)
                if (r.config.get("batch") or {}).get("tag") == tag and r.status in FINAL_STATUSES
            )
        finally:
            store.close()

    async def supervise(self, runs: Sequence[str]) -> int:
        """Label the runs with the rules (a rule label already written is not written again)
        and, when the spec names one, the LLM judge (a run it judged is not judged again);
        the number of labels written now."""
        store = self.home.open_store()
        try:
            report = await supervise_runs(store, list(runs))
            written = report.rule_labels_written
            self._say("supervise", f"{len(runs)} runs, {written} rule labels written")
            judge = self.exp.spec.supervise
            if judge.judge is not None:
                written += await self._judge(store, runs, judge)
        finally:
            store.close()
        return written

    async def _judge(self, store: Store, runs: Sequence[str], spec: Supervise) -> int:
        assert spec.judge is not None
        options = RunOptions(
            model=spec.judge, model_name=spec.judge_model_name, api_key_env=spec.judge_api_key_env
        )
        runner = Runner(self.home, store=store)
        written = judged = 0
        try:
            async with runner.model(options) as model:
                judge = Judge(model)
                for run_id in runs:
                    labels = read_labels(store, run_id)
                    if any(lb.source == "judge" and lb.model == model.name for lb in labels):
                        continue  # judged by this model in an earlier process
                    traj = load_trajectory(store, run_id)
                    written += len(write_judge_labels(store, traj, await judge.judge(traj)))
                    judged += 1
        finally:
            await runner.aclose()
        self._say("supervise", f"judge {spec.judge}: {judged} runs judged, {written} labels")
        return written

    def agreement(self, runs: Sequence[str]) -> list[dict[str, Any]]:
        """Each judge's agreement with the rules and with people on the runs' labels."""
        store = self.home.open_store()
        try:
            labels = [read_labels(store, run_id) for run_id in runs]
        finally:
            store.close()
        judges = sorted(
            {lb.model for ls in labels for lb in ls if lb.source == "judge" and lb.model}
        )
        return [agreement(labels, name) for name in judges]

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
            # What an export killed before its end left (this process holds the experiment).
            for stale in out.parent.glob(f".{data.arm}.*.part"):
                stale.unlink()
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

    def train(self, data: ArmExport, seed: int) -> Trained:
        """One training of an arm from the base (done once: a finished training has its
        train.json; an interrupted one resumes from its last checkpoint)."""
        out = self.dir / "models" / f"{data.data.arm}-seed{seed}"
        if data.path is None:
            return Trained(data.data.arm, seed, None, "no run qualified for its training data")
        if not data.card.get("tokens_trained"):
            why = "every action of its data is masked, so no token is trained"
            return Trained(data.data.arm, seed, None, why)
        if not (out / "train.json").is_file():
            from apollo.train.cli import require_training_stack

            require_training_stack()
            from apollo.train.data import TrainError
            from apollo.train.sft import OPTIONS_FILE, latest_checkpoint, train

            spec = self.exp.spec
            options = spec.training.options(data.path, out, spec.base_model, seed)
            resume = (
                latest_checkpoint(out) is not None
                and (out / "checkpoints" / OPTIONS_FILE).is_file()
            )
            command = f"apollo experiment {self.exp.path} (arm {data.data.arm}, seed {seed})"
            try:
                train(options, models.cache_dir(self.home.path), resume=resume, command=command)
            except TrainError as exc:
                raise ExperimentError(
                    f"train {data.data.arm}-seed{seed}: {exc} (the spec's `training` section "
                    "sets `apollo train`'s options by name: --max-length is max_length)"
                ) from exc
        return Trained(data.data.arm, seed, out.resolve())

    async def evaluate(self, arm: str, seed: int | None, model: str) -> Evaluated:
        """One model on the test instances without guidance, into its evaluation folder
        (`apollo eval`'s: a batch found again by the tag the folder names)."""
        from apollo.eval import report
        from apollo.eval.cli import batch_tag, keep_tag

        spec = self.exp.spec.evaluate
        out = self.dir / "evals" / (arm if seed is None else f"{arm}-seed{seed}")
        tag, new = batch_tag(out, model)
        options = self._options("none", spec.max_steps, model)
        plan = BatchPlan(
            kind="eval",
            tag=tag,
            families=self._families(),
            split=spec.split,
            n=spec.n,
            repeats=spec.repeats,
            options=options,
        )
        Batch(self.home, plan).check()
        if new:
            keep_tag(out, tag, model)
        result = await self._drive(plan, f"evaluate {out.name}")
        meta = {
            "model": model,
            "arm": arm,
            "training_seed": seed,
            "split": spec.split,
            "n": spec.n,
            "repeats": spec.repeats,
            "tag": tag,
            "experiment": self.exp.name,
        }
        report.write(out, result.episodes, meta)
        return Evaluated(arm, seed, model, out, tuple(result.episodes))

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
