"""An experiment's spec: the shipped one loads, profiles merge, and every mistake is one
clear error naming the field and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apollo.experiment.plan import make_plan
from apollo.experiment.spec import ExperimentError, load_experiment

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "experiments" / "mini.yaml"
GOOD = {
    "name": "t",
    "model": "embedded:smollm2-135m",
    "families": ["noise-filter", "bug-patch"],
    "collect": {"n": 3},
    "evaluate": {"n": 4, "repeats": 2},
    "training": {"seeds": [0, 1], "lora_r": 8, "max_steps": 2},
    "profiles": {"smoke": {"families": ["noise-filter"], "collect": {"n": 1}}},
}


def write(tmp_path: Path, spec: dict[str, object]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def with_(**changes: object) -> dict[str, object]:
    spec = dict(GOOD)
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    return spec


def test_the_shipped_spec_and_its_smoke_profile_load() -> None:
    full = load_experiment(MINI)
    assert full.name == "mini" and full.spec.model == "embedded:qwen2.5-coder-1.5b"
    assert [f.id for f in full.families] == ["noise-filter", "bug-patch", "slow-training"]
    smoke = load_experiment(MINI, "smoke")
    assert smoke.name == "mini-smoke"
    # A profile's mappings merge into the spec's: what it does not name stays.
    assert smoke.spec.collect.n == 2 and smoke.spec.collect.split == "train"
    assert smoke.spec.training.settings["lora_r"] == full.spec.training.settings["lora_r"]
    assert smoke.spec.training.settings["max_steps"] == 2
    assert smoke.spec.training.seeds == (0,)


def test_defaults_and_derived_sizes(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, GOOD))
    spec = exp.spec
    assert spec.collect.split == "train" and spec.evaluate.split == "test"
    assert spec.arms == ("untrained", "no-human", "no-mask", "apollo", "apollo-stripped")
    plan = make_plan(exp)
    assert plan.collect_runs == 6  # 2 families x 3
    assert plan.trainings == 8  # 4 trained arms x 2 seeds
    assert plan.models == 9  # and the untrained base
    assert plan.episodes_per_model == 16  # 4 instances x 2 families x 2 repeats
    assert plan.power.instances == 8 and not plan.power.enough
    # Each arm's data, as the plan says it.
    text = "\n".join(plan.lines())
    assert "no-human: successful unguided runs, masked by supervision" in text
    assert "no-mask: guided runs, every action trained" in text
    assert "apollo-stripped: guided runs, masked by supervision, <real_user> turns removed" in text
    assert "1 family x 1 train instance" in "\n".join(
        make_plan(load_experiment(write(tmp_path, GOOD), "smoke")).lines()
    )


def test_an_endpoint_may_roll_out_what_an_embedded_base_trains_on(tmp_path: Path) -> None:
    spec = with_(model="http://127.0.0.1:8000/v1", base="embedded:smollm2-135m")
    exp = load_experiment(write(tmp_path, spec))
    assert exp.spec.base_model == "embedded:smollm2-135m"
    assert (
        make_plan(exp)
        .lines()[0]
        .startswith(
            "experiment t: http://127.0.0.1:8000/v1 rolls out, embedded:smollm2-135m is trained"
        )
    )
    assert load_experiment(write(tmp_path, GOOD)).spec.base_model == "embedded:smollm2-135m"


def test_without_the_no_human_arm_there_is_no_unguided_collection(tmp_path: Path) -> None:
    plan = make_plan(load_experiment(write(tmp_path, with_(arms=["untrained", "apollo"]))))
    assert not plan.unguided and plan.models == 3
    assert not any("collect: unguided" in line for line in plan.lines())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (with_(name=None), "field 'name': required field is missing; add it"),
        (with_(colour="red"), "field 'colour': unknown field; remove it"),
        (with_(model="http://127.0.0.1:8000/v1"), "name the model to train: base: embedded"),
        (with_(base="http://127.0.0.1:8000/v1"), "must be an embedded base model"),
        (with_(base="embedded:smollm2-135m+/tmp"), "must be an embedded base model"),
        (with_(model="embedded:gpt-9"), "no embedded model 'gpt-9'"),
        (with_(families=["no-such"]), "'no-such': no such family; use a built-in family"),
        (with_(families=["bug-patch", "bug-patch"]), "list each one once"),
        (with_(collect={"n": 3, "split": "dev"}), "has no split 'dev'; it has train (300)"),
        (with_(evaluate={"n": 201}), "holds 200; give at most 200"),
        (with_(collect={"n": 0}), "field 'collect.n'"),
        (with_(collect={"n": 3, "split": "test"}), "must never come from the instances"),
        (with_(arms=["untrained", "no-mask"]), "arms must include 'apollo'"),
        (with_(arms=["apollo", "best"]), "field 'arms.1'"),
        (with_(training={"lora_rank": 8}), "unknown training setting lora_rank"),
        (with_(training={"seed": 3}), "the experiment sets base, data, device"),
        (with_(training={"lora_r": 0}), "--lora-r must be 1 or more"),
        (with_(training={"lora_r": "big"}), "a training setting has the wrong type (lora_r"),
        (with_(training={"seeds": []}), "field 'training.seeds'"),
        (with_(training={"seeds": [1, 1]}), "list each training seed once"),
        (with_(power={"difference": 0}), "field 'power.difference'"),
        (with_(power={"base": 0.9, "difference": 0.15}), "above a 100% success rate"),
        (with_(name="x" * 61), "field 'name'"),
        (with_(profiles={"smoke": {"name": "x"}}), "not its name or profiles"),
        # A broken profile is found when the spec loads, not when the profile is first used.
        (with_(profiles={"smoke": {"collect": {"n": -1}}}), "(with profile 'smoke')"),
    ],
)
def test_a_bad_spec_is_one_clear_error(
    tmp_path: Path, spec: dict[str, object], expected: str
) -> None:
    with pytest.raises(ExperimentError) as caught:
        load_experiment(write(tmp_path, spec))
    assert expected in str(caught.value)
    assert str(tmp_path / "spec.yaml") in str(caught.value)


def test_files_that_are_no_spec(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="no such file; give the path"):
        load_experiment(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ExperimentError, match="not valid YAML"):
        load_experiment(bad)
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ExperimentError, match="must be a mapping of fields"):
        load_experiment(bad)
    bad.write_bytes(b"name: \xff\n")
    with pytest.raises(ExperimentError, match="not UTF-8 text"):
        load_experiment(bad)
    with pytest.raises(ExperimentError, match="no profile 'fast'; its profiles: smoke"):
        load_experiment(write(tmp_path, GOOD), "fast")


def apollo(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apollo.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_prints_the_plan_and_refuses_a_bad_spec(tmp_path: Path) -> None:
    done = apollo("experiment", str(MINI), "--plan", home=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("experiment mini: embedded:qwen2.5-coder-1.5b, arms untrained")
    assert any(line.startswith("power: 153 test instances per arm") for line in lines)
    assert lines[-1].endswith("needs 152: enough")
    smoke = apollo("experiment", str(MINI), "--plan", "--profile", "smoke", home=tmp_path)
    assert smoke.stdout.startswith("experiment mini-smoke: embedded:smollm2-135m")
    bad = apollo("experiment", str(write(tmp_path, with_(arms=["no-mask"]))), home=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("apollo: error: ") and "arms must include 'apollo'" in bad.stderr
