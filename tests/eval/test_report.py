"""Reports and comparisons as functions of episodes alone, on episodes made by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from apollo.eval import report
from apollo.rollout.batch import Episode


def episode(family: str, seed: int, score: float | None, repeat: int = 0) -> Episode:
    return Episode(
        family=family,
        seed=seed,
        split="test",
        repeat=repeat,
        run_id=f"r-{family}-{seed}-{repeat}",
        model="m",
        status="finished",
        score=score,
        success=score is not None and score >= 60,
        success_score=60.0,
        score_floor=0.0,
        steps=4,
        working_time_s=30.0,
        tokens=100,
        completion_tokens=10,
        interventions=0,
        presence_s=0.0,
        model_s=1.0,
        tool_s=1.0,
        wall_s=3.0,
        submissions=((10.0, 20.0), (30.0, score)) if score is not None else (),
    )


def test_an_episode_without_a_final_score_counts_as_a_failure_at_the_floor() -> None:
    built = report.build([episode("f", 1, 80.0), episode("f", 2, None)], {"model": "m"})
    overall = built["overall"]
    assert overall["no_final_score"] == 1
    assert overall["success_rate"]["value"] == 0.5
    assert overall["mean_score"]["value"] == 40.0  # (80 + 0) / 2
    assert overall["pass_at_k"] == {}  # one attempt per instance: no pass@k beyond pass@1


def test_repeats_are_averaged_per_instance_before_resampling() -> None:
    eps = [episode("f", 1, 100.0, 0), episode("f", 1, 0.0, 1), episode("f", 2, 0.0, 0)]
    eps.append(episode("f", 2, 0.0, 1))
    block = report.build(eps, {})["overall"]
    assert (block["instances"], block["repeats"]) == (2, 2)
    assert block["success_rate"]["n"] == 2  # two instances, not four episodes
    assert block["pass_at_k"]["2"]["value"] == 0.5  # instance 1 certain, instance 2 never


def test_compare_pairs_instances_and_counts_the_unshared() -> None:
    a = [episode("f", s, 0.0) for s in (1, 2, 3, 4)] + [episode("g", 9, 100.0)]
    b = [episode("f", s, 100.0 if s <= 2 else 0.0) for s in (1, 2, 3, 4, 5)]
    result = report.compare(a, b)
    assert (result["shared"], result["a_only"], result["b_only"]) == (4, 1, 1)
    success = result["overall"]["success_rate"]
    assert (success["a"], success["b"]) == (0.0, 0.5)
    assert success["b_minus_a"]["value"] == pytest.approx(0.5)
    assert 0.0 <= success["b_minus_a"]["lo"] < 0.5 < success["b_minus_a"]["hi"] <= 1.0
    assert result["overall"]["mean_score"]["b_minus_a"]["value"] == pytest.approx(50.0)
    assert result["families"] == ["f"] and result["f"]["instances"] == 4


def test_a_written_report_is_remade_from_its_episodes(tmp_path: Path) -> None:
    eps = [episode("f", 1, 80.0), episode("f", 2, 30.0), episode("g", 1, 65.0)]
    written = report.write(tmp_path, eps, {"model": "m", "split": "test"})
    loaded = report.load(tmp_path)
    assert loaded == eps
    assert report.build(loaded, {"model": "m", "split": "test"}) == written
    (tmp_path / "episodes.jsonl").write_text('{"family": "f"}\n')
    with pytest.raises(ValueError, match="line 1: not an episode"):
        report.load(tmp_path)


def test_the_wilson_interval_is_given_only_for_one_episode_per_instance() -> None:
    once = report.build([episode("f", s, 0.0) for s in range(5)], {"model": "m"})
    wilson = once["overall"]["success_rate_wilson"]
    assert wilson["value"] == 0.0 and wilson["hi"] == pytest.approx(0.4345, abs=1e-4)
    assert "Wilson interval: 0.0% [0.0%, 43.4%]" in report.markdown(once)
    twice = [episode("f", s, 0.0, r) for s in range(5) for r in range(2)]
    built = report.build(twice, {"model": "m"})
    assert built["overall"]["success_rate_wilson"] is None  # repeats are not independent
    assert "Wilson" not in report.markdown(built)


def test_runs_not_ended_are_said_to_be_left_out() -> None:
    built = report.build([episode("f", 1, 80.0)], {"model": "m", "open_slots": 2})
    assert "2 run(s) have not ended yet" in report.markdown(built)
    assert "have not ended" not in report.markdown(report.build([episode("f", 1, 80.0)], {}))
