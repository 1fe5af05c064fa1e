"""The `apollo` command, run as a separate process like a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from apollo.cli import build_parser
from apollo.env.family import builtin_families
from apollo.env.task import builtin_tasks
from apollo.llm.scripted import ScriptedServer
from tests.agent.harness import act, make_task
from tests.env.conftest import make_family_dir


def apollo(
    *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apollo.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_every_command_has_help(tmp_path: Path) -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "resume", "runs", "guide", "show", "tasks", "demo"} <= set(commands)
    for name in commands:
        done = apollo(name, "--help", home=tmp_path)
        assert done.returncode == 0, name
        assert "--home" in done.stdout, name


def test_tasks_lists_ids_first(tmp_path: Path) -> None:
    done = apollo("tasks", home=tmp_path)
    ids = [line.split("\t")[0] for line in done.stdout.splitlines()]
    assert ids == [t.id for t in builtin_tasks()] + [f.id for f in builtin_families()]
    assert {"filter-noisy-labels", "interval-set", "patient-training"} <= set(ids)
    family_line = done.stdout.splitlines()[ids.index("noise-filter")]
    assert family_line.endswith("family (noise-filter@SEED): train 300, test 200 seeds")


def test_run_an_instance_of_a_family_and_its_config_records_it(tmp_path: Path) -> None:
    from apollo.env.family import load_family
    from apollo.log.sqlite import SQLiteStore
    from apollo.rollout.home import Home

    folder = make_family_dir(tmp_path)
    home = tmp_path / "home"
    made = load_family(folder).materialize(102, Home(home).instances_dir)
    answer = json.loads((made.eval_dir / "truth" / "answer.json").read_text())["answer"]
    script = [
        act("write_file", path="answer.txt", content=f"{answer}\n"),
        act("submit", note="the number"),
        act("finish", summary="done"),
    ]
    with ScriptedServer(script) as server:
        done = apollo("run", f"{folder}@102", "--model", server.base_url, home=home)
    assert done.returncode == 0, done.stderr
    assert " task toy-family@102 " in done.stdout.splitlines()[0]
    run_id = done.stdout.split()[1]
    record = SQLiteStore(home / "apollo.db").get_run(run_id)
    assert record is not None and record.task == "toy-family@102"
    assert (record.config["family"], record.config["split"], record.config["seed"]) == (
        "toy-family",
        "train",
        102,
    )
    assert record.config["task_path"] == str(made.path)
    assert record.last_score == 100


def test_a_family_is_run_one_instance_at_a_time(tmp_path: Path) -> None:
    from apollo.log.sqlite import SQLiteStore

    folder = make_family_dir(tmp_path)
    home = tmp_path / "home"
    done = apollo("run", str(folder), "--queue", home=home)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "task toy-family is a family of instances" in done.stderr
    assert "run an instance of it as toy-family@SEED (seeds: " in done.stderr
    bad = apollo("run", "noise-filter@ten", "--queue", home=home)
    assert bad.returncode == 2 and "whole-number seed" in bad.stderr
    assert SQLiteStore(home / "apollo.db").list_runs() == []


def test_run_show_runs_and_guide_from_another_terminal(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    home = tmp_path / "home"
    script: list[dict[str, Any]] = [
        act("think", thought="start"),
        act("sleep", seconds=60),
        act("finish", summary="guided"),
    ]
    with ScriptedServer(script) as server:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apollo.cli",
                "run",
                str(task.path),
                "--model",
                server.base_url,
                "--home",
                str(home),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("run r")
        run_id = first.split()[1]
        deadline = time.monotonic() + 30
        while len(server.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        guided = apollo("guide", run_id, "The answer is 42.", "--kind", "knowledge", home=home)
        assert guided.returncode == 0, guided.stderr
        assert "queued" in guided.stdout
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        third = server.requests[2].body["messages"][-1]
    assert third == {"role": "user", "content": "<real_user>The answer is 42.</real_user>"}
    # Live progress: one line per action and result, guidance queued then delivered.
    assert "→ think(thought=start)" in rest
    assert "guidance queued from cli [knowledge]" in rest
    assert "delivered at step 3" in rest
    assert f"run {run_id} ended: finished" in rest

    runs = apollo("runs", home=home).stdout.splitlines()
    assert runs[0].split()[:4] == ["id", "task", "status", "step"]
    assert runs[1].split()[:4] == [run_id, "fake-task", "finished", "3"]
    shown = apollo("show", run_id, home=home).stdout
    assert "run started" in shown and "final score" in shown
    # Resuming a finished run changes nothing and says how it ended.
    before = apollo("show", run_id, "--json", home=home).stdout
    again = apollo("resume", run_id, home=home)
    assert again.returncode == 0 and "ended: finished" in again.stdout
    assert apollo("show", run_id, "--json", home=home).stdout == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no-such-task"], "no such task; use a built-in id"),
        (["guide", "r-missing", "hello"], "no run 'r-missing'"),
        (["show", "r-missing"], "no run 'r-missing'"),
        (["resume", "r-missing"], "no run 'r-missing'"),
        (["pause", "r-missing"], "no run 'r-missing'"),
    ],
)
def test_bad_input_gets_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    done = apollo(*args, home=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_empty_guidance_is_refused_and_nothing_written(tmp_path: Path) -> None:
    from apollo.log.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "apollo.db")
    run = store.create_run("t", {})
    done = apollo("guide", run.id, "   ", home=tmp_path)
    assert done.returncode == 2 and "guidance text is empty" in done.stderr
    assert store.events(run.id) == []


def test_without_bubblewrap_a_run_refuses_unless_unsafe(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    bin_dir = tmp_path / "bin"  # a PATH with python and bash but no bwrap
    bin_dir.mkdir()
    for tool in ("python3", "bash", "sh", "cat"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        os.symlink(os.path.realpath(found), bin_dir / tool)
    env = {**os.environ, "PATH": str(bin_dir)}
    home = tmp_path / "home"
    with ScriptedServer([act("run", command="echo hi"), act("finish", summary="x")]) as server:
        refused = apollo("run", str(task.path), "--model", server.base_url, home=home, env=env)
        assert refused.returncode == 2
        assert "bubblewrap" in refused.stderr and "--unsafe-no-sandbox" in refused.stderr
        assert "run r" not in refused.stdout, "a refused run must not be registered"
        allowed = apollo(
            "run",
            str(task.path),
            "--model",
            server.base_url,
            "--unsafe-no-sandbox",
            home=home,
            env=env,
        )
    assert allowed.returncode == 0, allowed.stderr
    assert "← run: hi" in allowed.stdout


def test_run_queue_only_registers_the_run_for_a_server(tmp_path: Path) -> None:
    from apollo.log.sqlite import SQLiteStore

    task = make_task(tmp_path)
    done = apollo("run", str(task.path), "--queue", home=tmp_path)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]
    record = SQLiteStore(tmp_path / "apollo.db").get_run(run_id)
    assert record is not None and record.status == "created"
    assert record.config["queued"] is True and record.config["started_by"] == "cli"


def test_annotators_add_list_revoke(tmp_path: Path) -> None:
    from apollo.log.sqlite import SQLiteStore

    added = apollo("annotators", "add", "carol", "--role", "viewer", home=tmp_path)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().split()[-1]
    store = SQLiteStore(tmp_path / "apollo.db")
    who = store.authenticate(token)
    assert who is not None and (who.name, who.role) == ("carol", "viewer")
    listed = apollo("annotators", "list", home=tmp_path).stdout
    assert "carol\tviewer\tactive" in listed
    assert token not in listed
    # Stored hashed: no column of the table holds the token. (Reading the database file
    # directly would drop SQLite's POSIX locks in this process, so ask SQLite.)
    rows = store._db.execute("SELECT * FROM annotators").fetchall()
    assert all(token not in map(str, tuple(row)) for row in rows)
    assert apollo("annotators", "add", "carol", home=tmp_path).returncode == 2
    assert apollo("annotators", "revoke", "carol", home=tmp_path).returncode == 0
    assert store.authenticate(token) is None
    assert "carol\tviewer\trevoked" in apollo("annotators", "list", home=tmp_path).stdout


def test_runs_shows_sessions_whose_runner_is_gone_and_reap_ends_them(tmp_path: Path) -> None:
    from apollo.env.workspace import Workspace
    from apollo.rollout.home import Home

    task = make_task(tmp_path)
    home = Home(tmp_path / "home")
    run_id = home.open_store().create_run(task.id, {"task_path": str(task.path)}).id
    workspace = Workspace.create(task, home.run_dir(run_id))
    workspace.sessions.start("sleep 100", name="train")
    # The runner that started it is gone: nothing holds the run's lock.
    listed = apollo("runs", home=home.path)
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith(run_id))
    assert row.endswith("1 running, runner gone")
    assert "`apollo reap` ends them" in listed.stdout
    with home.lock_run(run_id):  # a live runner's sessions are not reaped
        held = apollo("reap", run_id, home=home.path)
        assert (
            "a live runner drives it" in held.stdout and workspace.sessions.status("train").running
        )
    reaped = apollo("reap", home=home.path)
    assert reaped.returncode == 0, reaped.stderr
    assert f"run {run_id}: ended session(s) train" in reaped.stdout
    assert not workspace.sessions.status("train").running
    assert "runner gone" not in apollo("runs", home=home.path).stdout
    unknown = apollo("reap", "r-nope", home=home.path)
    assert unknown.returncode != 0 and "no run 'r-nope'" in unknown.stderr


def test_a_flaky_model_run_shows_its_retries_and_their_count(tmp_path: Path) -> None:
    from apollo.log.sqlite import SQLiteStore

    task = make_task(tmp_path)
    home = tmp_path / "home"
    script = [act("think", thought="a"), act("finish", summary="done despite the 500s")]
    with ScriptedServer(script, fault="flaky") as server:
        done = apollo(
            "run",
            str(task.path),
            "--model",
            server.base_url,
            "--first-byte-timeout",
            "30",
            "--retry-window",
            "90",
            home=home,
        )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]
    # Live progress and `apollo show` both say what the model is doing, retry by retry.
    retry_line = re.compile(
        r"model not answering for \d+s: retry 1 \(gives up after 1m30s\) in \d+s · HTTP 500"
    )
    assert len(retry_line.findall(done.stdout)) == 2
    shown = apollo("show", run_id, home=home).stdout
    assert len(retry_line.findall(shown)) == 2
    assert shown.splitlines()[-1].startswith("model retries: 2 (")
    # The limits were stored with the run, so a resume uses them too.
    record = SQLiteStore(home / "apollo.db").get_run(run_id)
    assert record is not None
    assert record.config["options"]["model_limits"] == {"first_byte_s": 30, "retry_window_s": 90}


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--first-byte-timeout", "nan", "--first-byte-timeout: first_byte_s must be a positive"),
        ("--retry-window", "-1", "--retry-window: retry_window_s must be a positive"),
        ("--max-attempts", "0", "--max-attempts: max_attempts must be at least 1"),
    ],
)
def test_impossible_model_limits_are_refused(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    done = apollo("run", "interval-set", flag, value, "--queue", home=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert "queued" not in done.stdout


def test_the_last_admin_cannot_be_revoked(tmp_path: Path) -> None:
    assert apollo("annotators", "add", "root", "--role", "admin", home=tmp_path).returncode == 0
    refused = apollo("annotators", "revoke", "root", home=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("apollo: error: root is the last admin")
    assert "Traceback" not in refused.stderr
    assert "root\tadmin\tactive" in apollo("annotators", "list", home=tmp_path).stdout
    assert apollo("annotators", "add", "deputy", "--role", "admin", home=tmp_path).returncode == 0
    assert apollo("annotators", "revoke", "root", home=tmp_path).returncode == 0


def test_endpoints_add_list_remove(tmp_path: Path) -> None:
    added = apollo(
        "endpoints", "add", "local", "http://127.0.0.1:8000/v1", "--model-name", "qwen",
        "--api-key-env", "QWEN_KEY", home=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = apollo("endpoints", "list", home=tmp_path).stdout
    assert "local\thttp://127.0.0.1:8000/v1\tqwen\tQWEN_KEY" in listed
    bad = apollo("endpoints", "add", "x", "ftp://host/", "--model-name", "m", home=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("apollo: error: endpoint url")
    assert apollo("endpoints", "remove", "local", home=tmp_path).returncode == 0
    gone = apollo("endpoints", "remove", "local", home=tmp_path)
    assert gone.returncode == 2 and "no endpoint named 'local'" in gone.stderr
    assert apollo("endpoints", "list", home=tmp_path).stdout == ""


def test_serve_and_demo_refuse_impossible_limits(tmp_path: Path) -> None:
    for command, *flags in (
        ["serve", "--max-running", "0"],
        ["serve", "--login-failures", "0"],
        ["demo", "--max-running", "0"],
    ):
        done = apollo(command, *flags, home=tmp_path, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"apollo: error: {flags[0]}"), done.stderr
    # The refused demo queued no run (the listing is its header alone).
    assert apollo("runs", home=tmp_path).stdout.splitlines()[1:] == []


def test_an_evaluator_crash_is_its_own_outcome_never_a_score(tmp_path: Path) -> None:
    from apollo.log.events import Kind
    from apollo.log.sqlite import SQLiteStore

    task = make_task(tmp_path)
    (task.eval_dir / "score.py").write_text("raise RuntimeError('the grader broke')\n")
    home = tmp_path / "home"
    script = [act("submit", note="first try"), act("finish", summary="done")]
    with ScriptedServer(script) as server:
        done = apollo("run", str(task.path), "--model", server.base_url, home=home)
        told = server.requests[1].body["messages"][-1]["content"]
    assert done.returncode == 1, done.stderr
    assert told.startswith("The evaluator failed and gave no score")
    assert "RuntimeError: the grader broke" in told
    last = done.stdout.strip().splitlines()[-1]
    assert "ended: finished; the evaluator failed, so there is no final score" in last
    assert "the grader broke" in last
    assert "submission 1: none, the EVALUATOR FAILED: evaluator exited with code 1" in done.stdout
    run_id = done.stdout.split()[1]
    store = SQLiteStore(home / "apollo.db")
    subs = [ev.payload for ev in store.events(run_id, kinds=[Kind.SUBMISSION])]
    assert [(s["final"], s["status"], s["score"]) for s in subs] == [
        (False, "evaluator_error", None),
        (True, "evaluator_error", None),
    ]
    [end] = store.events(run_id, kinds=[Kind.RUN_FINISHED])
    assert end.payload["status"] == "finished"
    assert "the grader broke" in end.payload["evaluator_error"]
    assert "the evaluator failed" in end.payload["reason"]
    record = store.get_run(run_id)
    assert record is not None and record.last_score is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--min-steps", "51"], "min_steps (51) is above the step budget of task fake-task (50)"),
        (["--max-steps", "5", "--min-steps", "6"], "min_steps (6) is above max_steps (5)"),
        (["--min-steps", str(2**70)], "give a min_steps of at most 50"),
        (["--max-steps", "0"], "max_steps is 0; give 1 or more"),
        (["--min-steps", "-1"], "min_steps is -1; give 0 or more"),
    ],
)
def test_impossible_step_settings_are_refused(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    from apollo.log.sqlite import SQLiteStore

    task = make_task(tmp_path)  # a budget of 50 steps
    done = apollo("run", str(task.path), "--queue", *flags, home=tmp_path / "home")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert SQLiteStore(tmp_path / "home" / "apollo.db").list_runs() == []
    # The largest minimum there is: min_steps equal to the steps the run may take.
    ok = apollo(
        "run",
        str(task.path),
        "--queue",
        "--max-steps",
        "5",
        "--min-steps",
        "5",
        home=tmp_path / "home",
    )
    assert ok.returncode == 0, ok.stderr


def _run_at_step(store: Any, steps: int) -> str:
    from apollo.log.events import Kind, NewEvent

    run_id: str = store.create_run("t", {}).id
    store.append(run_id, [NewEvent(Kind.RUN_STARTED, {"task": "t"})])
    for step in range(1, steps + 1):
        store.append_one(run_id, Kind.MODEL_CALL, {"purpose": "act", "output": "x"}, step=step)
    return run_id


@pytest.mark.parametrize("drift", ["4", "0", "-2", str(2**70)])
def test_a_drift_step_the_run_has_not_taken_is_refused(tmp_path: Path, drift: str) -> None:
    from apollo.log.events import Kind
    from apollo.log.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = _run_at_step(store, 3)
    done = apollo("guide", run_id, "you drifted", "--drift-from", drift, home=tmp_path)
    assert done.returncode == 2, done.stdout
    assert f"drift_from_step {drift} is not a step run {run_id} has taken (steps 1 to 3)" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert store.events(run_id, kinds=[Kind.GUIDANCE]) == []
    ok = apollo("guide", run_id, "you drifted", "--drift-from", "3", home=tmp_path)
    assert ok.returncode == 0, ok.stderr
    [ev] = store.events(run_id, kinds=[Kind.GUIDANCE])
    assert ev.payload["drift_from_step"] == 3


BAD_NAMES = ["evil\x1b[2J", "bell\x07", "\u202eadmin", "new\nline", ".dot", "", "a" * 101]


def test_annotator_names_follow_the_apis_rule(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from apollo.log.sqlite import SQLiteStore
    from apollo.server.models import AnnotatorCreate

    for name in BAD_NAMES:
        with pytest.raises(ValidationError):
            AnnotatorCreate(name=name)
        done = apollo("annotators", "add", name, home=tmp_path)
        assert done.returncode == 2, repr(name)
        if name:  # an empty NAME is argparse's own error
            assert "is not allowed: use 1 to 100 letters, digits and . _ @ -" in done.stderr
            assert not {"\x1b", "\x07", "\u202e"} & set(done.stderr), repr(done.stderr)
    for name in ("alice", "bob.smith@example.org", "x-1_2"):
        AnnotatorCreate(name=name)
        assert apollo("annotators", "add", name, home=tmp_path).returncode == 0
    names = {a.name for a in SQLiteStore(tmp_path / "apollo.db").list_annotators()}
    assert names == {"alice", "bob.smith@example.org", "x-1_2"}


def test_terminal_output_escapes_control_and_bidi_characters(tmp_path: Path) -> None:
    """Names made before the rule, agent output and guidance reach the terminal escaped."""
    from apollo.log.sqlite import SQLiteStore

    home = tmp_path / "home"
    store = SQLiteStore(home / "apollo.db")
    store.add_annotator("old\x1b]0;pwned\x07name", "viewer")  # written before the rule held
    listed = apollo("annotators", "list", home=home)
    assert "old\\x1b]0;pwned\\x07name\tviewer\tactive" in listed.stdout

    task = make_task(tmp_path)
    thought = "safe.txt\u202etxt.exe \x1b[31mred\x1b[0m \u2066iso\u2069"
    script = [act("think", thought=thought), act("finish", summary="done \u202e")]
    with ScriptedServer(script) as server:
        done = apollo("run", str(task.path), "--model", server.base_url, home=home)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]
    guided = apollo("runs", home=home)
    for out in (
        done.stdout,
        apollo("show", run_id, home=home).stdout,
        guided.stdout,
        listed.stdout,
    ):
        assert not set(out) & {"\x1b", "\x07", "\u202e", "\u2066", "\u2069"}, out
    shown = apollo("show", run_id, home=home).stdout
    assert "think(thought=safe.txt\\u202etxt.exe \\x1b[31mred\\x1b[0m \\u2066iso\\u2069)" in shown
    assert "done \\u202e" in shown
    raw = apollo("show", run_id, "--json", home=home).stdout  # JSON escapes them itself
    assert "\\u202e" in raw and "\u202e" not in raw


def test_progress_lines_start_with_a_short_run_id_then_the_task(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    home = tmp_path / "home"
    script = [act("think", thought="one"), act("finish", summary="done")]
    ids, outs = [], []
    with ScriptedServer(script * 2) as server:
        for _ in range(2):
            done = apollo("run", str(task.path), "--model", server.base_url, home=home)
            assert done.returncode == 0, done.stderr
            ids.append(done.stdout.split()[1])
            outs.append(done.stdout.splitlines())
    shorts = [run_id.rsplit("-", 1)[1] for run_id in ids]
    assert shorts[0] != shorts[1] and all(len(s) == 6 for s in shorts)
    for short, lines in zip(shorts, outs, strict=True):
        progress = lines[1:-1]  # between the header and the end line
        assert len(progress) >= 4
        assert all(line.startswith(f"{short} fake-task  ") for line in progress), progress


def test_a_reader_that_went_away_is_no_traceback(tmp_path: Path) -> None:
    """`apollo tasks | head -1`: the pipe closes before apollo writes. Buffered, the write
    fails when apollo flushes at the end; unbuffered, inside the command's first print."""
    for unbuffered in ("", "1"):
        read, write = os.pipe()
        os.close(read)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "apollo.cli", "tasks", "--home", str(tmp_path)],
                stdout=write,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
                check=False,
            )
        finally:
            os.close(write)
        assert done.returncode == 141, done.stderr
        assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


@pytest.mark.postgres
def test_a_run_in_a_postgresql_store(tmp_path: Path, postgres_url: str) -> None:
    """`--store URL` puts the run, its events and its guidance in PostgreSQL, for every
    command; the home keeps only the run's folder."""
    from apollo.log.postgres import PostgresStore

    task = make_task(tmp_path)
    home = tmp_path / "home"
    script = [act("think", thought="in postgres"), act("finish", summary="done")]
    with ScriptedServer(script) as server:
        done = apollo(
            "run", str(task.path), "--model", server.base_url, "--store", postgres_url, home=home
        )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]
    with PostgresStore(postgres_url) as store:
        record = store.get_run(run_id)
        assert record is not None and record.status == "finished"
        assert [e.kind for e in store.events(run_id)][-1] == "run_finished"
    assert not (home / "apollo.db").exists()
    env = {**os.environ, "APOLLO_STORE": postgres_url}  # the variable names it as well
    listed = apollo("runs", home=home, env=env).stdout.splitlines()
    assert listed[1].split()[:3] == [run_id, "fake-task", "finished"]
    shown = apollo("show", run_id, "--store", postgres_url, home=home).stdout
    assert "think" in shown and "run finished" in shown
    refused = apollo("backup", str(tmp_path / "b.db"), "--store", postgres_url, home=home)
    assert refused.returncode == 2 and "for PostgreSQL use pg_dump" in refused.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x/y", "not a store Apollo knows; give sqlite:///ABSOLUTE/PATH.db"),
        ("sqlite://", "names no absolute file path"),
        ("sqlite://apollo.db", "names no absolute file path"),
        ("postgresql://apollo@/nodb?host=/nonexistent", "cannot use the PostgreSQL store"),
    ],
)
def test_a_bad_store_url_is_a_clear_error(tmp_path: Path, url: str, message: str) -> None:
    done = apollo("runs", "--store", url, home=tmp_path)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr
