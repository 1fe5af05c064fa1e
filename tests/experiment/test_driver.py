"""The experiment's driver on a scripted model over loopback HTTP (the rollouts) and the
embedded SmolLM2 (the base trained, and the models evaluated): what each arm's data holds,
and that running again redoes nothing."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from apollo.experiment.driver import ArmExport, Driver, experiment_dir
from apollo.experiment.plan import GUIDED, GUIDED_LLM, UNGUIDED, arm_data, make_plan
from apollo.experiment.spec import ExperimentError, load_experiment
from apollo.llm.scripted import Request, ScriptedServer, reply
from apollo.log.sqlite import SQLiteStore
from apollo.rollout.home import Home
from tests.rollout.policies import GatedServer, first_option_wins

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [1000, 1001, 1002, 1003]


def spec_file(tmp_path: Path, url: str, **changes: object) -> Path:
    spec: dict[str, object] = {
        "name": "t",
        "model": url,
        "base": "embedded:smollm2-135m",
        "families": ["noise-filter"],
        "collect": {"n": len(SEEDS)},
        "evaluate": {"n": 1},
        "training": {"seeds": [0], "max_steps": 1},
    }
    spec.update(changes)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def runs_of(home: Path, tag: str) -> list[tuple[int, int, str, str]]:
    """(seed, repeat, run id, annotator) of a batch's runs."""
    store = SQLiteStore(home / "apollo.db")
    rows = sorted(
        (
            r.config["batch"]["seed"],
            r.config["batch"]["repeat"],
            r.id,
            r.config["options"]["annotator"],
        )
        for r in store.list_runs(limit=1000)
        if (r.config.get("batch") or {}).get("tag") == tag
    )
    store.close()
    return rows


def test_the_phases_make_each_arms_data_and_a_second_run_redoes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    said: list[str] = []
    with GatedServer() as server:
        exp = load_experiment(spec_file(tmp_path, server.base_url))
        driver = Driver(Home(home), exp, say=said.append)

        def phases(driver: Driver) -> dict[str, ArmExport]:
            driver.claim()
            try:
                collections = asyncio.run(driver.collect_all())
                runs = [e.run_id for c in collections.values() for e in c.episodes]
                asyncio.run(driver.supervise(runs))
                return driver.export_all(collections)
            finally:
                driver.release()

        exports = phases(driver)
        requests = len(server.requests)

        guided = runs_of(home, driver.tag(GUIDED))
        unguided = runs_of(home, driver.tag(UNGUIDED))
        assert [(s, r, a) for s, r, _, a in guided] == [(s, 0, "simulated") for s in SEEDS]
        # The policy takes as many steps guided as not, so one round matches the steps.
        assert [(s, r, a) for s, r, _, a in unguided] == [(s, 0, "none") for s in SEEDS]
        wins = {s for s in SEEDS if first_option_wins("noise-filter", s, home / "instances")}
        assert 0 < len(wins) < len(SEEDS)  # both outcomes, so the success filter is seen

        assert set(exports) == {"no-human", "no-mask", "apollo", "apollo-stripped"}
        # no-human: the successful unguided runs only; the others: every guided run.
        assert set(exports["no-human"].runs) == {run for s, _, run, _ in unguided if s in wins}
        for arm in ("no-mask", "apollo", "apollo-stripped"):
            assert set(exports[arm].runs) == {run for _, _, run, _ in guided}
        cards = {arm: e.card for arm, e in exports.items()}
        assert cards["no-mask"]["policy"]["mode"] == "keep-all"
        assert cards["apollo"]["policy"]["mode"] == "precedence"
        assert cards["apollo"]["filters"]["guidance"] is True
        assert cards["apollo-stripped"]["filters"]["guidance"] is False
        assert cards["no-human"]["runs"] == len(wins)
        for arm, done in exports.items():
            assert (
                done.path is not None
                and done.path.parent == experiment_dir(Home(home), exp) / "data"
            )
            rows = [json.loads(line) for line in done.path.read_text().splitlines()]
            assert len(rows) == cards[arm]["samples"] > 0
            assert all(len(r["input_ids"]) == len(r["labels"]) for r in rows)
            assert any(label != -100 for r in rows for label in r["labels"])
        assert any(line.startswith("[1/6] collect: guided: 4 runs") for line in said)
        assert any(line.startswith("[3/6] export: no-human: ") for line in said)

        # Again: no model call, no run, no export rewritten.
        stamps = {arm: e.path.stat().st_mtime_ns for arm, e in exports.items() if e.path}
        again = phases(Driver(Home(home), exp, say=said.append))
        assert len(server.requests) == requests
        assert len(runs_of(home, driver.tag(GUIDED))) == len(SEEDS)
        assert {arm: e.path.stat().st_mtime_ns for arm, e in again.items() if e.path} == stamps
        assert {arm: e.runs for arm, e in again.items()} == {
            arm: e.runs for arm, e in exports.items()
        }

        # The same name with other sizes would mix two experiments: refused.
        other = load_experiment(spec_file(tmp_path, server.base_url, collect={"n": 2}))
        with pytest.raises(ExperimentError, match=r"another spec \(collect differ\)"):
            Driver(Home(home), other).claim()
        # One process at a time runs an experiment.
        holder = Driver(Home(home), exp)
        holder.claim()
        with pytest.raises(ExperimentError, match="being run by another live process"):
            Driver(Home(home), exp).claim()
        holder.release()


def test_the_apollo_llm_arm_is_collected_with_the_llm_annotator(tmp_path: Path) -> None:
    home = tmp_path / "home"
    no_hint = reply(json.dumps({"drifted": False, "reason": "fine", "hint": None}))
    with GatedServer() as agent, ScriptedServer(default=lambda request: no_hint) as watcher:
        spec = spec_file(
            tmp_path,
            agent.base_url,
            collect={"n": 2, "annotator_model": watcher.base_url},
            arms=["apollo", "apollo-llm"],
        )
        exp = load_experiment(spec)
        assert any("collect: guided-llm (apollo-llm)" in line for line in make_plan(exp).lines())
        driver = Driver(Home(home), exp, say=lambda line: None)
        collections = asyncio.run(driver.collect_all())
        exports = driver.export_all(collections)
    assert set(collections) == {GUIDED, GUIDED_LLM}
    by_llm = runs_of(home, driver.tag(GUIDED_LLM))
    assert [(s, a) for s, _, _, a in by_llm] == [(1000, "llm"), (1001, "llm")]
    assert set(exports["apollo-llm"].runs) == {run for _, _, run, _ in by_llm}
    assert set(exports["apollo"].runs) == {
        run for _, _, run, _ in runs_of(home, driver.tag(GUIDED))
    }
    store = SQLiteStore(home / "apollo.db")
    record = store.get_run(by_llm[0][2])
    assert record is not None and record.config["options"]["annotator_model"] == watcher.base_url
    store.close()


def judge_masks_step_2(request: Request) -> dict[str, Any]:
    """A scripted judge: keep every step it is asked about but step 2."""
    text = request.body["messages"][-1]["content"]
    listed = re.search(r"## Steps to judge: ([0-9, ]+)", text)
    assert listed is not None
    steps = [int(s) for s in listed.group(1).split(",")]
    verdicts = [
        {"step": s, "verdict": "mask" if s == 2 else "keep", "reason": "scripted"} for s in steps
    ]
    return reply(json.dumps({"verdicts": verdicts}))


def test_an_llm_judge_labels_once_and_its_agreement_is_measured(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with GatedServer() as agent, ScriptedServer(default=judge_masks_step_2) as judge:
        spec = spec_file(
            tmp_path,
            agent.base_url,
            collect={"n": 2},
            arms=["apollo"],
            supervise={"judge": judge.base_url},
        )
        driver = Driver(Home(home), load_experiment(spec), say=lambda line: None)
        collections = asyncio.run(driver.collect_all())
        runs = [e.run_id for e in collections[GUIDED].episodes]
        written = asyncio.run(driver.supervise(runs))
        asked = len(judge.requests)
        assert asked == 2 and written >= 2 * 3  # a verdict on each step of each run
        # Again: every run has this judge's labels, so it is not asked again.
        assert asyncio.run(driver.supervise(runs)) == 0 and len(judge.requests) == asked
        exports = driver.export_all(collections)
    [made] = driver.agreement(runs)
    assert made["judge"] == "default" and made["rules"]["actions"] == written
    assert made["rules"]["judge_masks"] == 2  # step 2 of each run
    assert made["humans"]["actions"] == 0
    # The judge's masks reach the Apollo arm's data.
    assert exports["apollo"].card["assistant_turns_masked"] >= 2


def test_an_arm_without_trained_tokens_is_not_trained(tmp_path: Path) -> None:
    exp = load_experiment(spec_file(tmp_path, "http://127.0.0.1:9/v1"))
    driver = Driver(Home(tmp_path / "home"), exp)
    data = tmp_path / "apollo.jsonl"
    data.write_text('{"input_ids": [1, 2], "labels": [-100, -100]}\n')
    masked = ArmExport(arm_data("apollo"), ("r1",), data, {"tokens_trained": 0, "samples": 1})
    done = driver.train(masked, 0)
    assert done.out is None and "every action of its data is masked" in done.why_not
    assert not (driver.dir / "models").exists()
    empty = driver.train(ArmExport(arm_data("no-human"), (), None, {}), 0)
    assert empty.out is None and empty.why_not == "no run qualified for its training data"


def test_unguided_rounds_are_added_until_their_steps_reach_the_target(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with GatedServer() as server:
        exp = load_experiment(spec_file(tmp_path, server.base_url, arms=["no-human", "apollo"]))
        driver = Driver(Home(home), exp, say=lambda line: None)
        one = asyncio.run(driver.collect(UNGUIDED, "none"))
        assert one.rounds == 1 and one.steps > 0
        # One step more than a round gives: a second round, with no run started once the
        # steps are reached, so it holds one run (the policy takes the same steps each run).
        more = asyncio.run(driver.collect(UNGUIDED, "none", steps=one.steps + 1))
        assert more.rounds == 2 and more.steps >= one.steps + 1
        rows = runs_of(home, driver.tag(UNGUIDED))
        assert sorted((s, r) for s, r, _, _ in rows) == sorted(
            [(s, 0) for s in SEEDS] + [(1000, 1)]
        )
        # The first round's runs were kept, not run again; asked again, nothing runs.
        assert {run for _, r, run, _ in rows if r == 0} == {e.run_id for e in one.episodes}
        requests = len(server.requests)
        again = asyncio.run(driver.collect(UNGUIDED, "none", steps=one.steps + 1))
        assert len(server.requests) == requests and again.steps == more.steps


@pytest.mark.slow
def test_the_cli_runs_every_phase_and_a_second_run_redoes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    command = [sys.executable, "-m", "apollo.cli", "experiment"]
    with GatedServer() as server:
        spec = spec_file(
            tmp_path,
            server.base_url,
            collect={"n": 1},
            evaluate={"n": 1, "max_steps": 2},
            arms=["untrained", "apollo"],
        )
        command += [str(spec), "--home", str(home)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "[3/6] export: apollo: " in out
        assert "[4/6] train: apollo-seed0: in " in out
        assert "[5/6] evaluate: untrained: " in out and "[5/6] evaluate: apollo-seed0: " in out
        assert f"experiment t done: {tmp_path / 't' / 'report.md'}" in out
        root = home / "experiments" / "t"
        trained = json.loads((root / "models" / "apollo-seed0" / "train.json").read_text())
        assert trained["steps"] == 1 and trained["hyperparameters"]["seed"] == 0
        for name, model in (
            ("untrained", "embedded:smollm2-135m"),
            ("apollo-seed0", f"embedded:smollm2-135m+{root.resolve() / 'models' / 'apollo-seed0'}"),
        ):
            report = json.loads((root / "evals" / name / "report.json").read_text())
            assert report["model"] == model and report["experiment"] == "t"
            assert report["overall"]["episodes"] == 1
        # The report, beside the spec.
        reported = tmp_path / "t"
        results = json.loads((reported / "results.json").read_text())
        assert set(results["arms"]) == {"untrained", "apollo"}
        assert (
            results["arms"]["apollo"]["seeds"] == [0]
            and results["arms"]["untrained"]["seeds"] == []
        )
        for figures in results["arms"].values():
            assert figures["n"] == 1 and figures["episodes"] == 1
            lo, hi = figures["success_ci95"]
            assert lo <= figures["success_rate"] <= hi
        pair = results["paired"]["apollo_vs_untrained"]
        assert pair["shared"] == 1 and pair["diff"] == (
            results["arms"]["apollo"]["success_rate"] - results["arms"]["untrained"]["success_rate"]
        )
        assert set(results["target"]) >= {"met", "relative_over_untrained"}
        phases = {"collect", "supervise", "export", "train", "evaluate"}
        assert set(results["compute_hours"]) == phases
        assert results["compute_hours"]["train"]["cpu"] > 0
        assert results["data"]["apollo"]["runs"] == 1 and results["data"]["apollo"]["samples"] > 0
        episodes = [
            json.loads(line) for line in (reported / "episodes.jsonl").read_text().splitlines()
        ]
        assert sorted((e["arm"], e["training_seed"]) for e in episodes) == [
            ("apollo", 0),
            ("untrained", None),
        ]
        md = (reported / "report.md").read_text()
        assert "| apollo | 1 | 1 |" in md and "## The method's claim, against this result" in md
        for plot in ("success.png", "best_score.png", "loss.png"):
            assert (reported / plot).read_bytes().startswith(b"\x89PNG")

        requests = len(server.requests)
        stamp = (root / "models" / "apollo-seed0" / "train.json").stat().st_mtime_ns
        runs = sum(map(len, batch_runs(home).values()))

        again = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(server.requests) == requests
        assert (root / "models" / "apollo-seed0" / "train.json").stat().st_mtime_ns == stamp
        assert sum(map(len, batch_runs(home).values())) == runs


def batch_runs(home: Path) -> dict[str, list[tuple[int, int]]]:
    """(seed, repeat) of every batch run, by batch tag."""
    store = SQLiteStore(home / "apollo.db")
    out: dict[str, list[tuple[int, int]]] = {}
    for r in store.list_runs(limit=10_000):
        batch = r.config.get("batch") or {}
        if batch:
            out.setdefault(batch["tag"], []).append((batch["seed"], batch["repeat"]))
    store.close()
    return {tag: sorted(slots) for tag, slots in out.items()}


@pytest.mark.slow
def test_the_smoke_profile_runs_end_to_end_and_survives_a_kill(tmp_path: Path) -> None:
    """The shipped spec's smoke profile on the embedded SmolLM2, every phase; killed (-9) in
    the middle of its guided collection, the same command continues it and repeats no run."""
    spec = tmp_path / "mini.yaml"  # a copy, so the report lands here, not in the repository
    spec.write_text((ROOT / "experiments" / "mini.yaml").read_text(), encoding="utf-8")
    home = tmp_path / "home"
    command = [sys.executable, "-m", "apollo.cli", "experiment", str(spec), "--profile"]
    command += ["smoke", "--home", str(home)]
    guided = "exp-mini-smoke-guided"
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        # Killed once the first guided run has ended and the second has begun.
        while not (home / "apollo.db").exists() or len(batch_runs(home).get(guided, [])) < 2:
            assert first.poll() is None, "the experiment ended before it could be killed"
            assert time.monotonic() < deadline, "the guided collection never reached run 2"
            time.sleep(0.5)
    finally:
        first.kill()
        first.wait(timeout=60)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = batch_runs(home)
    # Each instance of each collection ran once: the killed run was resumed, not repeated.
    assert runs[guided] == [(1000, 0), (1001, 0)]
    assert runs["exp-mini-smoke-unguided"][:2] == [(1000, 0), (1001, 0)]
    assert len(set(runs["exp-mini-smoke-unguided"])) == len(runs["exp-mini-smoke-unguided"])
    evals = [tag for tag in runs if tag.startswith("eval-")]
    assert evals and all(runs[tag] == [(5000, 0), (5001, 0)] for tag in evals)
    reported = tmp_path / "mini-smoke"
    results = json.loads((reported / "results.json").read_text())
    assert set(results["arms"]) == {"untrained", "no-human", "no-mask", "apollo"}
    assert results["arms"]["untrained"]["n"] == 2
    # no-mask trains on every guided action, so at least it was trained and evaluated; the
    # other arms were, or say why not (SmolLM2 rarely succeeds, and repeats itself).
    assert results["arms"]["no-mask"]["seeds"] == [0] and results["arms"]["no-mask"]["n"] == 2
    for arm in ("no-human", "apollo"):
        figures = results["arms"][arm]
        assert figures["seeds"] == [0] or figures["note"].startswith("not trained: ")
    for name in ("report.md", "episodes.jsonl", "success.png", "best_score.png", "loss.png"):
        assert (reported / name).is_file(), name
