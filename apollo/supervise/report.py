"""What supervision decided, and why: counts by reason and source, masked share of assistant
tokens, judge failures, and where the judge and humans disagreed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from apollo.log.actions import Action, Label
from apollo.log.store import Store
from apollo.supervise.judge import Judge, write_judge_labels
from apollo.supervise.labels import current, read_labels
from apollo.supervise.policy import Decision, Policy, decide
from apollo.supervise.rules import RuleConfig, apply_rules, sync_rule_labels
from apollo.supervise.trajectory import load_trajectory


@dataclass
class Disagreement:
    run_id: str
    step: int
    human: Label
    judge: Label


@dataclass
class Report:
    """Supervision over one or more runs."""

    policy: Policy
    runs: list[str] = field(default_factory=list)
    kept: Counter[str] = field(default_factory=Counter)  # key -> actions
    masked: Counter[str] = field(default_factory=Counter)
    tokens_kept: int = 0
    tokens_masked: int = 0
    labels_by_source: Counter[str] = field(default_factory=Counter)
    disagreements: list[Disagreement] = field(default_factory=list)
    judge_problems: list[str] = field(default_factory=list)
    rule_labels_written: int = 0
    judge_labels_written: int = 0

    def add_run(
        self,
        run_id: str,
        actions: list[Action],
        decisions: dict[int, Decision],
        labels: list[Label],
    ) -> None:
        """Fold one run's decisions into the report."""
        self.runs.append(run_id)
        tokens = {a.step: a.tokens for a in actions}
        for step, d in decisions.items():
            if d.verdict == "keep":
                self.kept[d.key()] += 1
                self.tokens_kept += tokens.get(step, 0)
            else:
                self.masked[d.key()] += 1
                self.tokens_masked += tokens.get(step, 0)
        in_force = current(labels)
        self.labels_by_source.update(lb.source for lb in in_force)
        humans = {lb.step: lb for lb in in_force if lb.source == "human"}
        judges = {lb.step: lb for lb in in_force if lb.source == "judge"}
        for step in sorted(humans.keys() & judges.keys()):
            if humans[step].verdict != judges[step].verdict:
                self.disagreements.append(Disagreement(run_id, step, humans[step], judges[step]))

    @property
    def actions(self) -> int:
        return sum(self.kept.values()) + sum(self.masked.values())

    @property
    def masked_token_share(self) -> float:
        total = self.tokens_kept + self.tokens_masked
        return self.tokens_masked / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy.to_json(),
            "runs": self.runs,
            "actions": self.actions,
            "kept": sum(self.kept.values()),
            "masked": sum(self.masked.values()),
            "kept_by": dict(self.kept),
            "masked_by": dict(self.masked),
            "assistant_tokens_kept": self.tokens_kept,
            "assistant_tokens_masked": self.tokens_masked,
            "masked_token_share": round(self.masked_token_share, 4),
            "labels_in_force": dict(self.labels_by_source),
            "rule_labels_written": self.rule_labels_written,
            "judge_labels_written": self.judge_labels_written,
            "judge_problems": self.judge_problems,
            "disagreements": [
                {
                    "run": d.run_id,
                    "step": d.step,
                    "human": {
                        "author": d.human.author,
                        "verdict": d.human.verdict,
                        "reason": d.human.reason,
                    },
                    "judge": {
                        "model": d.judge.author,
                        "verdict": d.judge.verdict,
                        "reason": d.judge.reason,
                    },
                }
                for d in self.disagreements
            ],
        }

    def render(self) -> str:
        """The report as text for a terminal."""
        lines = [
            f"policy: {self.policy.describe()}",
            f"runs: {len(self.runs)}  actions: {self.actions}  kept: {sum(self.kept.values())}"
            f"  masked: {sum(self.masked.values())}",
            f"masked share of assistant tokens: {self.masked_token_share:.1%}"
            f" ({self.tokens_masked} of {self.tokens_kept + self.tokens_masked})",
        ]
        for title, counts in (("masked by", self.masked), ("kept by", self.kept)):
            if counts:
                lines.append(f"{title}:")
                lines += [f"  {key:<28} {n:>6}" for key, n in counts.most_common()]
        if self.rule_labels_written or self.judge_labels_written:
            lines.append(
                f"labels written: {self.rule_labels_written} rule, "
                f"{self.judge_labels_written} judge"
            )
        if self.judge_problems:
            lines.append("judge problems (those actions got no judge label):")
            lines += [f"  {p}" for p in self.judge_problems]
        if self.disagreements:
            lines.append("judge and humans disagree:")
            for d in self.disagreements:
                lines.append(
                    f"  {d.run_id} step {d.step}: human {d.human.author} {d.human.verdict}"
                    f" ({d.human.reason or '-'}) vs judge {d.judge.author} {d.judge.verdict}"
                    f" ({d.judge.reason})"
                )
        return "\n".join(lines)


async def supervise_runs(
    store: Store,
    run_ids: list[str],
    policy: Policy | None = None,
    rules: bool = True,
    rule_config: RuleConfig | None = None,
    judge: Judge | None = None,
) -> Report:
    """Apply the rules and the judge to runs, write their labels to the log, and report the
    decisions the policy makes from every label in force (human ones included)."""
    report = Report(policy or Policy())
    for run_id in run_ids:
        traj = load_trajectory(store, run_id)
        labels = read_labels(store, run_id)
        if rules:
            hits = apply_rules(traj, rule_config)
            report.rule_labels_written += len(sync_rule_labels(store, traj, hits, labels))
        if judge is not None:
            result = await judge.judge(traj)
            report.judge_labels_written += len(write_judge_labels(store, traj, result))
            report.judge_problems += result.problems
        labels = read_labels(store, run_id)
        decisions = decide(report.policy, [a.step for a in traj.actions], labels)
        report.add_run(run_id, traj.actions, decisions, labels)
    return report
