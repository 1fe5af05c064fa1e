"""The experiment's driver, phases built so far (collect, supervise, export), on a scripted
model over loopback HTTP: what each arm's data holds, and that running again redoes nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apollo.experiment.driver import GUIDED, UNGUIDED, Driver, experiment_dir
from apollo.experiment.spec import ExperimentError, load_experiment
from apollo.log.sqlite import SQLiteStore
from apollo.rollout.home import Home
from tests.rollout.policies import GatedServer, first_option_wins

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
        exports = asyncio.run(driver.run())
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
        again = asyncio.run(Driver(Home(home), exp, say=said.append).run())
        assert len(server.requests) == requests
        assert len(runs_of(home, driver.tag(GUIDED))) == len(SEEDS)
        assert {arm: e.path.stat().st_mtime_ns for arm, e in again.items() if e.path} == stamps
        assert {arm: e.runs for arm, e in again.items()} == {
            arm: e.runs for arm, e in exports.items()
        }

        # The same name with other sizes would mix two experiments: refused.
        other = load_experiment(spec_file(tmp_path, server.base_url, collect={"n": 2}))
        with pytest.raises(ExperimentError, match=r"another spec \(collect differ\)"):
            asyncio.run(Driver(Home(home), other).run())


def test_unguided_rounds_are_added_until_their_steps_reach_the_target(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with GatedServer() as server:
        exp = load_experiment(spec_file(tmp_path, server.base_url, arms=["no-human", "apollo"]))
        driver = Driver(Home(home), exp, say=lambda line: None)
        one = asyncio.run(driver.collect(UNGUIDED, "none"))
        assert one.rounds == 1 and one.steps > 0
        more = asyncio.run(driver.collect(UNGUIDED, "none", steps=one.steps + 1))
        assert more.rounds == 2 and more.steps >= one.steps + 1
        rows = runs_of(home, driver.tag(UNGUIDED))
        assert sorted((s, r) for s, r, _, _ in rows) == sorted(
            (s, r) for s in SEEDS for r in (0, 1)
        )
        # The first round's runs were kept, not run again.
        assert {run for _, r, run, _ in rows if r == 0} == {e.run_id for e in one.episodes}


def test_the_cli_runs_the_built_phases_and_says_what_is_not_built(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with GatedServer() as server:
        spec = spec_file(tmp_path, server.base_url, collect={"n": 1}, arms=["apollo"])
        done = subprocess.run(
            [sys.executable, "-m", "apollo.cli", "experiment", str(spec), "--home", str(home)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert "[3/6] export: apollo: " in done.stdout
    assert "experiment t: collect, supervise, export done" in done.stdout
    assert "train, evaluate, report are not built yet" in done.stdout
