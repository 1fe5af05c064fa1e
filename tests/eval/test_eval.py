"""`apollo eval` on real runs (the scripted policy of tests/rollout/policies.py, whose
successes are known from each instance's hidden answer), and `apollo eval --compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apollo.cli import main
from apollo.eval.stats import pass_at_k
from tests.rollout.policies import GatedServer, first_option_wins

FAMILIES = ["noise-filter", "bug-patch"]
FIELDS = {
    "family",
    "seed",
    "repeat",
    "score",
    "success",
    "steps",
    "working_time_s",
    "tokens",
    "run_id",
    "model",
}


def evaluate(home: Path, url: str, out: Path | None, *extra: str) -> int:
    args = ["eval", url, "--home", str(home), "--family", FAMILIES[0], "--family", FAMILIES[1]]
    return main([*args, *(["--out", str(out)] if out else []), *extra])


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_writes_episodes_and_a_report_that_matches_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, out = tmp_path / "home", tmp_path / "eval"
    with GatedServer(width=2) as server:
        assert (
            evaluate(home, server.base_url, out, "--n", "2", "--repeats", "2", "--concurrency", "2")
            == 0
        )
        assert not server.gate_failed
        printed = capsys.readouterr().out
        episodes = lines(out / "episodes.jsonl")
        assert len(episodes) == 8 and all(set(e) >= FIELDS for e in episodes)
        assert {(e["family"], e["seed"], e["repeat"]) for e in episodes} == {
            (f, s, r) for f in FAMILIES for s in (5000, 5001) for r in (0, 1)
        }
        for e in episodes:
            assert e["model"] == server.base_url and e["split"] == "test" and e["steps"] == 3
            assert e["success"] == first_option_wins(e["family"], e["seed"], home / "instances")
            assert e["success"] == (e["score"] >= e["success_score"])
            assert e["interventions"] == 0  # no guidance in an evaluation

        report = json.loads((out / "report.json").read_text())
        overall = report["overall"]
        rate = sum(e["success"] for e in episodes) / 8
        assert overall["success_rate"]["value"] == pytest.approx(rate)
        assert overall["mean_score"]["value"] == pytest.approx(
            sum(e["score"] for e in episodes) / 8
        )
        assert overall["success_rate"]["lo"] <= rate <= overall["success_rate"]["hi"]
        assert (overall["episodes"], overall["instances"], overall["repeats"]) == (8, 4, 2)
        by_instance: dict[tuple[str, int], list[bool]] = {}
        for e in episodes:
            by_instance.setdefault((e["family"], e["seed"]), []).append(e["success"])
        hand = sum(pass_at_k(len(v), sum(v), 2) for v in by_instance.values()) / 4
        assert overall["pass_at_k"]["2"]["value"] == pytest.approx(hand)
        assert overall["pass_at_k"]["1"]["value"] == pytest.approx(rate)
        for family in FAMILIES:
            mine = [e for e in episodes if e["family"] == family]
            block = report["families"][family]
            assert block["episodes"] == 4
            assert block["success_rate"]["value"] == pytest.approx(
                sum(e["success"] for e in mine) / 4
            )
        assert report["bootstrap"]["resamples"] == 10_000 and report["model"] == server.base_url
        md = (out / "report.md").read_text()
        assert "| bug-patch | 4 | 2 |" in md and "| noise-filter | 4 | 2 |" in md
        assert "pass@2" in md and "![best score so far](best_score.png)" in md
        assert (out / "best_score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"success rate {rate:.1%}" in printed and "8 run(s) driven this time" in printed

        # The same command again: every episode has ended, nothing runs, the same report.
        first = (out / "report.json").read_text()
        before = len(server.requests)
        assert evaluate(home, server.base_url, out, "--n", "2", "--repeats", "2") == 0
        assert len(server.requests) == before
        assert (out / "report.json").read_text() == first
        assert "0 run(s) driven this time" in capsys.readouterr().out


def test_compare_gives_the_paired_difference_on_shared_instances(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    with GatedServer() as server:
        assert evaluate(home, server.base_url, a, "--n", "1") == 0
        assert evaluate(home, server.base_url, b, "--n", "2") == 0
        # --skip 1: each family's second test seed only, which B holds and A does not.
        assert evaluate(home, server.base_url, c, "--n", "1", "--skip", "1") == 0
    lines = (c / "episodes.jsonl").read_text().splitlines()
    assert sorted((e["family"], e["seed"]) for e in map(json.loads, lines)) == [
        (f, 5001) for f in sorted(FAMILIES)
    ]
    capsys.readouterr()
    assert main(["eval", "--compare", str(a), str(c)]) == 2
    assert "share no instance (family, seed): A has 2, B has 2" in capsys.readouterr().err
    assert main(["eval", "--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "2 shared instances (A alone 0, B alone 2)" in out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["shared"] == 2 and result["families"] == sorted(FAMILIES)
    # The same policy on the same instances: no difference, and an interval of none.
    diff = result["overall"]["success_rate"]["b_minus_a"]
    assert (diff["value"], diff["lo"], diff["hi"], diff["n"]) == (0.0, 0.0, 0.0, 2)


def test_compare_refuses_evaluations_that_share_no_instance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    with GatedServer() as server:
        for name, family in (("a", FAMILIES[0]), ("b", FAMILIES[1])):
            args = ["eval", server.base_url, "--home", str(home), "--family", family, "--n", "1"]
            assert main([*args, "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    assert main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "share no instance (family, seed): A has 1, B has 1" in err


def test_eval_defaults_its_folder_and_refuses_another_model_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    with GatedServer() as server:
        args = ["eval", server.base_url, "--home", str(home), "--family", FAMILIES[0], "--n", "1"]
        assert main(args) == 0
        (folder,) = (home / "evals").iterdir()
        assert folder.name.endswith("-test-noise-filter")
        assert len(lines(folder / "episodes.jsonl")) == 1
        # A shard of the split keeps its own folder, beside the first one's.
        assert main([*args, "--skip", "1"]) == 0
        shard = folder.with_name(folder.name + "-skip1")
        assert [e["seed"] for e in lines(shard / "episodes.jsonl")] == [5001]
        assert len(lines(folder / "episodes.jsonl")) == 1
        capsys.readouterr()
        other = ["eval", "http://127.0.0.1:9/v1", "--home", str(home), "--family", FAMILIES[0]]
        assert main([*other, "--n", "1", "--out", str(folder)]) == 2
        assert f"holds an evaluation of {server.base_url}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--family", "noise-filter"], "give MODEL and at least one --family"),
        (["eval", "http://127.0.0.1:9/v1"], "give MODEL and at least one --family"),
        (["eval", "embedded", "--compare", "a", "b"], "takes two evaluation folders and no"),
        (["eval", "--compare", "nowhere-a", "nowhere-b"], "holds no episodes.jsonl"),
        (
            ["eval", "http://127.0.0.1:9/v1", "--family", "noise-filter", "--n", "201"],
            "--n 201 is more than split 'test' of family noise-filter holds (200 seeds)",
        ),
        (
            ["eval", "http://127.0.0.1:9/v1", "--family", "noise-filter", "--split", "x"],
            "no split 'x'",
        ),
        (
            ["eval", "http://127.0.0.1:9/v1", "--family", "bug-patch", "--family", "bug-patch"],
            "a family is named twice",
        ),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main([*args, "--home", str(tmp_path / "home"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("apollo: error: ") and message in err and "\n" not in err
    assert not out.exists()  # nothing is made for a command that was refused
