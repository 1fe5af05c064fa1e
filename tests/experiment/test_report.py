"""The experiment's report from a made-up outcome whose figures are known: intervals, the
paired comparison with Apollo, the relative improvement, the target met or not, an arm
without data, and the files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from apollo.experiment import report
from apollo.experiment.outcome import ArmExport, Collected, Evaluated, Outcome, Trained
from apollo.experiment.plan import GUIDED, arm_data
from apollo.experiment.spec import Experiment, load_experiment
from apollo.rollout.batch import Episode
from tests.eval.test_report import episode as eval_episode

INSTANCES = list(range(5000, 5020))


def experiment(tmp_path: Path, arms: list[str]) -> Experiment:
    spec = {
        "name": "r",
        "model": "http://127.0.0.1:9/v1",
        "base": "embedded:smollm2-135m",
        "families": ["noise-filter"],
        "collect": {"n": 4},
        "evaluate": {"n": len(INSTANCES)},
        "arms": arms,
        "training": {"seeds": [0, 1]},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_experiment(path)


def episode(seed: int, success: bool, run: str, interventions: int = 0) -> Episode:
    made = eval_episode("noise-filter", seed, 90.0 if success else 10.0)
    return dataclasses.replace(made, run_id=run, interventions=interventions)


def evaluation(arm: str, seed: int | None, wins: int) -> Evaluated:
    """An evaluation that succeeds on the first `wins` instances."""
    eps = tuple(episode(s, i < wins, f"{arm}-{seed}-{s}") for i, s in enumerate(INSTANCES))
    return Evaluated(arm, seed, f"model-{arm}", Path("/nowhere"), eps)


def trained(tmp_path: Path, arm: str, seed: int) -> Trained:
    out = tmp_path / "models" / f"{arm}-seed{seed}"
    out.mkdir(parents=True)
    record = {
        "steps": 2,
        "tokens": 500,
        "tokens_per_s": 50.0,
        "wall_s": 10.0,
        "final_loss": 1.5,
        "losses": [[1, 2.0], [2, 1.5]],
    }
    (out / "train.json").write_text(json.dumps(record))
    return Trained(arm, seed, out)


def outcome(tmp_path: Path, no_human_wins: int | None) -> Outcome:
    guided = tuple(episode(s, s % 2 == 0, f"g{s}", interventions=1) for s in range(1000, 1004))
    card = {"samples": 8, "tokens_trained": 300, "tokens_masked": 40, "mask_reasons": {"x": 2}}
    exports = {"apollo": ArmExport(arm_data("apollo"), ("g1000",), tmp_path / "a.jsonl", card)}
    trainings = [trained(tmp_path, "apollo", s) for s in (0, 1)]
    evaluations = [
        evaluation("untrained", None, 4),
        evaluation("apollo", 0, 12),
        evaluation("apollo", 1, 12),
    ]
    if no_human_wins is None:
        exports["no-human"] = ArmExport(arm_data("no-human"), (), None, {})
        trainings += [Trained("no-human", s, None, "no run qualified") for s in (0, 1)]
    else:
        exports["no-human"] = ArmExport(arm_data("no-human"), ("u1",), tmp_path / "n.jsonl", card)
        trainings += [trained(tmp_path, "no-human", s) for s in (0, 1)]
        evaluations += [evaluation("no-human", s, no_human_wins) for s in (0, 1)]
    compute = {"collect": {"cpu_s": 7200.0, "wall_s": 3600.0}}
    return Outcome(
        {GUIDED: Collected("t", guided, 1)}, exports, tuple(trainings), tuple(evaluations), compute
    )


def test_figures_comparisons_and_an_arm_without_data(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ["untrained", "no-human", "apollo"])
    res = report.results(exp, outcome(tmp_path, None))
    base, apollo = res["arms"]["untrained"], res["arms"]["apollo"]
    assert (base["n"], base["episodes"], base["success_rate"]) == (20, 20, 0.2)
    # Two training seeds evaluated on the same 20 instances: 20 instances, 40 episodes.
    assert (apollo["n"], apollo["episodes"], apollo["success_rate"]) == (20, 40, 0.6)
    assert apollo["seeds"] == [0, 1] and base["seeds"] == []
    for figures in (base, apollo):
        lo, hi = figures["success_ci95"]
        assert lo < figures["success_rate"] < hi
    pair = res["paired"]["apollo_vs_untrained"]
    assert pair["shared"] == 20 and abs(pair["diff"] - 0.4) < 1e-9
    assert pair["ci95"][0] > 0 and abs(pair["relative"] - 2.0) < 1e-9
    assert abs(pair["discordant_share"] - 0.4) < 1e-9
    # The arm with no training data is listed, without figures, and not compared.
    assert res["arms"]["no-human"]["n"] == 0 and res["arms"]["no-human"]["success_rate"] is None
    assert "apollo_vs_no_human" not in res["paired"]
    assert res["target"]["apollo_above_no_human"] is None and res["target"]["met"] is False
    assert res["annotation"]["interventions"] == 4 and res["annotation"]["successes"] == 2
    assert res["data"]["apollo"]["tokens_masked"] == 40
    assert res["trainings"]["apollo-seed0"]["final_loss"] == 1.5
    assert res["trainings"]["no-human-seed0"] is None
    assert res["compute_hours"] == {"collect": {"cpu": 2.0, "wall": 1.0}}
    # 20 instances detect far less than 15 points; the measured discordance gives a paired n.
    assert res["power"]["needed_unpaired"] == 152
    assert res["power"]["needed_paired"] > 20
    md = report.markdown(res)
    assert "| untrained | 20 | 20 | 20.0% |" in md
    assert "| no-human | 0 | 0 | not trained: no run qualified |" in md
    assert "**Target not met.**" in md
    assert "collect 2 CPU, 1 wall" in md


def test_the_target_is_met_only_when_both_parts_hold(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ["untrained", "no-human", "apollo"])
    met = report.results(exp, outcome(tmp_path / "a", 6))
    assert met["paired"]["apollo_vs_no_human"]["ci95"][0] > 0
    assert met["target"] == {
        "apollo_above_no_human": True,
        "relative_over_untrained": met["paired"]["apollo_vs_untrained"]["relative"],
        "relative_over_untrained_at_least": 0.5,
        "met": True,
    }
    # no-human as good as Apollo: the difference's interval holds 0, so not met.
    tied = report.results(exp, outcome(tmp_path / "b", 12))
    assert tied["paired"]["apollo_vs_no_human"]["diff"] == 0
    assert tied["target"]["apollo_above_no_human"] is False and tied["target"]["met"] is False


def test_write_makes_every_file(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ["untrained", "no-human", "apollo"])
    made = outcome(tmp_path, 6)
    out = tmp_path / "report"
    res = report.write(exp, made, out)
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(res))
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 20 * 5  # untrained + 2 apollo + 2 no-human evaluations
    assert {(r["arm"], r["training_seed"]) for r in rows} == {
        ("untrained", None),
        ("apollo", 0),
        ("apollo", 1),
        ("no-human", 0),
        ("no-human", 1),
    }
    assert (out / "report.md").read_text().startswith("# Experiment r")
    for plot in ("success.png", "best_score.png", "loss.png"):
        assert (out / plot).read_bytes().startswith(b"\x89PNG")
