"""A damaged apollo.db: every command says which file, what is wrong and what to do, and
leaves the file and the run folders as they were."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from apollo.cli import build_parser, main
from apollo.log.events import Kind, NewEvent
from apollo.log.sqlite import SQLiteStore
from apollo.log.store import StoreCorrupt
from tests.agent.harness import make_task

RUN = "r-damaged"


def _store_with_a_run(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.create_run("t", {}, run_id=RUN)
        for i in range(40):
            store.append(RUN, [NewEvent(Kind.OBSERVATION, {"i": i, "text": "x" * 400})] * 10)
    assert not Path(f"{db}-wal").exists()  # closing checkpointed everything into the file


def garbage(db: Path) -> None:
    db.write_bytes(os.urandom(64 * 1024))


def text_file(db: Path) -> None:
    db.write_text("these are my notes, not a database\n" * 200)


def cut_in_half(db: Path) -> None:
    _store_with_a_run(db)
    os.truncate(db, db.stat().st_size // 2)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "garbage": (garbage, "is not an SQLite database"),
    "text file": (text_file, "is not an SQLite database"),
    "cut in half": (cut_in_half, "database disk image is malformed"),
}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_the_store_refuses_a_damaged_file(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "apollo.db"
    spoil, problem = DAMAGE[damage]
    spoil(db)
    before = db.read_bytes()
    with pytest.raises(StoreCorrupt) as caught:
        SQLiteStore(db)
    message = str(caught.value)
    assert str(db) in message and problem in message
    assert "apollo backup" in message and "aside" in message
    assert db.read_bytes() == before


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_every_command_explains_a_damaged_store(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    run_dir = home / "runs" / RUN / "workspace"
    run_dir.mkdir(parents=True)
    (run_dir / "answer.txt").write_text("42\n")
    (home / "runs" / RUN / "runner.lock").write_text("")
    db = home / "apollo.db"
    spoil, problem = DAMAGE[damage]
    spoil(db)
    before = db.read_bytes()
    runs_before = _tree(home / "runs")
    task = make_task(tmp_path)
    model = ["--model", "http://127.0.0.1:9/v1"]
    evals = tmp_path / "eval"
    spec = tmp_path / "exp.yaml"
    spec.write_text(
        "name: t\nmodel: http://127.0.0.1:9/v1\nbase: embedded:smollm2-135m\n"
        "families: [noise-filter]\ncollect: {n: 1}\nevaluate: {n: 1}\n"
    )
    commands: dict[str, list[str]] = {
        "run": ["run", str(task.path), *model],
        "serve": ["serve", "--port", "0"],
        "demo": ["demo", "--port", "0", *model],
        "resume": ["resume", RUN],
        "runs": ["runs"],
        "reap": ["reap"],
        "show": ["show", RUN],
        "guide": ["guide", RUN, "look at the log"],
        "pause": ["pause", RUN],
        "unpause": ["unpause", RUN],
        "stop": ["stop", RUN],
        "supervise": ["supervise", RUN],
        "label": ["label", RUN, "1", "keep"],
        "export": ["export", "--out", str(tmp_path / "out.jsonl")],
        "annotators": ["annotators", "add", "alice"],
        "backup": ["backup", str(tmp_path / "copy.db")],
        "db": ["db", "migrate"],
        "collect": ["collect", "noise-filter", "--n", "1", *model],
        "eval": ["eval", model[1], "--family", "noise-filter", "--n", "1", "--out", str(evals)],
        "experiment": ["experiment", str(spec)],
    }
    parser = build_parser()
    known = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    # A new command that opens the store belongs in the table above (`tasks`, `endpoints`,
    # `models` and `train` read only the built-in tasks, the home's endpoints file, its model
    # cache and an export file).
    assert known - {"tasks", "endpoints", "models", "train"} == set(commands)
    for name, argv in commands.items():
        code = main([*argv, "--home", str(home)])
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.count("\n") == 1 and err.startswith("apollo: error: the store "), (name, err)
        assert str(db) in err and problem in err and "apollo backup" in err, name
    assert db.read_bytes() == before
    assert _tree(home / "runs") == runs_before
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "out.jsonl").exists()
    assert not evals.exists()
    assert not (home / "experiments").exists()
