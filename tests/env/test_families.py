"""The built-in task families: specs validate, instances are reproducible, a random choice
among the visible options mostly fails, the reference solutions succeed, and no hint gives
an instance's hidden values away.

A reference solution lives in eval/reference/ and is applied to an instance's fresh
workspace with `sh eval/reference/apply.sh WORKSPACE`; scores come from the evaluator run in
the runner's sandbox (apollo.env.evaluate)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from apollo.env.evaluate import evaluate
from apollo.env.family import ANNOTATOR_NOTES, Family, builtin_families, resolve_family
from apollo.env.task import Task, builtin_tasks
from apollo.env.tools.registry import ToolBox
from apollo.env.workspace import Workspace
from apollo.rollout.llm_annotator import hidden_values, reference_notes
from tests.agent.harness import Outcome, act, observation_texts, run_agent
from tests.rollout.policies import listed_filters

FAMILIES = ["bug-patch", "noise-filter", "slow-training"]
SECTIONS = ["Motivation", "Task", "Data", "Constraints", "Evaluation", "Environment"]
SEEDS = {"train": [1000, 1001, 1002], "test": [5000, 5001, 5002]}
HINT_INSTANCES = 200
AGENT_TOOLS = {"think", "submit", "finish"}


def score(task: Task, workspace: Workspace) -> float:
    result = asyncio.run(evaluate(task, workspace))
    assert result.error is None, result.error
    assert result.score is not None
    return result.score


def fresh(family: str, seed: int, tmp_path: Path) -> tuple[Task, Workspace]:
    """Instance `seed` of a family and a new run workspace over it."""
    task = resolve_family(family).materialize(seed, tmp_path / "instances")
    return task, Workspace.create(task, tmp_path / "runs" / str(seed))


def apply_reference(task: Task, workspace: Path, log: Path) -> None:
    with open(log, "w") as out:
        subprocess.run(
            ["sh", str(task.eval_dir / "reference" / "apply.sh"), str(workspace)],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=300,
        )


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# --- all families -------------------------------------------------------------------------


def test_builtin_families_are_listed_apart_from_the_tasks() -> None:
    assert [f.id for f in builtin_families()] == FAMILIES
    assert [t.id for t in builtin_tasks()] == [
        "filter-noisy-labels",
        "interval-set",
        "patient-training",
    ]


@pytest.mark.parametrize("name", FAMILIES)
def test_spec_is_complete(name: str) -> None:
    family = resolve_family(name)
    spec = family.task.spec
    assert family.splits == {"train": 300, "test": 200}
    assert set(family.seeds("train")).isdisjoint(family.seeds("test"))
    assert spec.network is False
    assert spec.success_score is not None and 50 <= spec.success_score <= 90
    # Sized for a small model: a short episode, commands that finish within seconds.
    assert spec.budget.steps <= 20 and spec.budget.working_time <= 300
    assert spec.limits.command_timeout <= 30
    assert 3 <= len(spec.hints) <= 4
    assert {h.kind for h in spec.hints} <= {"knowledge", "strategy", "correction"}
    # No number but the interpreter's name, so no instance's value in any spelling (0.01,
    # 1e-2, fix-482).
    assert not [h.id for h in spec.hints if re.search(r"\d", h.text.replace("python3", ""))]
    headings = [
        line[3:].strip() for line in family.task.description.splitlines() if line.startswith("## ")
    ]
    assert headings == SECTIONS
    calibration = (family.task.path / "CALIBRATION.md").read_text()
    assert "not calibrated yet" in calibration and "## How to calibrate" in calibration


@pytest.mark.parametrize("name", FAMILIES)
def test_instances_are_reproducible_byte_for_byte(name: str, tmp_path: Path) -> None:
    family = resolve_family(name)
    one = family.materialize(1000, tmp_path / "a")
    two = family.materialize(1000, tmp_path / "b")
    other = family.materialize(5000, tmp_path / "a")
    assert tree(one.path) == tree(two.path)
    assert tree(one.workspace_template) != tree(other.workspace_template)
    assert tree(one.eval_dir / "truth") != tree(other.eval_dir / "truth")


@pytest.mark.parametrize("name", FAMILIES)
def test_no_workspace_script_is_named_like_a_tool(name: str, tmp_path: Path) -> None:
    task = resolve_family(name).materialize(1000, tmp_path / "instances")
    tools = {spec.name for spec in ToolBox().specs()} | AGENT_TOOLS
    stems = {p.stem for p in task.workspace_template.rglob("*") if p.is_file()}
    assert stems and not stems & tools
    assert not any(p.parts[0] == "truth" for p in (task.workspace_template.rglob("*")))


@pytest.mark.parametrize("name", FAMILIES)
def test_untouched_instances_fail(name: str, tmp_path: Path) -> None:
    for seed in (1000, 5000):
        task, ws = fresh(name, seed, tmp_path)
        assert task.spec.success_score is not None
        assert score(task, ws) < task.spec.success_score


@pytest.mark.parametrize("name", ["bug-patch", "noise-filter"])
def test_reference_solution_succeeds_on_several_seeds(name: str, tmp_path: Path) -> None:
    for seed in SEEDS["train"] + SEEDS["test"]:
        task, ws = fresh(name, seed, tmp_path)
        apply_reference(task, ws.path, tmp_path / f"reference-{seed}.log")
        assert score(task, ws) >= 80, (seed, (tmp_path / f"reference-{seed}.log").read_text())


@pytest.mark.slow
def test_slow_training_reference_waits_for_the_run_and_succeeds(tmp_path: Path) -> None:
    """The reference takes about 30 s an instance; the runs are paced, so they share time."""
    made = [fresh("slow-training", seed, tmp_path) for seed in (1000, 1001, 5000)]

    def solve(pair: tuple[Task, Workspace]) -> str:
        task, ws = pair
        log = tmp_path / f"reference-{task.id}.log"
        apply_reference(task, ws.path, log)
        return log.read_text()

    with ThreadPoolExecutor(len(made)) as pool:
        logs = list(pool.map(solve, made))
    for (task, ws), log in zip(made, logs, strict=True):
        assert "epoch 6/6" in log and "done" in log
        assert score(task, ws) >= 80, log


# --- one choice among a few visible options -----------------------------------------------


def test_noise_filter_only_the_matching_filter_succeeds(tmp_path: Path) -> None:
    for seed in SEEDS["test"]:
        task, ws = fresh("noise-filter", seed, tmp_path)
        names = listed_filters(ws.path)
        scores = {}
        for name in names:
            subprocess.run(
                [sys.executable, "filters.py", name],
                cwd=ws.path,
                check=True,
                capture_output=True,
            )
            scores[name] = score(task, ws)
        answer = json.loads((task.eval_dir / "truth" / "answer.json").read_text())["filter"]
        assert len(names) == 3 and scores[answer] >= 80, scores
        assert all(s < 60 for n, s in scores.items() if n != answer), scores


def test_bug_patch_only_the_right_fix_succeeds(tmp_path: Path) -> None:
    for seed in SEEDS["test"]:
        task, ws = fresh("bug-patch", seed, tmp_path)
        scores = {}
        for candidate in sorted((ws.path / "patches").glob("*.py")):
            shutil.copyfile(candidate, ws.path / "kit.py")
            scores[candidate.stem] = score(task, ws)
        answer = json.loads((task.eval_dir / "truth" / "answer.json").read_text())["patch"]
        assert len(scores) == 4 and scores[answer] == 100, scores
        assert all(s < 90 for n, s in scores.items() if n != answer), scores


# A finished run of train.py written at once, for scoring each candidate without waiting.
FINISHED_RUN = """
import json, sys, model, train
lr = float(sys.argv[1])
w, b = model.train(lr, train.EPOCHS)
state = {"complete": True, "epochs_done": train.EPOCHS, "epochs": train.EPOCHS, "lr": lr,
         "weights": w, "bias": b, "started_at": 1000.0, "updated_at": 1031.0}
(model.HERE / "output").mkdir(exist_ok=True)
(model.HERE / "output" / "model.json").write_text(json.dumps(state))
"""


def test_slow_training_only_the_best_learning_rate_succeeds(tmp_path: Path) -> None:
    for seed in SEEDS["test"]:
        task, ws = fresh("slow-training", seed, tmp_path)
        candidates = json.loads((ws.path / "config.json").read_text())["candidates"]
        scores = {}
        for lr in candidates:
            subprocess.run([sys.executable, "-c", FINISHED_RUN, str(lr)], cwd=ws.path, check=True)
            scores[str(lr)] = score(task, ws)
        answer = json.loads((task.eval_dir / "truth" / "answer.json").read_text())["lr"]
        assert len(scores) == 3 and scores[answer] >= 80, scores
        assert all(s < 80 for n, s in scores.items() if n != answer), scores


def test_slow_training_checkpoint_guards(tmp_path: Path) -> None:
    """A run made too fast or by an edited train.py is not a finished run; a run killed early
    scores at most 5; the evaluator's record of train.py is the shipped one."""
    task, ws = fresh("slow-training", 1000, tmp_path)
    shipped = hashlib.sha256((ws.path / "train.py").read_bytes()).hexdigest()
    assert (task.eval_dir / "train.py.sha256").read_text().strip() == shipped
    lr = json.loads((task.eval_dir / "truth" / "answer.json").read_text())["lr"]
    subprocess.run([sys.executable, "-c", FINISHED_RUN, lr], cwd=ws.path, check=True)
    assert score(task, ws) >= 80
    path = ws.path / "output" / "model.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps(dict(state, updated_at=1005.0)))
    assert score(task, ws) == 0
    path.write_text(json.dumps(dict(state, complete=False, epochs_done=2)))
    assert score(task, ws) <= 5
    path.write_text(json.dumps(state))
    (ws.path / "train.py").write_text((ws.path / "train.py").read_text().replace("5.0", "0.0"))
    assert score(task, ws) == 0


def test_slow_training_needs_a_session() -> None:
    """A bounded `run` stops before the training can finish, so only a session gets there."""
    family = resolve_family("slow-training")
    source = (family.task.workspace_template / "train.py").read_text()
    assert "EPOCHS = 6\n" in source and "EPOCH_SECONDS = 5.0\n" in source
    assert family.task.spec.limits.command_timeout < 6 * 5.0


# --- hints ----------------------------------------------------------------------------------


def _values(family: Family, seed: int, root: Path) -> set[str]:
    task = family.materialize(seed, root)
    values = hidden_values(task)
    shutil.rmtree(task.path)
    return values


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_no_hint_contains_a_hidden_value(name: str, tmp_path: Path) -> None:
    family = resolve_family(name)
    seeds = (family.seeds("train") + family.seeds("test"))[::2][:HINT_INSTANCES]
    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(lambda s: _values(family, s, tmp_path), seeds))
    assert len(found) == HINT_INSTANCES and all(found)
    hidden = set().union(*found)
    for hint in family.task.spec.hints:
        leaked = sorted(v for v in hidden if v in hint.text)
        assert not leaked, (hint.id, leaked[:5])
    # Nor the notes the LLM annotator reads, which it might quote.
    notes = reference_notes(family.task)
    assert notes, f"{name} has no eval/{ANNOTATOR_NOTES}"
    leaked = sorted(v for v in hidden if v.lower() in notes.lower())
    assert not leaked, leaked[:5]


# --- through the agent, in the real sandbox -------------------------------------------------


def scripted_run(tmp_path: Path, task: Task, script: list[dict[str, Any]]) -> Outcome:
    outcome = run_agent(tmp_path, script, task=task)
    assert outcome.status == "finished"
    return outcome


def final_score(outcome: Outcome) -> float:
    record = outcome.store.get_run(outcome.run_id)
    assert record is not None and record.last_score is not None
    return record.last_score


def answer_of(task: Task) -> dict[str, Any]:
    return dict(json.loads((task.eval_dir / "truth" / "answer.json").read_text()))


def test_noise_filter_commands_of_the_description_work_in_the_sandbox(tmp_path: Path) -> None:
    task = resolve_family("noise-filter").materialize(5003, tmp_path / "instances")
    name = answer_of(task)["filter"]
    named = re.findall(r"^- `([a-z-]+)`:", task.description, re.MULTILINE)
    # The options are visible in the description: exactly the filters filters.py has.
    assert sorted(named) == sorted(listed_filters(task.workspace_template))
    assert len(named) == 3 and name in named
    other = next(n for n in named if n != name)
    outcome = scripted_run(
        tmp_path,
        task,
        [
            act("run", command=f"python3 filters.py {other}"),
            # Redirecting stdout into the output (a habit seen in a probed model) is harmless.
            act("run", command=f"python3 filters.py {name} > output/clean.jsonl"),
            act("submit", note="the filter with the best dev accuracy"),
            act("finish", summary="done"),
        ],
    )
    seen = observation_texts(outcome)
    accuracy = [float(re.findall(r"dev accuracy ([0-9.]+)", text)[0]) for text in seen[:2]]
    assert all("output/clean.jsonl" in text for text in seen[:2])
    assert accuracy[1] > accuracy[0]  # measuring tells the matching filter apart
    assert final_score(outcome) >= 80  # what the last filter run wrote is what is scored


def test_bug_patch_commands_of_the_description_work_in_the_sandbox(tmp_path: Path) -> None:
    task = resolve_family("bug-patch").materialize(5003, tmp_path / "instances")
    name = answer_of(task)["patch"]
    wrong = next(n for n in ("fix-a", "fix-b", "fix-c", "fix-d") if n != name)
    outcome = scripted_run(
        tmp_path,
        task,
        [
            act("run", command="python3 check.py"),
            act("run", command="python3 check.py patches/fix2.py"),  # a guessed name
            act("run", command="python3 check.py tests.json"),  # not a candidate: refused
            act("run", command=f"python3 check.py patches/{name}.py"),
            act("run", command=f"python3 check.py patches/{wrong}.py"),
            act("submit", note="the right one was checked, but not last"),
            act("run", command=f"python3 check.py patches/{name}.py"),
            act("submit", note="the fix that passes the visible tests, checked last"),
            act("finish", summary="done"),
        ],
    )
    seen = observation_texts(outcome)
    assert "FAIL" in seen[0]
    # A wrong name is answered with the four files there are.
    candidates = sorted(p.name for p in (task.path / "workspace" / "patches").glob("*.py"))
    assert candidates == ["fix-a.py", "fix-b.py", "fix-c.py", "fix-d.py"]
    assert all(f"patches/{c}" in seen[1] for c in candidates)
    assert "tests.json: not a candidate" in seen[2]
    assert f"kit.py is now a copy of patches/{name}.py" in seen[3] and "FAIL" not in seen[3]
    assert f"kit.py is now a copy of patches/{wrong}.py" in seen[4] and "FAIL" in seen[4]
    # The last candidate checked is the one scored, and the score says which it is.
    assert f"a copy of patches/{wrong}.py" in seen[5]
    assert f"a copy of patches/{name}.py" in seen[7]
    assert final_score(outcome) == 100


@pytest.mark.slow
def test_slow_training_finishes_only_in_a_session(tmp_path: Path) -> None:
    """A bounded run of train.py is stopped at the command limit; one in a session, waited
    for, finishes and scores."""
    task = resolve_family("slow-training").materialize(5003, tmp_path / "instances")
    lr = answer_of(task)["lr"]
    outcome = scripted_run(
        tmp_path,
        task,
        [
            act("run", command="python3 trial.py"),
            act("run", command=f"python3 train.py --lr {lr}"),
            act("session_start", command=f"python3 train.py --lr {lr}", name="train"),
            act("session_output", id="train", wait=300),
            act("submit", note="the finished run"),
            act("finish", summary="done"),
        ],
    )
    seen = observation_texts(outcome)
    assert "holdout loss after 1 epoch" in seen[0]
    assert "timed out" in seen[1].lower() and "done" not in seen[1]
    assert "done: output/model.json is complete" in seen[3]
    assert final_score(outcome) >= 80
