"""The experiment's report, from what the phases made: `results.json`, `report.md`,
`episodes.jsonl` (every evaluated episode, with its arm and training seed) and three plots
(success per arm with its interval, best score against working time per arm, training loss
per arm), written into the experiment's report folder.

Intervals are two-level percentile bootstraps (apollo.eval.stats): training seeds and
instances are both resampled, so the spread between trainings counts, and an arm is compared
with `apollo` on the instances both evaluated, the instances resampled together (paired).
An instance's value within one training seed is the mean over its repeats. The numbers are
whatever the runs gave; the target the method claims is stated against them, met or not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apollo.eval import report as eval_report
from apollo.eval import stats
from apollo.eval.report import Key
from apollo.experiment import power
from apollo.experiment.outcome import Evaluated, Outcome
from apollo.experiment.plan import GUIDED, GUIDED_LLM, PowerStatement, power_statement
from apollo.experiment.spec import APOLLO, NO_HUMAN, UNTRAINED, Experiment
from apollo.rollout.batch import Summary

RESULTS, REPORT, EPISODES = "results.json", "report.md", "episodes.jsonl"
PLOTS = {"success": "success.png", "best_score": "best_score.png", "loss": "loss.png"}
# The method's claim, stated against the result (the target).
TARGET_RELATIVE_OVER_UNTRAINED = 0.5


def _relative(b: float, a: float) -> float | None:
    return (b - a) / a if a else None


def _shared(evaluations: Sequence[Evaluated]) -> list[Key]:
    """The instances every one of the evaluations holds, in order."""
    sets = [set(eval_report.instance_values(ev.episodes)) for ev in evaluations]
    return sorted(set.intersection(*sets)) if sets else []


def _matrix(evaluations: Sequence[Evaluated], keys: Sequence[Key], what: int) -> list[list[float]]:
    """Training seeds x instances: success rate (what=0) or mean score (1) of each."""
    rows = []
    for ev in evaluations:
        values = eval_report.instance_values(ev.episodes)
        rows.append([values[k][what] for k in keys])
    return rows


def arm_figures(evaluations: Sequence[Evaluated]) -> dict[str, Any]:
    """One arm's success rate and mean score with 95% two-level bootstrap intervals (its
    training seeds and the instances they all evaluated resampled)."""
    keys = _shared(evaluations)
    rate = stats.nested_mean_ci(_matrix(evaluations, keys, 0))
    score = stats.nested_mean_ci(_matrix(evaluations, keys, 1))
    return {
        "n": len(keys),
        "episodes": sum(len(ev.episodes) for ev in evaluations),
        "success_rate": rate.value,
        "success_ci95": [rate.lo, rate.hi],
        "mean_score": score.value,
        "mean_score_ci95": [score.lo, score.hi],
        "seeds": [ev.seed for ev in evaluations if ev.seed is not None],
    }


def paired(apollo: Sequence[Evaluated], other: Sequence[Evaluated]) -> dict[str, Any]:
    """Apollo minus another arm in success rate on the instances both evaluated, with the
    two-level paired bootstrap interval; `discordant_share` is the share of (Apollo seed,
    other seed, instance) outcomes that differ, for McNemar's sample size."""
    keys = _shared([*apollo, *other])
    if not keys:
        return {"diff": None, "ci95": None, "relative": None, "shared": 0}
    a, o = _matrix(apollo, keys, 0), _matrix(other, keys, 0)
    d = stats.nested_paired_difference(o, a)
    mean_a = sum(map(sum, a)) / (len(a) * len(keys))
    mean_o = sum(map(sum, o)) / (len(o) * len(keys))
    pairs = [abs(x - y) for ra in a for ro in o for x, y in zip(ra, ro, strict=True)]
    return {
        "diff": d.value,
        "ci95": [d.lo, d.hi],
        "relative": _relative(mean_a, mean_o),
        "shared": len(keys),
        "discordant_share": sum(pairs) / len(pairs),
    }


def _power(statement: PowerStatement, pair: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "instances_per_arm": statement.instances,
        "alpha": statement.alpha,
        "power": statement.power,
        "base": statement.base,
        "difference": statement.difference,
        "needed_unpaired": statement.needed,
        "detectable_unpaired": statement.detectable,
        "text": statement.describe(),
    }
    share = (pair or {}).get("discordant_share")
    if share and share >= statement.difference:
        out["needed_paired"] = power.n_paired(
            share, statement.difference, statement.alpha, statement.power
        )
        out["discordant_share_measured"] = share
    return out


def _by_arm(outcome: Outcome) -> dict[str, list[Evaluated]]:
    """Each arm's evaluations (one per training seed; one for the untrained base)."""
    out: dict[str, list[Evaluated]] = {}
    for ev in outcome.evaluations:
        out.setdefault(ev.arm, []).append(ev)
    return out


def results(exp: Experiment, outcome: Outcome) -> dict[str, Any]:
    """Everything the report says, as JSON."""
    by_arm = _by_arm(outcome)
    arms: dict[str, dict[str, Any]] = {}
    for arm in exp.spec.arms:  # in the spec's order; an arm with no data has no figures
        if arm in by_arm:
            arms[arm] = arm_figures(by_arm[arm])
        else:
            arms[arm] = {
                "n": 0,
                "episodes": 0,
                "success_rate": None,
                "success_ci95": None,
                "mean_score": None,
                "mean_score_ci95": None,
                "seeds": [],
                "note": "not trained: "
                + (next((t.why_not for t in outcome.trainings if t.arm == arm), "") or "no data"),
            }
    pairs = {
        f"apollo_vs_{arm.replace('-', '_')}": paired(by_arm[APOLLO], eps)
        for arm, eps in by_arm.items()
        if arm != APOLLO and APOLLO in by_arm
    }
    guided = outcome.collections[GUIDED].episodes
    collections = {
        name: {
            "runs": len(c.episodes),
            "rounds": c.rounds,
            "steps": c.steps,
            **Summary.of(c.episodes).to_json(),
        }
        for name, c in outcome.collections.items()
    }
    data = {
        arm: {
            "source": e.data.describe(),
            "runs": len(e.runs),
            **{
                k: e.card.get(k, 0)
                for k in (
                    "samples",
                    "tokens_trained",
                    "tokens_masked",
                    "assistant_turns_trained",
                    "assistant_turns_masked",
                )
            },
            "mask_reasons": e.card.get("mask_reasons", {}),
        }
        for arm, e in outcome.exports.items()
    }
    trainings = {}
    for t in outcome.trainings:
        record = json.loads((t.out / "train.json").read_text()) if t.out else None
        trainings[t.label] = (
            {k: record[k] for k in ("steps", "tokens", "tokens_per_s", "wall_s", "final_loss")}
            if record
            else None
        )
    return {
        "experiment": exp.name,
        "spec": str(exp.path),
        "model": exp.spec.model,
        "base": exp.spec.base_model,
        "arms": arms,
        "paired": pairs,
        "target": _target(pairs),
        "power": _power(power_statement(exp), pairs.get("apollo_vs_untrained")),
        "collections": collections,
        "annotation": Summary.of(guided).to_json(),
        **(
            {"annotation_llm": Summary.of(outcome.collections[GUIDED_LLM].episodes).to_json()}
            if GUIDED_LLM in outcome.collections
            else {}
        ),
        "data": data,
        "trainings": trainings,
        "judges": outcome.judges,
        "compute_hours": {
            phase: {"cpu": round(t["cpu_s"] / 3600, 3), "wall": round(t["wall_s"] / 3600, 3)}
            for phase, t in outcome.compute.items()
        },
    }


def _target(pairs: dict[str, Any]) -> dict[str, Any]:
    """The method's claim against the result: Apollo above no-human with the paired 95%
    interval of the difference above 0, and at least +50% relative over untrained."""
    vs_human = pairs.get(f"apollo_vs_{NO_HUMAN.replace('-', '_')}") or {}
    vs_base = pairs.get(f"apollo_vs_{UNTRAINED}") or {}
    above_no_human = bool(vs_human.get("ci95") and vs_human["ci95"][0] > 0)
    relative = vs_base.get("relative")
    return {
        "apollo_above_no_human": above_no_human if vs_human else None,
        "relative_over_untrained": relative,
        "relative_over_untrained_at_least": TARGET_RELATIVE_OVER_UNTRAINED,
        "met": bool(
            above_no_human and relative is not None and relative >= TARGET_RELATIVE_OVER_UNTRAINED
        ),
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci(pair: Sequence[float] | None, percent: bool = True) -> str:
    if not pair:
        return "n/a"
    return f"[{_pct(pair[0])}, {_pct(pair[1])}]" if percent else f"[{pair[0]:.1f}, {pair[1]:.1f}]"


def markdown(res: dict[str, Any]) -> str:
    """report.md."""
    lines = [
        f"# Experiment {res['experiment']}",
        "",
        f"Spec `{res['spec']}`; rollouts by `{res['model']}`, every arm trained from "
        f"`{res['base']}`. Evaluated without guidance; 95% bootstrap intervals over instances.",
        "",
        "| arm | instances | episodes | success rate | 95% CI | mean score | 95% CI | seeds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, f in res["arms"].items():
        if f["n"] == 0:
            lines.append(f"| {arm} | 0 | 0 | {f['note']} | | | | |")
            continue
        lines.append(
            f"| {arm} | {f['n']} | {f['episodes']} | {_pct(f['success_rate'])} | "
            f"{_ci(f['success_ci95'])} | {f['mean_score']:.1f} | "
            f"{_ci(f['mean_score_ci95'], False)} | {', '.join(map(str, f['seeds'])) or '-'} |"
        )
    lines += ["", "## Apollo against each arm (paired on shared instances)", ""]
    lines += [
        "| comparison | difference | 95% CI | relative | shared |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, p in res["paired"].items():
        rel = "n/a" if p["relative"] is None else f"{100 * p['relative']:+.0f}%"
        diff = "n/a" if p["diff"] is None else f"{100 * p['diff']:+.1f} points"
        lines.append(f"| {name} | {diff} | {_ci(p['ci95'])} | {rel} | {p['shared']} |")
    t = res["target"]
    lines += [
        "",
        "## The method's claim, against this result",
        "",
        f"- Apollo above no-human, the paired 95% CI excluding 0: {t['apollo_above_no_human']}",
        f"- Apollo relative to untrained: {_pct(t['relative_over_untrained'])} (claimed: at "
        f"least +{100 * t['relative_over_untrained_at_least']:.0f}%)",
        f"- **Target {'met' if t['met'] else 'not met'}.**",
        "",
        "## Power",
        "",
        res["power"]["text"] + ".",
    ]
    if "needed_paired" in res["power"]:
        lines.append(
            f"With the measured share of discordant pairs (Apollo vs untrained, "
            f"{_pct(res['power']['discordant_share_measured'])}), a paired test needs "
            f"{res['power']['needed_paired']} instances."
        )
    for j in res["judges"]:
        lines += ["", f"## The LLM judge {j['judge']}: agreement on the actions it judged", ""]
        for other in ("rules", "humans"):
            f = j[other]
            if not f["actions"]:
                lines.append(f"- with the {other}: no action to compare")
                continue
            k = "n/a" if f["kappa"] is None else f"{f['kappa']:.2f}"
            lines.append(
                f"- with the {other}: {f['actions']} actions, {_pct(f['agreement'])} the same "
                f"decision, Cohen's kappa {k} (judge masked {f['judge_masks']}, the "
                f"{other} {f['other_masks']})"
            )
    lines += ["", "## Training data per arm", ""]
    lines += [
        "| arm | source | runs | samples | tokens trained | tokens masked | mask reasons |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, d in res["data"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in d["mask_reasons"].items()) or "-"
        lines.append(
            f"| {arm} | {d['source']} | {d['runs']} | {d['samples']} | {d['tokens_trained']} | "
            f"{d['tokens_masked']} | {reasons} |"
        )
    lines += ["", "## Annotation cost", ""]
    for key, who in (("annotation", "rule-based"), ("annotation_llm", "LLM")):
        if key not in res:
            continue
        a = res[key]
        per = a["interventions_per_success"]
        lines.append(
            f"- {who} annotator: {a['interventions']} interventions in {a['episodes']} runs "
            f"with {a['successes']} successes ({'n/a' if per is None else f'{per:.2g}'} per "
            f"success); {a['annotator_minutes']:g} annotator-minutes (estimated: "
            f"{a['minutes_per_intervention']:g} per intervention)."
        )
    lines += [
        "",
        "## Compute (hours, every process that ran the experiment)",
        "",
        "; ".join(
            f"{phase} {t['cpu']:g} CPU, {t['wall']:g} wall"
            for phase, t in res["compute_hours"].items()
        )
        or "not measured",
        "",
        f"Plots: {', '.join(PLOTS.values())}; every episode: {EPISODES}.",
        "",
    ]
    return "\n".join(lines)


def _plots(res: dict[str, Any], outcome: Outcome, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a, f in res["arms"].items() if f["n"]]
    rates = [res["arms"][a]["success_rate"] for a in arms]
    lo = [r - res["arms"][a]["success_ci95"][0] for a, r in zip(arms, rates, strict=True)]
    hi = [res["arms"][a]["success_ci95"][1] - r for a, r in zip(arms, rates, strict=True)]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.bar(arms, [100 * r for r in rates], yerr=[[100 * x for x in lo], [100 * x for x in hi]])
    ax.set_ylabel("success rate (%), 95% CI")
    fig.tight_layout()
    fig.savefig(out / PLOTS["success"])
    plt.close(fig)

    groups = {arm: [e for ev in evs for e in ev.episodes] for arm, evs in _by_arm(outcome).items()}
    eval_report.plot_groups(groups, out / PLOTS["best_score"])

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for t in outcome.trainings:
        if t.out is not None:
            losses = json.loads((t.out / "train.json").read_text())["losses"]
            ax.plot([s for s, _ in losses], [v for _, v in losses], label=t.label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / PLOTS["loss"])
    plt.close(fig)


def write(exp: Experiment, outcome: Outcome, out: Path) -> dict[str, Any]:
    """Write the report into `out`; the results."""
    out.mkdir(parents=True, exist_ok=True)
    res = results(exp, outcome)
    with open(out / EPISODES, "w", encoding="utf-8") as fh:
        for ev in outcome.evaluations:
            for ep in ev.episodes:
                row = {"arm": ev.arm, "training_seed": ev.seed, **ep.to_json()}
                fh.write(json.dumps(row, sort_keys=True) + "\n")
    (out / RESULTS).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    (out / REPORT).write_text(markdown(res), encoding="utf-8")
    _plots(res, outcome, out)
    return res
