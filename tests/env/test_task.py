"""Task specs: every invalid spec names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from apollo.env.task import (
    TaskSpecError,
    evaluator_script,
    load_task,
    parse_duration,
    resolve_task,
)

GOOD = """\
id: demo-task
title: A demo
budget: {working_time: 20m, steps: 30, submissions: 2}
limits: {memory_mb: 512, command_timeout: 90s}
evaluator: {command: "python3 evaluate.py {workspace}", timeout: 2m}
hints:
  - id: wait-for-it
    trigger: {kind: session_killed_early}
    kind: strategy
    text: Let the job finish.
"""


def make_task(root: Path, spec: str, *, description: bool = True) -> Path:
    (root / "workspace").mkdir(parents=True)
    (root / "eval").mkdir()
    (root / "eval" / "evaluate.py").write_text("print('{\"score\": 1}')\n")
    (root / "task.yaml").write_text(spec)
    if description:
        (root / "description.md").write_text("# Motivation\n...")
    return root


def test_valid_spec_loads_with_durations(tmp_path: Path) -> None:
    task = load_task(make_task(tmp_path / "t", GOOD))
    assert task.id == "demo-task"
    assert task.spec.budget.working_time == 1200
    assert task.spec.limits.command_timeout == 90
    assert task.spec.evaluator.timeout == 120
    assert task.spec.hints[0].trigger.kind == "session_killed_early"
    assert task.description.startswith("# Motivation")


@pytest.mark.parametrize(
    ("spec", "field", "fix"),
    [
        (GOOD.replace("id: demo-task\n", ""), "'id'", "add it"),
        (GOOD.replace("steps: 30", "steps: -3"), "'budget.steps'", "greater than or equal"),
        (GOOD.replace("working_time: 20m", "working_time: soon"), "'budget.working_time'", "20m"),
        (GOOD + "colour: blue\n", "'colour'", "remove it"),
        (
            GOOD.replace("{kind: session_killed_early}", "{kind: no_progress}"),
            "'hints.0.trigger'",
            "needs step, pattern",
        ),
        (GOOD.replace("kind: strategy", "kind: shouting"), "'hints.0.kind'", "'knowledge'"),
        (
            GOOD.replace(
                'evaluator: {command: "python3 evaluate.py {workspace}", timeout: 2m}\n', ""
            ),
            "'evaluator'",
            "add it",
        ),
    ],
)
def test_invalid_spec_names_file_field_and_fix(
    tmp_path: Path, spec: str, field: str, fix: str
) -> None:
    folder = make_task(tmp_path / "t", spec)
    with pytest.raises(TaskSpecError) as err:
        load_task(folder)
    message = str(err.value)
    assert str(folder / "task.yaml") in message
    assert field in message
    assert fix in message


def test_yaml_syntax_error_is_reported(tmp_path: Path) -> None:
    folder = make_task(tmp_path / "t", "id: [unclosed\n")
    with pytest.raises(TaskSpecError, match="not valid YAML"):
        load_task(folder)


def test_missing_description_and_folders(tmp_path: Path) -> None:
    folder = make_task(tmp_path / "t", GOOD, description=False)
    with pytest.raises(TaskSpecError, match=r"field 'description'.*not found"):
        load_task(folder)
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(TaskSpecError, match=r"missing; a task folder needs a task\.yaml"):
        load_task(bare)


EVALUATOR = 'evaluator: {command: "python3 evaluate.py {workspace}", timeout: 2m}'


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("python3 evaluate.py {workspace}", "script 'evaluate.py' not found in"),
        ("python3 -W ignore checks/score.py {workspace}", "script 'checks/score.py' not found"),
        ("bash run.sh {workspace}", "script 'run.sh' not found"),
        ("./score.sh {workspace}", "script './score.sh' not found"),
        ("python3 ../task.yaml", "is outside eval/"),
        ("python3 'evaluate.py", "is not a valid command (No closing quotation)"),
    ],
)
def test_missing_evaluator_script_fails_at_load(tmp_path: Path, command: str, message: str) -> None:
    folder = make_task(
        tmp_path / "t", GOOD.replace(EVALUATOR, f"evaluator: {{command: {command!r}}}")
    )
    (folder / "eval" / "evaluate.py").unlink()
    with pytest.raises(TaskSpecError) as err:
        load_task(folder)
    text = str(err.value)
    assert str(folder / "task.yaml") in text and "field 'evaluator.command'" in text
    assert message in text


def test_evaluator_program_must_be_executable(tmp_path: Path) -> None:
    folder = make_task(tmp_path / "t", GOOD.replace(EVALUATOR, "evaluator: {command: ./score.sh}"))
    script = folder / "eval" / "score.sh"
    script.write_text("#!/bin/sh\necho '{\"score\": 1}'\n")
    with pytest.raises(TaskSpecError, match=r"'./score.sh' is not executable; `chmod \+x` it"):
        load_task(folder)
    script.chmod(0o755)
    assert load_task(folder).spec.evaluator.command == "./score.sh"


@pytest.mark.parametrize(
    ("command", "script"),
    [
        ("python3 evaluate.py {workspace}", ("evaluate.py", False)),
        ("python3 -u -W ignore evaluate.py", ("evaluate.py", False)),
        ("./bin/score --strict", ("./bin/score", True)),
        ("python3 -c 'print(1)'", None),  # nothing on disk to check
        ("python3 -m scorer {workspace}", None),
        ("bash -c 'python3 x.py'", None),
        ("/usr/bin/env python3 x.py", None),
        ("cd sub && python3 x.py", None),
        ("python3 {workspace}/check.py", None),
    ],
)
def test_evaluator_script_is_found_in_the_command(
    command: str, script: tuple[str, bool] | None
) -> None:
    assert evaluator_script(command) == script


def test_resolve_unknown_task_lists_builtins() -> None:
    with pytest.raises(TaskSpecError, match="no such task; use a built-in id"):
        resolve_task("no-such-task")


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h30m", 5400), ("20m", 1200), ("90s", 90), (45, 45), ("2.5m", 150)]
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "-5", 0, True])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)
