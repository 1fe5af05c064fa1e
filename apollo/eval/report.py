"""An evaluation's files: episodes.jsonl (one line per episode), report.json and report.md
(success rate and mean score with bootstrap intervals, pass@k, a table per family) and
best_score.png (best score so far against working time); and the paired comparison of two.

Everything here is a function of the episodes alone, so a report can be remade from
episodes.jsonl and two evaluations can be compared from their folders.

- An instance is a (family, seed); its value is the mean over its repeats. Intervals resample
  instances (apollo.eval.stats).
- An episode that ended without a final score (its final evaluation failed, say) counts as a
  failure with the score range's low end; the report says how many did.
- pass@k (k = 1 .. the fewest repeats of any instance) is the mean over instances of the
  unbiased estimator; pass@1 is the success rate.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from apollo.eval import stats
from apollo.rollout.batch import Episode, Summary

EPISODES = "episodes.jsonl"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOT = "best_score.png"
GRID_POINTS = 200
Key = tuple[str, int]


def score_of(ep: Episode) -> float:
    """The episode's score for averaging: its final score, or the range's low end."""
    return ep.score if ep.score is not None else ep.score_floor


def by_instance(episodes: Iterable[Episode]) -> dict[Key, list[Episode]]:
    """Episodes grouped by instance (family, seed), in order of first appearance."""
    groups: dict[Key, list[Episode]] = defaultdict(list)
    for ep in episodes:
        groups[(ep.family, ep.seed)].append(ep)
    return dict(groups)


def instance_values(episodes: Iterable[Episode]) -> dict[Key, tuple[float, float]]:
    """Per instance: (success rate, mean score) over its repeats."""
    out = {}
    for key, eps in by_instance(episodes).items():
        out[key] = (
            sum(e.success for e in eps) / len(eps),
            sum(score_of(e) for e in eps) / len(eps),
        )
    return out


def block(episodes: Sequence[Episode]) -> dict[str, Any]:
    """The figures of one set of episodes (all of them, or one family's)."""
    groups = by_instance(episodes)
    values = instance_values(episodes)
    repeats = min(len(eps) for eps in groups.values())
    pass_k: dict[str, Any] = {}
    for k in range(1, repeats + 1) if max(len(e) for e in groups.values()) > 1 else ():
        per = [stats.pass_at_k(len(eps), sum(e.success for e in eps), k) for eps in groups.values()]
        pass_k[str(k)] = stats.mean_ci(per).to_json()
    return {
        "episodes": len(episodes),
        "instances": len(groups),
        "repeats": repeats,
        "success_rate": stats.mean_ci([v[0] for v in values.values()]).to_json(),
        # Only where each instance is one episode: repeats of an instance are not
        # independent draws, which the Wilson interval would count them as.
        "success_rate_wilson": (
            stats.wilson(sum(e.success for e in episodes), len(episodes)).to_json()
            if len(episodes) == len(groups)
            else None
        ),
        "mean_score": stats.mean_ci([v[1] for v in values.values()]).to_json(),
        "pass_at_k": pass_k,
        "no_final_score": sum(e.score is None for e in episodes),
        "mean_steps": sum(e.steps for e in episodes) / len(episodes),
        "mean_working_time_s": sum(e.working_time_s for e in episodes) / len(episodes),
        "summary": Summary.of(episodes).to_json(),
    }


def build(episodes: Sequence[Episode], meta: dict[str, Any]) -> dict[str, Any]:
    """The report of an evaluation's episodes; `meta` says what was evaluated (model, split,
    settings), copied in."""
    if not episodes:
        raise ValueError("no episode has ended yet, so there is nothing to report")
    families = sorted({e.family for e in episodes})
    return {
        **meta,
        "bootstrap": {
            "resamples": stats.RESAMPLES,
            "confidence": stats.CONFIDENCE,
            "seed": stats.SEED,
            "unit": "instance (family, seed), its repeats averaged",
        },
        "overall": block(episodes),
        "families": {f: block([e for e in episodes if e.family == f]) for f in families},
        "plot": PLOT,
        "plot_lines": "per family: the mean over its episodes of the best score reached by "
        "each working time (an episode keeps its best after it ends; before its first scored "
        "evaluation it counts as the score range's low end)",
    }


def _ci(value: dict[str, Any], percent: bool) -> str:
    if percent:
        return f"{value['value']:.1%} [{value['lo']:.1%}, {value['hi']:.1%}]"
    return f"{value['value']:.1f} [{value['lo']:.1f}, {value['hi']:.1f}]"


def markdown(report: dict[str, Any]) -> str:
    """report.md: the same figures as report.json, for reading."""
    overall = report["overall"]
    boot = report["bootstrap"]
    lines = [
        f"# Evaluation of {report.get('model', '?')}",
        "",
        f"Split `{report.get('split', '?')}`, {overall['episodes']} episodes on "
        f"{overall['instances']} instances, no guidance. Intervals: {boot['confidence']:.0%} "
        f"percentile bootstrap, {boot['resamples']} resamples of instances (seed "
        f"{boot['seed']}).",
        "",
        f"- success rate: {_ci(overall['success_rate'], True)}"
        + (
            f" (Wilson interval: {_ci(overall['success_rate_wilson'], True)})"
            if overall["success_rate_wilson"]
            else ""
        ),
        f"- mean score: {_ci(overall['mean_score'], False)}",
    ]
    if report.get("open_slots"):
        lines.append(
            f"- {report['open_slots']} run(s) have not ended yet (stopped on an error, or "
            "driven elsewhere) and are not in these figures; the same command resumes them"
        )
    for k, value in overall["pass_at_k"].items():
        lines.append(f"- pass@{k}: {_ci(value, True)}")
    if overall["no_final_score"]:
        lines.append(
            f"- {overall['no_final_score']} episode(s) ended without a final score: counted "
            "as failures with the score range's low end"
        )
    lines += [
        "",
        "| family | episodes | instances | success rate | mean score | mean steps | "
        "mean working time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, fam in report["families"].items():
        lines.append(
            f"| {name} | {fam['episodes']} | {fam['instances']} | "
            f"{_ci(fam['success_rate'], True)} | {_ci(fam['mean_score'], False)} | "
            f"{fam['mean_steps']:.1f} | {fam['mean_working_time_s']:.1f} |"
        )
    lines += ["", f"![best score so far]({report['plot']})", "", report["plot_lines"] + ".", ""]
    return "\n".join(lines)


def plot(episodes: Sequence[Episode], path: Path) -> None:
    """best_score.png: a line per family (see `build`'s plot_lines)."""
    families = sorted({e.family for e in episodes})
    plot_groups({f: [e for e in episodes if e.family == f] for f in families}, path)


def plot_groups(groups: Mapping[str, Sequence[Episode]], path: Path) -> None:
    """A line per group of episodes: the mean over its episodes of the best score reached by
    each working time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = [e for eps in groups.values() for e in eps]
    end = max(max(e.working_time_s for e in every), 1.0)
    grid = [end * i / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, mine in groups.items():
        curves = [stats.best_so_far(e.submissions, grid, e.score_floor) for e in mine]
        mean = [sum(c[i] for c in curves) / len(curves) for i in range(len(grid))]
        ax.plot([t / 60 for t in grid], mean, label=f"{name} ({len(mine)} episodes)")
    ax.set_xlabel("working time (minutes)")
    ax.set_ylabel("best score so far (mean over episodes)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(out: Path, episodes: Sequence[Episode], meta: dict[str, Any]) -> dict[str, Any]:
    """Write episodes.jsonl, report.json, report.md and best_score.png into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / EPISODES, "w", encoding="utf-8") as fh:
        for ep in episodes:
            fh.write(json.dumps(ep.to_json(), sort_keys=True) + "\n")
    report = build(episodes, meta)
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / REPORT_MD).write_text(markdown(report), encoding="utf-8")
    plot(episodes, out / PLOT)
    return report


def load(folder: Path) -> list[Episode]:
    """The episodes of an evaluation folder; ValueError when it holds none."""
    path = folder / EPISODES
    if not path.is_file():
        raise ValueError(f"{folder} holds no {EPISODES}; give a folder `apollo eval` wrote")
    episodes = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            episodes.append(Episode.from_json(json.loads(line)))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}, line {n}: not an episode ({exc})") from exc
    return episodes


def compare(a: Sequence[Episode], b: Sequence[Episode]) -> dict[str, Any]:
    """The paired bootstrap difference B - A of success rate and mean score on the instances
    both evaluated (each instance's repeats averaged); ValueError when they share none."""
    va, vb = instance_values(a), instance_values(b)
    shared = sorted(set(va) & set(vb))
    if not shared:
        raise ValueError(
            f"the two evaluations share no instance (family, seed): A has {len(va)}, B has "
            f"{len(vb)}; evaluate the same families and split to compare them"
        )
    out: dict[str, Any] = {"shared": len(shared), "a_only": len(va) - len(shared)}
    out["b_only"] = len(vb) - len(shared)
    families = sorted({f for f, _ in shared})
    for name, keys in [("overall", shared)] + [
        (f, [k for k in shared if k[0] == f]) for f in families
    ]:
        block_ = {}
        for i, what in enumerate(("success_rate", "mean_score")):
            xa, xb = [va[k][i] for k in keys], [vb[k][i] for k in keys]
            block_[what] = {
                "a": sum(xa) / len(xa),
                "b": sum(xb) / len(xb),
                "b_minus_a": stats.paired_difference(xa, xb).to_json(),
            }
        out[name] = block_ | {"instances": len(keys)}
    out["families"] = families
    return out
