"""What an experiment does, phase by phase, derived from its spec alone: the collections, the
training data of each arm, the trainings, the evaluations, their sizes, an upper bound on
rollout time (the families' working-time budgets) and the power calculation the report states.
`apollo experiment SPEC --plan` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

from apollo.experiment import power
from apollo.experiment.spec import (
    APOLLO,
    APOLLO_LLM,
    NO_HUMAN,
    NO_MASK,
    STRIPPED,
    UNTRAINED,
    Experiment,
)

GUIDED, UNGUIDED, GUIDED_LLM = "guided", "unguided", "guided-llm"
# Each trained arm's data: the collection it comes from, whether only successful runs count,
# the supervision policy, and whether the <real_user> guidance turns stay in the context.
DATA: dict[str, tuple[str, bool, str, bool]] = {
    NO_HUMAN: (UNGUIDED, True, "precedence", True),
    NO_MASK: (GUIDED, False, "keep-all", True),
    APOLLO: (GUIDED, False, "precedence", True),
    STRIPPED: (GUIDED, False, "precedence", False),
    APOLLO_LLM: (GUIDED_LLM, False, "precedence", True),
}


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


@dataclass(frozen=True)
class ArmData:
    """Where one trained arm's training data comes from."""

    arm: str
    collection: str  # GUIDED, UNGUIDED or GUIDED_LLM
    successes_only: bool
    policy: str  # apollo.supervise.policy mode
    guidance: bool  # keep the <real_user> turns

    def describe(self) -> str:
        runs = "successful " if self.successes_only else ""
        masking = "every action trained" if self.policy == "keep-all" else "masked by supervision"
        turns = "" if self.guidance else ", <real_user> turns removed"
        return f"{self.arm}: {runs}{self.collection} runs, {masking}{turns}"


def arm_data(arm: str) -> ArmData:
    """Where a trained arm's data comes from."""
    return ArmData(arm, *DATA[arm])


@dataclass(frozen=True)
class PowerStatement:
    """What the evaluation can detect, for the report."""

    instances: int  # test instances per arm (every family)
    base: float
    difference: float
    needed: int  # instances per arm to detect `difference` above `base`, unpaired
    detectable: float  # the smallest rise `instances` detect, unpaired
    alpha: float
    power: float

    @property
    def enough(self) -> bool:
        return self.instances >= self.needed

    def describe(self) -> str:
        verdict = "enough" if self.enough else "NOT enough"
        return (
            f"{self.instances} test instances per arm detect a rise of "
            f"{100 * self.detectable:.1f} points above a {100 * self.base:.0f}% success rate "
            f"(two-sided alpha {self.alpha}, power {self.power}, unpaired: a bound, paired "
            f"episodes need fewer); a {100 * self.difference:.0f}-point rise needs "
            f"{self.needed}: {verdict}"
        )


@dataclass(frozen=True)
class Plan:
    """An experiment's work, phase by phase."""

    experiment: Experiment
    collect_runs: int  # guided runs: every family's collect instances
    unguided: bool  # whether the no-human arm needs an unguided collection
    data: tuple[ArmData, ...]
    trainings: int
    models: int  # models evaluated: untrained (if an arm) + trained arms x seeds
    episodes_per_model: int
    rollout_hours_max: float  # every collection (one unguided round) at full working time
    power: PowerStatement

    def lines(self) -> list[str]:
        """The plan, as printed."""
        exp, spec = self.experiment, self.experiment.spec
        fams = ", ".join(
            f"{f.id} ({spec.collect.split} {f.splits[spec.collect.split]}, "
            f"{spec.evaluate.split} {f.splits[spec.evaluate.split]})"
            for f in exp.families
        )
        families = _n(len(exp.families), "family", "families")
        per = f"{families} x {_n(spec.collect.n, spec.collect.split + ' instance')}"
        out = [
            f"experiment {exp.name}: {spec.model}"
            + (f" rolls out, {spec.base} is trained" if spec.base else "")
            + f", arms {', '.join(spec.arms)}",
            f"families: {fams}",
            f"1. collect: guided: {per} = {self.collect_runs} runs, {spec.collect.annotator} "
            "annotator",
        ]
        if APOLLO_LLM in spec.arms:
            out.append(
                "1. collect: guided-llm (apollo-llm): the same instances, guided by the LLM "
                f"annotator on {spec.collect.annotator_model}"
            )
        if self.unguided:
            out.append(
                "1. collect: unguided (no-human): the same instances without guidance, repeated "
                "until its steps match the guided collection's"
            )
        judge = spec.supervise.judge
        out.append(
            "2. supervise: the rules"
            + (f" and the LLM judge {judge} (its agreement reported)" if judge else "")
            + " label the collected runs"
        )
        out.append("3. export (tokenized), per arm:")
        out += [f"   - {d.describe()}" for d in self.data]
        settings = spec.training.settings
        shown = ", ".join(f"{k} {v}" for k, v in sorted(settings.items())) or "the defaults"
        out.append(
            f"4. train: {_n(len(spec.trained_arms), 'arm')} x "
            f"{_n(len(spec.training.seeds), 'seed')} ({', '.join(map(str, spec.training.seeds))})"
            f" = {_n(self.trainings, 'training')}, {shown}"
        )
        out.append(
            f"5. evaluate without guidance: {_n(self.models, 'model')} x "
            f"{_n(self.episodes_per_model, 'episode')} "
            f"({_n(spec.evaluate.n, spec.evaluate.split + ' instance')} x {families} x "
            f"{_n(spec.evaluate.repeats, 'repeat')}) = "
            f"{_n(self.models * self.episodes_per_model, 'episode')}"
        )
        out.append(f"6. report: {exp.report_dir}/ (report.md, results.json, plots)")
        out.append(
            f"rollouts: at most {self.rollout_hours_max:.1f} hours at the families' full "
            "working time (collections with one unguided round, and evaluations)"
        )
        out.append(f"power: {self.power.describe()}")
        return out


def power_statement(exp: Experiment) -> PowerStatement:
    """The evaluation's power: instances per arm are the test instances of every family
    (repeats and training seeds add episodes of the same instances, not new instances)."""
    spec = exp.spec
    n = spec.evaluate.n * len(exp.families)
    p = spec.power
    return PowerStatement(
        instances=n,
        base=p.base,
        difference=p.difference,
        needed=power.n_unpaired(p.base, min(1.0, p.base + p.difference), p.alpha, p.power),
        detectable=power.detectable_unpaired(n, p.base, p.alpha, p.power),
        alpha=p.alpha,
        power=p.power,
    )


def make_plan(exp: Experiment) -> Plan:
    """The plan of a loaded experiment."""
    spec = exp.spec
    collect_runs = spec.collect.n * len(exp.families)
    data = tuple(arm_data(arm) for arm in spec.trained_arms)
    trainings = len(spec.trained_arms) * len(spec.training.seeds)
    models = trainings + (1 if UNTRAINED in spec.arms else 0)
    episodes = spec.evaluate.n * len(exp.families) * spec.evaluate.repeats
    unguided = NO_HUMAN in spec.arms
    collect_s = sum(f.task.spec.budget.working_time for f in exp.families) * spec.collect.n
    eval_s = (
        sum(f.task.spec.budget.working_time for f in exp.families)
        * spec.evaluate.n
        * spec.evaluate.repeats
        * models
    )
    collections = 1 + unguided + (APOLLO_LLM in spec.arms)
    hours = (collect_s * collections + eval_s) / 3600
    return Plan(
        exp, collect_runs, unguided, data, trainings, models, episodes, hours, power_statement(exp)
    )
