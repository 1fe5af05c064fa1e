"""Run commands under bubblewrap with resource limits, or directly when explicitly allowed.

The sandbox sees an allow-list of the host: /usr, /etc and the Python installation read-only,
the bind mounts of a `Layout` (the workspace read-write at /workspace for the agent), a private
/tmp, /dev and /proc, and no network unless the task allows it. Every command starts through a
small bash launcher that puts it in its own pids cgroup (when the host lets us) and sets
rlimits, so the limits hold in the unsandboxed fallback too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from apollo.env.task import Limits

# Largest file a command may write (RLIMIT_FSIZE); generous enough for checkpoints and data.
MAX_FILE_BYTES = 16 << 30
# argv[0] of every launcher: how a session's processes are found when nothing else records them.
LAUNCHER_NAME = "apollo-launcher"
# Bytes of output kept from each end of a stream; the middle of a huge output is only counted.
KEEP_BYTES = 1 << 20
# Empty command cgroups older than this are left-overs of a crashed runner; swept this often.
_SWEEP_EVERY_S = 60.0
_last_sweep = 0.0
# How long to keep reading a finished command's pipes, for stragglers that still hold them.
_PIPE_GRACE_S = 2.0

# Runs as: bash -c LAUNCHER launcher CGROUP SESSION_DIR MEM_KB PROCS FSIZE_KB CPU_S TICK argv...
# It joins the pids cgroup before anything forks, sets the rlimits for itself and every
# descendant, then either becomes the command (bounded runs, no SESSION_DIR) or, for a session,
# runs it and records the exit code from outside the sandbox, where the agent cannot tamper
# with it. A session also gets a watchdog that outlives the runner but not its purpose: every
# TICK seconds it ends the session (its cgroup and process group) once the session's folder is
# gone or the wall-clock deadline in SESSION_DIR/deadline has passed, and says why in
# SESSION_DIR/reaped. The watchdog waits with `read -t` on its own FIFO, so it forks nothing.
_LAUNCHER = r"""
cg=$1 dir=$2 mem=$3 procs=$4 fsize=$5 cpu=$6 tick=$7
shift 7
[ -z "$cg" ] || echo $$ > "$cg/cgroup.procs" 2>/dev/null
ulimit -v "$mem" -u "$procs" -f "$fsize" || exit 126
[ -z "$cpu" ] || ulimit -t "$cpu" || exit 126
[ -n "$dir" ] || exec "$@"
reap() {
  echo "$1" 2>/dev/null > "$dir/reaped"
  [ -z "$cg" ] || echo 1 2>/dev/null > "$cg/cgroup.kill"
  kill -KILL 0
}
(
  exec 3<>"$dir/tick"
  while ! read -rt "$tick" -u 3 _; do
    [ -d "$dir" ] || reap "its run's folder is gone"
    deadline=
    read -r deadline 2>/dev/null < "$dir/deadline"
    if [ -n "$deadline" ]; then
      [ "$(printf '%(%s)T' -1)" -lt "${deadline%.*}" ] || reap "its run's working time ran out"
    fi
  done
) </dev/null >/dev/null 2>&1 &
watchdog=$!
disown "$watchdog"  # no "Killed" notice in the session's output when it is stopped below
"$@"
code=$?
kill -KILL "$watchdog" 2>/dev/null
echo "$code" > "$dir/exit.tmp" && mv "$dir/exit.tmp" "$dir/exit"
"""


class SandboxUnavailable(RuntimeError):
    """Bubblewrap is missing or broken and the user did not allow unsandboxed runs."""


@dataclass(frozen=True, slots=True)
class Bind:
    """A host path made visible inside the sandbox at `inside`."""

    host: Path
    inside: str
    writable: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """What a sandboxed command sees: its bind mounts and its working directory (also HOME)."""

    binds: tuple[Bind, ...]
    workdir: Bind


@dataclass(slots=True)
class CommandResult:
    """A finished bounded command. `exit_code` is None when the timeout killed it."""

    output: str  # stdout, plus stderr when merged
    stderr: str
    exit_code: int | None
    timed_out: bool
    duration_s: float


class _Collector:
    """Keeps the first and last KEEP_BYTES of a stream and counts what falls in between."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = KEEP_BYTES - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > KEEP_BYTES:
            del self.tail[: len(self.tail) - KEEP_BYTES]

    def text(self) -> str:
        omitted = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {omitted} bytes of output not kept ...]\n".encode() if omitted else b""
        return bytes(self.head + middle + self.tail).decode("utf-8", errors="replace")


async def _drain(pipe: BinaryIO, sink: _Collector) -> None:
    """Read a pipe into `sink` until every writer has closed it."""
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), pipe
    )
    try:
        while chunk := await reader.read(65536):
            sink.feed(chunk)
    finally:
        transport.close()


async def _execute(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    cgroup: Path | None,
    merge_stderr: bool,
) -> CommandResult:
    """Run argv in a new process group, kill the group at the timeout, then collect output."""
    out, err = _Collector(), _Collector()
    # Our own pipes rather than asyncio's: in Python 3.11 Process.wait() also waits for the
    # pipes to close, which a leftover grandchild could delay forever.
    pipes = [(*os.pipe(), out)] + ([] if merge_stderr else [(*os.pipe(), err)])
    readers: list[asyncio.Future[None]] = []
    proc: asyncio.subprocess.Process | None = None
    timed_out = False
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(r, "rb", buffering=0)) for r, _w, _ in pipes]
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=pipes[0][1],
                    stderr=pipes[1][1] if len(pipes) > 1 else subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                for _r, w, _ in pipes:
                    os.close(w)
            readers = [
                asyncio.ensure_future(_drain(f, sink))
                for f, (_r, _w, sink) in zip(files, pipes, strict=True)
            ]
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                timed_out = True
                kill_group(proc.pid)
                await proc.wait()
        finally:
            if proc is not None and proc.returncode is None:  # cancelled: leave nothing behind
                kill_group(proc.pid)
            if cgroup is not None:
                await release_cgroup(cgroup)
            if readers:
                _done, pending = await asyncio.wait(readers, timeout=_PIPE_GRACE_S)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
    return CommandResult(
        output=out.text(),
        stderr=err.text(),
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
    )


# --- pids cgroups: as root RLIMIT_NPROC is not enforced, a cgroup's pids.max is ----------


@functools.cache
def _pids_parent() -> Path | None:
    """The cgroup under which each command gets its own pids-limited child, if writable."""
    candidates = ((Path("/sys/fs/cgroup/pids"), False), (Path("/sys/fs/cgroup"), True))
    for root, unified in candidates:
        try:
            if unified:
                controllers = (root / "cgroup.controllers").read_text().split()
                if "pids" not in controllers:
                    continue
                (root / "cgroup.subtree_control").write_text("+pids")
            elif not (root / "cgroup.procs").is_file():
                continue
            parent = root / "apollo"
            parent.mkdir(exist_ok=True)
            if unified:
                (parent / "cgroup.subtree_control").write_text("+pids")
            probe = parent / f"probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            probe.mkdir()
            usable = (probe / "pids.max").is_file()
            probe.rmdir()
        except OSError:
            continue
        if usable:
            return parent
    return None


def _sweep_stale(parent: Path) -> None:
    """Remove empty command cgroups left by runners that died before cleaning up. Only old
    ones: a fresh empty cgroup may be about to receive its command."""
    global _last_sweep
    now = time.time()
    if now - _last_sweep < _SWEEP_EVERY_S:
        return
    _last_sweep = now
    for child in parent.iterdir():
        # rmdir of a cgroup fails (EBUSY) while it still has processes, so live ones stay.
        with contextlib.suppress(OSError):
            if child.is_dir() and now - child.stat().st_mtime > _SWEEP_EVERY_S:
                child.rmdir()


def new_pids_cgroup(max_pids: int) -> Path | None:
    """A fresh cgroup limited to `max_pids` tasks, or None when cgroups are not usable here."""
    parent = _pids_parent()
    if parent is None:
        return None
    _sweep_stale(parent)
    path = parent / uuid.uuid4().hex[:16]
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(max_pids))
    except OSError:
        with contextlib.suppress(OSError):
            path.rmdir()
        return None
    return path


def _cgroup_pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def try_remove_cgroup(path: Path) -> bool:
    """Kill what is left in the cgroup and remove it; False if it is still busy."""
    for pid in _cgroup_pids(path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


async def release_cgroup(path: Path, timeout: float = 3.0) -> None:
    """Kill every process in the cgroup and remove it, waiting briefly for them to exit."""
    deadline = time.monotonic() + timeout
    while not try_remove_cgroup(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def kill_group(pgid: int) -> None:
    """SIGKILL a whole process group (the command, its children and, under bwrap, its PID
    namespace, which dies with its init)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# --- bubblewrap --------------------------------------------------------------------------


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        args += ["--symlink", f"usr/{name}", f"/{name}"]
    args += ["--ro-bind", "/etc", "/etc"]
    # A Python installed outside /usr (pyenv, conda) must be visible for `python3` to work.
    base = Path(sys.base_prefix).resolve()
    if not base.is_relative_to("/usr"):
        args += ["--ro-bind", str(base), str(base)]
    return args


def _env(home: str) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.base_prefix).resolve() / 'bin'}:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "TERM": "dumb",
        # Sessions stream into a file; unbuffered Python shows progress as it happens.
        "PYTHONUNBUFFERED": "1",
    }


@functools.cache
def _probe(bwrap: str) -> str | None:
    """None when bwrap can build our layout here, else what went wrong."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [bwrap, *_system_binds(), "--bind", tmp, "/workspace", "--unshare-all"]
        argv += ["--die-with-parent", "--proc", "/proc", "--dev", "/dev", "true"]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
    return None


class Sandbox:
    """Runs commands for one workspace under the task's limits."""

    def __init__(self, workspace: Path, limits: Limits, *, network: bool, bwrap: str | None):
        """Use `create`; `bwrap=None` means commands run unsandboxed (explicitly allowed)."""
        self.workspace = workspace
        self.limits = limits
        self.network = network
        self.bwrap = bwrap

    @classmethod
    def create(
        cls,
        workspace: Path,
        limits: Limits,
        *,
        network: bool,
        allow_unsandboxed: bool = False,
        bwrap: str | None = None,
    ) -> Sandbox:
        """A sandbox for `workspace`; raises SandboxUnavailable if bubblewrap is missing or
        broken and unsandboxed runs are not allowed. `bwrap` overrides the PATH lookup."""
        path = bwrap or shutil.which("bwrap")
        problem = "bubblewrap (bwrap) is not installed"
        if path is not None and os.access(path, os.X_OK):
            failure = _probe(path)
            if failure is None:
                return cls(workspace, limits, network=network, bwrap=path)
            problem = f"bubblewrap at {path} does not work here: {failure}"
        elif path is not None:
            problem = f"bubblewrap not found at {path}"
        if allow_unsandboxed:
            return cls(workspace, limits, network=network, bwrap=None)
        raise SandboxUnavailable(
            f"{problem}. Agent commands must run in a sandbox: install bubblewrap "
            "(apt-get install bubblewrap) or pass --unsafe-no-sandbox to run them directly "
            "on this machine."
        )

    @property
    def sandboxed(self) -> bool:
        """False when commands run directly on the host (--unsafe-no-sandbox)."""
        return self.bwrap is not None

    @property
    def agent_layout(self) -> Layout:
        """The agent's view: its workspace, writable, at /workspace."""
        ws = Bind(self.workspace, "/workspace", writable=True)
        return Layout(binds=(ws,), workdir=ws)

    def _inner_argv(
        self, command: str, layout: Layout, *, network: bool, die_with_parent: bool
    ) -> tuple[list[str], Path, dict[str, str]]:
        """argv, host cwd and environment of `bash -c command` in the layout."""
        if self.bwrap is None:
            host_home = str(layout.workdir.host)
            env = {**_env(host_home), "TMPDIR": tempfile.gettempdir()}
            return ["/bin/bash", "-c", command], layout.workdir.host, env
        argv = [self.bwrap, *_system_binds(), "--dev", "/dev", "--proc", "/proc"]
        argv += ["--tmpfs", "/tmp", "--unshare-all", "--hostname", "apollo"]
        if network:
            argv.append("--share-net")
        if die_with_parent:
            argv.append("--die-with-parent")
        for b in layout.binds:
            argv += ["--bind" if b.writable else "--ro-bind", str(b.host), b.inside]
        # Only the binds and /tmp stay writable; the sandbox's own root becomes read-only.
        argv += ["--remount-ro", "/"]
        argv += ["--clearenv", "--chdir", layout.workdir.inside]
        for key, value in _env(layout.workdir.inside).items():
            argv += ["--setenv", key, value]
        argv += ["/bin/bash", "-c", command]
        # The launcher itself runs on the host and only needs the system tools.
        return argv, layout.workdir.host, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

    def _launch_argv(
        self,
        inner: list[str],
        *,
        cgroup: Path | None,
        session_dir: Path | None,
        cpu_s: int | None,
        tick_s: float = 0,
    ) -> list[str]:
        return [
            "/bin/bash",
            "-c",
            _LAUNCHER,
            LAUNCHER_NAME,
            str(cgroup or ""),
            str(session_dir or ""),
            str(self.limits.memory_mb * 1024),
            str(self.limits.processes),
            str(MAX_FILE_BYTES // 1024),
            str(cpu_s or ""),
            f"{tick_s:g}",
            *inner,
        ]

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        layout: Layout | None = None,
        merge_stderr: bool = True,
        network: bool | None = None,
    ) -> CommandResult:
        """Run `bash -c command` to completion or until `timeout` seconds, then kill its
        whole process group. Defaults: the agent's layout and the task's network setting."""
        inner, cwd, env = self._inner_argv(
            command,
            layout or self.agent_layout,
            network=self.network if network is None else network,
            # A bounded command must not outlive the runner that waits for it.
            die_with_parent=True,
        )
        cgroup = new_pids_cgroup(self.limits.processes)
        # RLIMIT_CPU backs up the wall clock when no runner is left to enforce it (unsandboxed
        # runs have no --die-with-parent); scaled by cores so threaded code is not cut short.
        cpu_s = int(timeout * (os.cpu_count() or 1)) + 1
        argv = self._launch_argv(inner, cgroup=cgroup, session_dir=None, cpu_s=cpu_s)
        return await _execute(argv, cwd, env, timeout, cgroup, merge_stderr)

    def session_cgroup(self) -> Path | None:
        """A fresh pids cgroup for a session (None where cgroups are not usable here)."""
        return new_pids_cgroup(self.limits.processes)

    def spawn_detached(
        self,
        command: str,
        *,
        stdin: int,
        output: int,
        session_dir: Path,
        cgroup: Path | None,
        tick_s: float,
    ) -> subprocess.Popen[bytes]:
        """Start a session command that outlives this process (see the launcher above for the
        files it uses in `session_dir`; `session_dir/tick` must be a FIFO).

        subprocess rather than asyncio: an asyncio transport kills its process when
        garbage-collected, and these processes must survive the runner. Popen only forks and
        execs, so it does not block the event loop for long."""
        inner, cwd, env = self._inner_argv(
            command, self.agent_layout, network=self.network, die_with_parent=False
        )
        argv = self._launch_argv(
            inner, cgroup=cgroup, session_dir=session_dir, cpu_s=None, tick_s=tick_s
        )
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
