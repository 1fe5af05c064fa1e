"""Sessions: long commands that outlive their SessionManager and the runner process."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apollo.env.sessions import SessionError, SessionManager
from apollo.env.workspace import Workspace

pytestmark = pytest.mark.anyio

COUNTER = "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.01; done"


def _read_until(manager: SessionManager, sid: str, needle: str, timeout: float = 10) -> str:
    text = ""
    deadline = time.monotonic() + timeout
    while needle not in text:
        assert time.monotonic() < deadline, f"no {needle!r} in {text[-300:]!r}"
        text += manager.read(sid).text
        time.sleep(0.02)
    return text


def _assert_consecutive(text: str) -> int:
    """The counter's lines are line-0, line-1, ... with no gap and no repeat; returns count."""
    numbers = [int(line.removeprefix("line-")) for line in text.splitlines()]
    assert numbers == list(range(len(numbers)))
    return len(numbers)


async def test_input_reaches_a_cat_and_kill_is_recorded(workspace: Workspace) -> None:
    sessions = workspace.sessions
    status = sessions.start("cat", name="echoer")
    assert status.id == "echoer" and status.running
    await sessions.send("echoer", "hello\n")
    await sessions.send("echoer", "again\n")
    assert _read_until(sessions, "echoer", "again\n") == "hello\nagain\n"
    assert sessions.read("echoer").text == ""  # nothing is shown twice
    time.sleep(0.2)
    report = await sessions.kill("echoer")
    assert report.was_running and report.runtime_s >= 0.2
    status = sessions.status("echoer")
    assert not status.running and status.killed
    assert "killed after" in status.describe()
    meta = json.loads((workspace.run_dir / "sessions" / "echoer" / "meta.json").read_text())
    assert meta["killed_while_running"] is True
    with pytest.raises(SessionError, match="not running"):
        await sessions.send("echoer", "late\n")
    # Killing it again reports that it was no longer running.
    assert not (await sessions.kill("echoer")).was_running


async def test_exit_code_and_runtime_of_a_finished_session(workspace: Workspace) -> None:
    sessions = workspace.sessions
    sid = sessions.start("echo done; sleep 0.3; exit 3").id
    assert sid == "s1"
    deadline = time.monotonic() + 10
    while sessions.status(sid).running:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = sessions.status(sid)
    assert status.exit_code == 3 and not status.killed
    assert 0.3 <= status.runtime_s < 5
    assert sessions.read(sid).text == "done\n"
    report = await sessions.kill(sid)
    assert not report.was_running and report.exit_code == 3
    assert sessions.reattach() == []


def test_ids_names_and_unknown_sessions(workspace: Workspace) -> None:
    sessions = workspace.sessions
    assert [sessions.start("true").id, sessions.start("true").id] == ["s1", "s2"]
    assert sessions.start("true", name="job").id == "job"
    assert sessions.start("true", name="job-2").id == "job-2"
    # A taken name is refused with a free one to use instead.
    with pytest.raises(SessionError) as taken:
        sessions.start("true", name="job")
    assert str(taken.value) == (
        "a session named 'job' already exists (read its output with session_output(id='job')); "
        "to start another, name it 'job-3' or give no name"
    )
    assert sessions.start("true", name="job-3").id == "job-3"
    with pytest.raises(SessionError, match="name it 'job-4'"):
        sessions.start("true", name="job-2")
    long = "x" * 40
    assert sessions.start("true", name=long).id == long
    with pytest.raises(SessionError, match=f"name it '{'x' * 38}-2'"):
        sessions.start("true", name=long)
    with pytest.raises(SessionError, match="bad session name"):
        sessions.start("true", name="../escape")
    with pytest.raises(SessionError, match="known sessions: s1, s2"):
        sessions.status("nope")


def test_session_survives_its_manager_and_is_reattached(workspace: Workspace) -> None:
    sid = workspace.sessions.start(COUNTER).id
    first = _read_until(workspace.sessions, sid, "line-20\n")
    # Replacing the manager drops the old one, and with it the handle on the child process.
    workspace.sessions = SessionManager(workspace.run_dir / "sessions", workspace.sandbox)
    gc.collect()
    fresh = workspace.sessions
    assert fresh.reattach() == [sid]
    second = _read_until(fresh, sid, "line-60\n")
    _assert_consecutive(first + second)


def test_split_utf8_character_is_not_garbled(workspace: Workspace) -> None:
    sessions = workspace.sessions
    sid = sessions.start(r"printf 'caf\xc3'; sleep 1; printf '\xa9\n'").id
    assert _read_until(sessions, sid, "caf") == "caf"
    time.sleep(0.2)
    assert sessions.read(sid).text == ""  # the half character waits for its other half
    assert _read_until(sessions, sid, "\n") == "é\n"


CHILD = """
import sys, time
from pathlib import Path
from apollo.env.task import load_task
from apollo.env.workspace import Workspace

task = load_task(sys.argv[1])
ws = Workspace.open(task, Path(sys.argv[2]))
sid = ws.sessions.start(sys.argv[3], name="counter").id
seen = ""
while "line-30\\n" not in seen:
    seen += ws.sessions.read(sid).text
    time.sleep(0.02)
Path(sys.argv[4]).write_text(seen)
print("READY", flush=True)
time.sleep(600)
"""


async def test_session_outlives_a_killed_runner_process(
    workspace: Workspace, tmp_path: Path
) -> None:
    """A runner process starts a session and reads part of its output, then dies by SIGKILL;
    this process reattaches and reads on without losing or repeating a line."""
    seen_file = tmp_path / "seen.txt"
    runner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(workspace.task.path),
            str(workspace.run_dir),
            COUNTER,
            str(seen_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert runner.stdout is not None
        assert runner.stdout.readline().strip() == "READY"
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
    fresh = SessionManager(workspace.run_dir / "sessions", workspace.sandbox)
    assert fresh.reattach() == ["counter"]
    rest = _read_until(fresh, "counter", "line-120\n")
    report = await fresh.kill("counter")
    assert report.was_running and report.runtime_s > 0.5
    rest += fresh.read("counter").text
    assert _assert_consecutive(seen_file.read_text() + rest) > 120


KILLED_MID_START = """
import os, sys
from pathlib import Path
from apollo.env import sessions
from apollo.env.sandbox import Sandbox
from apollo.env.task import load_task
from apollo.env.workspace import Workspace

task = load_task(sys.argv[1])
ws = Workspace.open(task, Path(sys.argv[2]))
if sys.argv[3] == "after-spawn":
    save = sessions.SessionManager._save

    def die_before_recording_the_pid(self, rec):
        if rec.pid is not None:
            os._exit(9)  # as if killed between the spawn and the record
        save(self, rec)

    sessions.SessionManager._save = die_before_recording_the_pid
else:
    Sandbox.spawn_detached = lambda *a, **k: os._exit(9)  # killed just before the spawn
ws.sessions.start("echo started; sleep 100", name="job")
"""


def _run_killed_mid_start(workspace: Workspace, when: str) -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_MID_START,
            str(workspace.task.path),
            str(workspace.run_dir),
            when,
        ],
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert child.returncode == 9


def test_a_runner_killed_between_spawn_and_record_leaves_a_session_that_is_adopted(
    workspace: Workspace,
) -> None:
    _run_killed_mid_start(workspace, "after-spawn")
    meta = json.loads((workspace.run_dir / "sessions" / "job" / "meta.json").read_text())
    assert meta["pid"] is None  # the intent was recorded, the pid never was
    fresh = SessionManager(workspace.run_dir / "sessions", workspace.sandbox)
    assert fresh.reattach() == ["job"]
    assert fresh.status("job").running
    assert _read_until(fresh, "job", "started\n") == "started\n"
    asyncio.run(fresh.kill("job"))
    assert not fresh.status("job").running
    pid = json.loads((workspace.run_dir / "sessions" / "job" / "meta.json").read_text())["pid"]
    _wait_gone(pid)


def test_a_runner_killed_before_the_spawn_leaves_nothing_and_frees_the_name(
    workspace: Workspace,
) -> None:
    _run_killed_mid_start(workspace, "before-spawn")
    assert (workspace.run_dir / "sessions" / "job" / "meta.json").is_file()
    fresh = SessionManager(workspace.run_dir / "sessions", workspace.sandbox)
    assert fresh.reattach() == []
    assert not (workspace.run_dir / "sessions" / "job").exists()
    assert fresh.start("echo again", name="job").id == "job"


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            return True
    return False


def _wait_gone(pgid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        assert time.monotonic() < deadline, f"process group {pgid} still running"
        time.sleep(0.05)


def test_a_session_ends_when_its_run_folder_is_gone(workspace: Workspace, tmp_path: Path) -> None:
    run_dir = tmp_path / "gone-run"
    manager = SessionManager(run_dir / "sessions", workspace.sandbox, watch_interval_s=0.1)
    manager.start("sleep 100", name="orphan")
    pid = json.loads((run_dir / "sessions" / "orphan" / "meta.json").read_text())["pid"]
    assert _group_alive(pid)
    shutil.rmtree(run_dir)  # a deleted home: nobody could ever resume or kill it
    _wait_gone(pid)


def test_a_session_past_its_runs_deadline_is_ended_and_says_why(workspace: Workspace) -> None:
    manager = SessionManager(workspace.run_dir / "sessions", workspace.sandbox, 0.1)
    manager.start("sleep 100", name="late")
    manager.set_deadline(time.time() + 3600)
    assert manager.status("late").running
    manager.set_deadline(time.time() - 1)  # the run's working time (plus grace) is over
    deadline = time.monotonic() + 20
    while manager.status("late").running:
        assert time.monotonic() < deadline, "the session outlived its deadline"
        time.sleep(0.05)
    status = manager.status("late")
    assert status.reaped == "its run's working time ran out"
    assert "working time ran out" in status.describe()
