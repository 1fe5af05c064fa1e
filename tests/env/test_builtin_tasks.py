"""The built-in tasks: specs validate, baselines score low, reference solutions score high.

Every evaluator is run the way the spec describes: its command with `{workspace}`
substituted, from the task's eval/ folder, reading one JSON object from the last stdout
line. A reference solution lives in eval/reference/ and is applied to a fresh copy of the
workspace with `sh eval/reference/apply.sh WORKSPACE`.
"""

from __future__ import annotations

import asyncio
import filecmp
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from apollo.env.evaluate import evaluate as sandboxed_evaluate
from apollo.env.task import TASKS_DIR, Task, builtin_tasks, load_task
from apollo.env.workspace import Workspace

BUILTIN = ["filter-noisy-labels", "interval-set", "patient-training"]
SECTIONS = ["Motivation", "Task", "Data", "Constraints", "Evaluation", "Environment"]


def builtin(task_id: str) -> Task:
    """A built-in task, loaded and validated."""
    return load_task(TASKS_DIR / task_id)


def fresh_workspace(t: Task, tmp_path: Path) -> Path:
    """A copy of the task's workspace template, as a run would get it."""
    ws = tmp_path / "workspace"
    shutil.copytree(t.workspace_template, ws)
    return ws


def evaluate(t: Task, workspace: Path) -> dict[str, Any]:
    """Run the hidden evaluator as the spec says and return its result object."""
    command = t.spec.evaluator.command.replace("{workspace}", shlex.quote(str(workspace)))
    proc = subprocess.run(
        shlex.split(command),
        cwd=t.eval_dir,
        capture_output=True,
        text=True,
        timeout=t.spec.evaluator.timeout,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    low, high = t.spec.evaluator.score_range
    assert isinstance(result["score"], int | float)
    assert low <= result["score"] <= high
    assert isinstance(result["details"], dict)
    return result


def apply_reference(t: Task, workspace: Path, log: Path) -> None:
    """Apply the task's reference solution to a workspace (output goes to a file)."""
    with open(log, "w") as out:
        subprocess.run(
            ["sh", str(t.eval_dir / "reference" / "apply.sh"), str(workspace)],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=600,
        )


def digests(folder: Path) -> set[str]:
    """SHA-256 of every file under a folder."""
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


# --- all tasks ----------------------------------------------------------------------------


def test_builtin_tasks_are_listed() -> None:
    assert [t.id for t in builtin_tasks()] == BUILTIN


@pytest.mark.parametrize("task_id", BUILTIN)
def test_spec_is_complete(task_id: str) -> None:
    t = builtin(task_id)
    assert t.id == task_id
    assert t.spec.network is False
    assert t.spec.budget.submissions == 3
    assert t.spec.evaluator.command == "python3 evaluate.py {workspace}"
    assert tuple(t.spec.evaluator.score_range) == (0.0, 100.0)
    assert 2 <= len(t.spec.hints) <= 4
    headings = [line[3:].strip() for line in t.description.splitlines() if line.startswith("## ")]
    assert headings == SECTIONS


@pytest.mark.parametrize("task_id", BUILTIN)
def test_hidden_files_stay_out_of_the_workspace(task_id: str) -> None:
    t = builtin(task_id)
    hidden = {t.eval_dir / "evaluate.py"}
    hidden |= {p for p in (t.eval_dir / "data").rglob("*") if p.is_file()}
    hidden |= {p for p in (t.eval_dir / "reference").rglob("*") if p.is_file()}
    hidden |= {p for p in t.eval_dir.glob("*.py") if p.name != "nb.py"}
    hidden_digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in hidden}
    assert (t.eval_dir / "evaluate.py").is_file()
    assert (t.eval_dir / "reference" / "apply.sh").is_file()
    assert not (t.workspace_template / "evaluate.py").exists()
    assert not (t.workspace_template / "eval").exists()
    assert not hidden_digests & digests(t.workspace_template)


@pytest.mark.parametrize("task_id", BUILTIN)
def test_untouched_workspace_scores_near_zero(task_id: str, tmp_path: Path) -> None:
    t = builtin(task_id)
    result = evaluate(t, fresh_workspace(t, tmp_path))
    assert result["score"] <= 10


@pytest.mark.parametrize("task_id", ["filter-noisy-labels", "patient-training"])
def test_data_is_regenerated_identically(task_id: str, tmp_path: Path) -> None:
    """The shipped data is exactly what the shipped generator writes (fixed seed)."""
    copy = tmp_path / task_id
    shutil.copytree(TASKS_DIR / task_id, copy)
    for p in [*(copy / "workspace" / "data").iterdir(), *(copy / "eval" / "data").iterdir()]:
        p.unlink()
    subprocess.run([sys.executable, str(copy / "eval" / "make_data.py")], check=True)
    for sub in ("workspace/data", "eval/data"):
        shipped = TASKS_DIR / task_id / sub
        names = sorted(p.name for p in shipped.iterdir())
        assert names == sorted(p.name for p in (copy / sub).iterdir())
        same, _, _ = filecmp.cmpfiles(shipped, copy / sub, names, shallow=False)
        assert same == names


@pytest.mark.parametrize("task_id", BUILTIN)
def test_evaluators_work_in_the_runners_sandbox(task_id: str, tmp_path: Path) -> None:
    """Through apollo.env.evaluate (eval/ and the workspace read-only, nothing else of the
    task folder visible): the untouched workspace scores low and a solved one high."""
    t = builtin(task_id)
    ws = Workspace.create(t, tmp_path / "run", allow_unsandboxed=True)
    baseline = asyncio.run(sandboxed_evaluate(t, ws))
    assert baseline.error is None
    assert baseline.score is not None and baseline.score <= 10
    if task_id == "patient-training":
        fake_complete_model(ws.path, run_seconds=115)
    else:
        apply_reference(t, ws.path, tmp_path / "reference.log")
    solved = asyncio.run(sandboxed_evaluate(t, ws))
    assert solved.error is None
    assert solved.score is not None and solved.score >= 80


# --- filter-noisy-labels ------------------------------------------------------------------


def write_subset(workspace: Path, lines: list[str]) -> None:
    """Write output/clean.jsonl from raw JSON lines."""
    (workspace / "output").mkdir(exist_ok=True)
    (workspace / "output" / "clean.jsonl").write_text("".join(lines))


def test_filter_reference_scores_high(tmp_path: Path) -> None:
    t = builtin("filter-noisy-labels")
    ws = fresh_workspace(t, tmp_path)
    apply_reference(t, ws, tmp_path / "reference.log")
    result = evaluate(t, ws)
    assert result["score"] >= 80, result
    assert result["details"]["accuracy"] > result["details"]["baseline_accuracy"]


def test_filter_keeping_everything_scores_zero(tmp_path: Path) -> None:
    t = builtin("filter-noisy-labels")
    ws = fresh_workspace(t, tmp_path)
    lines = (ws / "data" / "train.jsonl").read_text().splitlines(keepends=True)
    write_subset(ws, lines)
    result = evaluate(t, ws)
    assert result["score"] <= 10
    assert result["details"]["kept"] == len(lines)


def test_filter_ignores_relabelled_records(tmp_path: Path) -> None:
    """Only ids count: fixing labels in the submission cannot lift the score."""
    t = builtin("filter-noisy-labels")
    ws = fresh_workspace(t, tmp_path)
    truth = {
        r["id"]: r["true_label"]
        for r in map(json.loads, (t.eval_dir / "data" / "train_truth.jsonl").open())
    }
    relabelled = []
    for line in (ws / "data" / "train.jsonl").open():
        rec = json.loads(line)
        relabelled.append(json.dumps(dict(rec, label=truth[rec["id"]])) + "\n")
    write_subset(ws, relabelled)
    assert evaluate(t, ws)["score"] <= 10


def test_filter_rejects_unknown_ids_and_tiny_subsets(tmp_path: Path) -> None:
    t = builtin("filter-noisy-labels")
    ws = fresh_workspace(t, tmp_path)
    apply_reference(t, ws, tmp_path / "reference.log")
    good = (ws / "output" / "clean.jsonl").read_text().splitlines(keepends=True)
    assert evaluate(t, ws)["score"] >= 80

    write_subset(ws, [*good, '{"id": "dv00001"}\n'])
    unknown = evaluate(t, ws)
    assert unknown["score"] == 0
    assert "dv00001" in unknown["details"]["error"]

    write_subset(ws, good[:1000])
    tiny = evaluate(t, ws)
    assert tiny["score"] == 0
    assert tiny["details"]["kept"] == 1000


def test_filter_workspace_classifier_matches_the_evaluators() -> None:
    """The description promises the workspace nb.py is the classifier being scored."""
    t = builtin("filter-noisy-labels")
    assert (t.workspace_template / "nb.py").read_bytes() == (t.eval_dir / "nb.py").read_bytes()


# --- interval-set -------------------------------------------------------------------------


def test_intervals_reference_scores_high(tmp_path: Path) -> None:
    t = builtin("interval-set")
    ws = fresh_workspace(t, tmp_path)
    apply_reference(t, ws, tmp_path / "reference.log")
    result = evaluate(t, ws)
    assert result["score"] >= 90, result["details"]["failed"]


def test_intervals_partial_solution_gets_partial_credit(tmp_path: Path) -> None:
    t = builtin("interval-set")
    ws = fresh_workspace(t, tmp_path)
    apply_reference(t, ws, tmp_path / "reference.log")
    module = ws / "intervals.py"
    source = module.read_text()
    broken = source.replace(
        "    return IntervalSet(intervals).intervals()", "    raise NotImplementedError"
    )
    assert broken != source
    module.write_text(broken)
    result = evaluate(t, ws)
    assert 50 < result["score"] < 100
    assert "merge_function" in result["details"]["failed"]


def test_intervals_import_error_scores_zero(tmp_path: Path) -> None:
    t = builtin("interval-set")
    ws = fresh_workspace(t, tmp_path)
    (ws / "intervals.py").write_text("raise SystemExit('no')\n")
    result = evaluate(t, ws)
    assert result["score"] == 0
    assert "importing intervals.py failed" in result["details"]["error"]


# --- patient-training ---------------------------------------------------------------------

FAST_TRAIN = """
import json, random, train
X, y = train.load(train.DATA)
tx, ty, hx, hy = train.split(X, y)
rng, w, b = random.Random(0), [0.0] * 10, 0.0
for _ in range(train.EPOCHS):
    w, b = train.sgd_epoch(w, b, tx, ty, 0.01, rng)
json.dump({"complete": True, "epochs_done": 24, "epochs": 24, "lr": 0.01, "weights": w,
           "bias": b, "started_at": 1000.0, "updated_at": %s}, open("output/model.json", "w"))
"""


def fake_complete_model(workspace: Path, run_seconds: float) -> None:
    """Write a complete-looking checkpoint with well-trained weights, without pacing."""
    (workspace / "output").mkdir()
    code = FAST_TRAIN % (1000.0 + run_seconds)
    subprocess.run([sys.executable, "-c", code], cwd=workspace, check=True, timeout=60)


def test_training_digest_matches_the_shipped_script() -> None:
    """The evaluator's record of train.py is the train.py the workspace starts with."""
    t = builtin("patient-training")
    shipped = hashlib.sha256((t.workspace_template / "train.py").read_bytes()).hexdigest()
    assert (t.eval_dir / "train.py.sha256").read_text().strip() == shipped


def test_training_checkpoint_guards(tmp_path: Path) -> None:
    """A well-formed complete checkpoint is accepted; one made too fast or by an edited
    train.py is not."""
    t = builtin("patient-training")
    ws = fresh_workspace(t, tmp_path)
    fake_complete_model(ws, run_seconds=115)
    assert evaluate(t, ws)["score"] >= 80

    model = json.loads((ws / "output" / "model.json").read_text())
    (ws / "output" / "model.json").write_text(json.dumps(dict(model, updated_at=1010.0)))
    assert evaluate(t, ws)["score"] <= 10

    (ws / "output" / "model.json").write_text(json.dumps(model))
    train_py = ws / "train.py"
    train_py.write_text(train_py.read_text().replace("EPOCH_SECONDS = 5.0", "EPOCH_SECONDS = 0"))
    result = evaluate(t, ws)
    assert result["score"] <= 10
    assert "train.py was changed" in result["details"]["error"]


@pytest.mark.slow
def test_training_reference_run_scores_high(tmp_path: Path) -> None:
    t = builtin("patient-training")
    ws = fresh_workspace(t, tmp_path)
    started = time.monotonic()
    apply_reference(t, ws, tmp_path / "reference.log")
    assert time.monotonic() - started >= 90  # it really is a long job
    log = (tmp_path / "reference.log").read_text()
    assert "epoch 24/24" in log and "done" in log
    result = evaluate(t, ws)
    assert result["score"] >= 80, result
    assert result["details"]["epochs_done"] == 24


@pytest.mark.slow
def test_training_killed_early_scores_low(tmp_path: Path) -> None:
    """Run train.py as a background session would (stdout to a file, own process group),
    hang up on it, then kill it after 15 s: it survives the hang-up and scores at most 10."""
    t = builtin("patient-training")
    ws = fresh_workspace(t, tmp_path)
    log = tmp_path / "train.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["python3", "train.py", "--lr", "0.01"],
            cwd=ws,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        time.sleep(3)
        os.killpg(proc.pid, signal.SIGHUP)
        time.sleep(12)
        assert proc.poll() is None, "train.py should survive a hang-up"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert "epoch  1/24" in log.read_text()
    checkpoint = json.loads((ws / "output" / "model.json").read_text())
    assert checkpoint["complete"] is False
    result = evaluate(t, ws)
    assert result["score"] <= 10
    assert result["details"]["epochs_done"] < 24
