"""The sandbox, with real bubblewrap: what the agent's commands can see, reach and use."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apollo.env.sandbox import Sandbox, SandboxUnavailable, _pids_parent
from apollo.env.task import Limits, load_task
from apollo.env.workspace import Workspace
from tests.env.conftest import kill_leftover_sessions, make_task_dir

pytestmark = pytest.mark.anyio


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(1.0)
    yield sock
    sock.close()


def _connect(port: int) -> str:
    return (
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', "
        f"{port}), timeout=3); print('connected')\""
    )


async def test_writes_outside_the_workspace_fail(workspace: Workspace) -> None:
    marker = f"apollo-test-{os.getpid()}-{time.time_ns()}"
    for target in (f"/usr/{marker}", f"/etc/{marker}", f"/{marker}"):
        done = await workspace.sandbox.run(f"echo x > {target}", timeout=10)
        assert done.exit_code != 0, target
        assert not Path(target).exists()
    # /tmp is writable but private to the command: nothing lands in the host's /tmp.
    done = await workspace.sandbox.run(f"echo x > /tmp/{marker} && cat /tmp/{marker}", timeout=10)
    assert done.exit_code == 0
    assert not Path("/tmp", marker).exists()
    done = await workspace.sandbox.run("echo made > out.txt && pwd", timeout=10)
    assert done.output.strip() == "/workspace"
    assert (workspace.path / "out.txt").read_text() == "made\n"


async def test_hidden_paths_are_invisible(workspace: Workspace) -> None:
    eval_dir = workspace.task.eval_dir
    for path in (eval_dir, eval_dir / "secret.txt", workspace.run_dir / "sessions", Path.cwd()):
        assert path.exists()
        done = await workspace.sandbox.run(f"ls {path} || cat {path}", timeout=10)
        assert done.exit_code != 0, path
        assert "hidden answer" not in done.output


async def test_host_environment_does_not_leak(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APOLLO_TEST_SECRET", "sk-do-not-leak")
    done = await workspace.sandbox.run("env", timeout=10)
    assert "sk-do-not-leak" not in done.output
    assert "HOME=/workspace" in done.output


async def test_network_is_cut_unless_the_task_allows_it(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    closed = Workspace.create(load_task(make_task_dir(tmp_path / "a")), tmp_path / "run-a")
    done = await closed.sandbox.run(_connect(port), timeout=10)
    assert done.exit_code != 0
    assert "connected" not in done.output
    with pytest.raises(TimeoutError):
        listener.accept()

    task = load_task(make_task_dir(tmp_path / "b", network=True))
    opened = Workspace.create(task, tmp_path / "run-b")
    done = await opened.sandbox.run(_connect(port), timeout=10)
    assert done.exit_code == 0, done.output
    assert "connected" in done.output
    listener.accept()[0].close()


async def test_memory_limit_stops_a_big_allocation(workspace: Workspace) -> None:
    # The fake task allows 512 MB; this asks for 1 GB.
    done = await workspace.sandbox.run("python3 -c 'b = bytearray(1 << 30)'", timeout=20)
    assert done.exit_code != 0
    assert "MemoryError" in done.output


FORK_MANY = """python3 -c '
import subprocess
children = []
try:
    for _ in range(200):
        children.append(subprocess.Popen(["sleep", "30"]))
except OSError as exc:
    print("refused:", exc)
print("started", len(children))
'"""


async def test_process_limit_stops_a_fork_storm(tmp_path: Path) -> None:
    task = load_task(make_task_dir(tmp_path, limits={"processes": 32}))
    ws = Workspace.create(task, tmp_path / "run")
    done = await ws.sandbox.run(FORK_MANY, timeout=20)
    assert "refused:" in done.output
    started = int(done.output.split("started")[1])
    # As root RLIMIT_NPROC is not enforced: this holds through the command's pids cgroup.
    assert started < 32, f"no pids cgroup here ({_pids_parent()=}) and running as root"


TICKER = "while true; do date +%s%N > tick; sleep 0.05; done"


async def _assert_group_killed(sandbox: Sandbox, workspace: Path, command: str) -> None:
    started = time.monotonic()
    done = await sandbox.run(command, timeout=1)
    assert done.timed_out and done.exit_code is None
    assert time.monotonic() - started < 4
    first = (workspace / "tick").read_text()
    time.sleep(0.4)
    assert (workspace / "tick").read_text() == first, "a background child kept running"


async def test_timeout_kills_the_process_group(workspace: Workspace) -> None:
    await _assert_group_killed(workspace.sandbox, workspace.path, f"({TICKER}) & sleep 60")


async def test_missing_bwrap_is_refused_with_the_fix(tmp_path: Path) -> None:
    limits = Limits()
    with pytest.raises(SandboxUnavailable) as err:
        Sandbox.create(tmp_path, limits, network=False, bwrap=str(tmp_path / "no-bwrap"))
    assert "apt-get install bubblewrap" in str(err.value)
    assert "--unsafe-no-sandbox" in str(err.value)
    with pytest.raises(SandboxUnavailable, match="does not work here"):
        Sandbox.create(tmp_path, limits, network=False, bwrap="/bin/false")


async def test_workspace_refuses_without_bwrap_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = load_task(make_task_dir(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        Workspace.create(task, tmp_path / "run")
    assert not (tmp_path / "run" / "workspace").exists()
    ws = Workspace.create(task, tmp_path / "run", allow_unsandboxed=True)
    assert not ws.sandbox.sandboxed
    done = await ws.sandbox.run("pwd; cat src/main.py", timeout=10)
    assert done.output.splitlines()[0] == str(ws.path)
    assert "def main" in done.output
    kill_leftover_sessions(ws)


async def test_unsandboxed_runs_keep_limits_and_timeouts(tmp_path: Path) -> None:
    task = load_task(make_task_dir(tmp_path))
    (tmp_path / "run" / "workspace").mkdir(parents=True)
    sandbox = Sandbox(tmp_path / "run" / "workspace", task.spec.limits, network=False, bwrap=None)
    done = await sandbox.run("python3 -c 'b = bytearray(1 << 30)'", timeout=20)
    assert "MemoryError" in done.output
    # Without a PID namespace, a child that leaves the process group is caught by the cgroup.
    escape = f"setsid sh -c '{TICKER}' & ({TICKER.replace('tick', 'tock')}) & sleep 60"
    await _assert_group_killed(sandbox, sandbox.workspace, escape)
