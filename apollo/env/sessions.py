"""Named long-running commands whose processes outlive the runner (and a crash of it).

Everything about a session lives in files under `<run_dir>/sessions/<id>/`, outside the
workspace, so a new SessionManager over the same folder picks up where the old one stopped:

    meta.json    id, command, pid, process start time (guards against pid reuse), kill record;
                 written with pid null *before* the process is spawned, so a runner killed in
                 between leaves a record the next one settles (adopts or clears)
    output.log   stdout and stderr of the command, appended as it runs
    stdin        a FIFO; the session holds it open read-write, so it never sees EOF
    exit         the exit code, written by the launcher when the command ends
    cursor       how many bytes of output.log the agent has already been shown
    deadline     wall-clock time (epoch s) after which the launcher's watchdog ends the session
    reaped       why the watchdog ended it (folder gone, deadline passed)
    tick         the watchdog's FIFO, on which it waits between checks
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from apollo.env.sandbox import (
    KEEP_BYTES,
    LAUNCHER_NAME,
    Sandbox,
    kill_group,
    release_cgroup,
    try_remove_cgroup,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_INPUT_TIMEOUT_S = 5.0
# How often a session's watchdog checks its folder and deadline.
WATCH_INTERVAL_S = 2.0


class SessionError(Exception):
    """A session request that cannot be done; the message is meant for the agent."""


@dataclass(slots=True)
class _Record:
    """What meta.json holds."""

    id: str
    command: str
    pid: int | None  # None: recorded before the spawn, not yet known to have started
    start_ticks: int | None
    started_at: float
    cgroup: str | None
    killed_at: float | None = None
    killed_while_running: bool | None = None
    killed_runtime_s: float | None = None


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """A session as the agent sees it in session_list."""

    id: str
    command: str
    running: bool
    exit_code: int | None  # None while running, or when it was killed / vanished
    runtime_s: float
    killed: bool  # killed by session_kill (or shutdown) while it was running
    reaped: str | None = None  # why the session's watchdog ended it

    def describe(self) -> str:
        """One line: state and runtime, e.g. 'exited with code 0 after 12.0s'."""
        if self.running:
            return f"running for {self.runtime_s:.1f}s"
        if self.reaped:
            return f"ended after about {self.runtime_s:.1f}s because {self.reaped}"
        if self.killed:
            return f"killed after {self.runtime_s:.1f}s"
        if self.exit_code is None:
            return f"ended without an exit code after about {self.runtime_s:.1f}s"
        return f"exited with code {self.exit_code} after {self.runtime_s:.1f}s"


@dataclass(frozen=True, slots=True)
class KillReport:
    """What session_kill found: was the process still running, and for how long it ran."""

    was_running: bool
    runtime_s: float
    exit_code: int | None


@dataclass(frozen=True, slots=True)
class SessionOutput:
    """Output not shown before; the middle of a huge output is cut, and `text` says so."""

    text: str
    new_bytes: int
    cursor: int  # bytes of output.log shown so far, this read included


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _start_ticks(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks since boot, state letter) of a process, or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after it do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19]), fields[0]


def _launcher_pids(folder: Path) -> list[int]:
    """Pids of launchers started for the session in `folder` (found by their command line)."""
    marker = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if LAUNCHER_NAME.encode() in argv[:4] and marker in argv[4:6]:
            found.append(int(entry.name))
    return found


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _complete_utf8(data: bytes) -> int:
    """Length of the longest prefix of `data` that does not end inside a UTF-8 character."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead byte
            continue
        if byte < 0xC0:
            return len(data)
        need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return len(data) - back if need > back else len(data)
    return len(data)


class SessionManager:
    """Starts, feeds, reads and kills the sessions of one run."""

    def __init__(
        self, root: Path, sandbox: Sandbox | None, watch_interval_s: float = WATCH_INTERVAL_S
    ) -> None:
        """Manage the sessions stored under `root` (created if missing), old ones included.
        Without a sandbox the manager can inspect and kill sessions but not start them."""
        self.root = root
        self.sandbox = sandbox
        self.watch_interval_s = watch_interval_s
        root.mkdir(parents=True, exist_ok=True)
        # Children this manager started; polling them reaps them so they leave no zombies.
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._deadline: float | None = None

    # --- records -------------------------------------------------------------------------

    def _dir(self, sid: str) -> Path:
        if not _NAME.match(sid) or not (self.root / sid / "meta.json").is_file():
            known = ", ".join(self.ids()) or "none yet"
            raise SessionError(f"no session {sid!r}; known sessions: {known}")
        return self.root / sid

    def _load(self, sid: str) -> _Record:
        data = json.loads((self._dir(sid) / "meta.json").read_text(encoding="utf-8"))
        return _Record(**data)

    def _save(self, rec: _Record) -> None:
        _write_atomic(self.root / rec.id / "meta.json", json.dumps(asdict(rec), indent=1))

    def ids(self) -> list[str]:
        """Ids of all sessions of this run, oldest first."""
        started = {
            p.name: json.loads((p / "meta.json").read_text(encoding="utf-8"))["started_at"]
            for p in self.root.iterdir()
            if (p / "meta.json").is_file()
        }
        return sorted(started, key=lambda sid: started[sid])

    def _alive(self, rec: _Record) -> bool:
        child = self._children.get(rec.id)
        if child is not None and child.poll() is not None:
            del self._children[rec.id]
        if rec.pid is None:
            return False
        proc = _start_ticks(rec.pid)
        if proc is None:
            return False
        ticks, state = proc
        return state not in "ZX" and ticks == rec.start_ticks

    def _exit_code(self, sid: str) -> tuple[int, float] | None:
        """(exit code, time it was written) once the command has ended normally."""
        path = self.root / sid / "exit"
        try:
            return int(path.read_text().strip()), path.stat().st_mtime
        except (OSError, ValueError):
            return None

    def _status(self, rec: _Record) -> SessionStatus:
        ended = self._exit_code(rec.id)
        running = ended is None and self._alive(rec)
        if not running and rec.cgroup is not None and try_remove_cgroup(Path(rec.cgroup)):
            rec.cgroup = None
            self._save(rec)
        if running:
            runtime = time.time() - rec.started_at
            return SessionStatus(rec.id, rec.command, True, None, runtime, False)
        reaped = self._reaped(rec.id)
        if ended is not None:
            code, at = ended
            return SessionStatus(rec.id, rec.command, False, code, at - rec.started_at, False)
        if rec.killed_at is not None and rec.killed_runtime_s is not None:
            runtime = rec.killed_runtime_s
            return SessionStatus(rec.id, rec.command, False, None, runtime, True, reaped)
        # Gone without an exit code (reaped, killed from outside, machine restart): the last
        # write to its output is the best estimate of when it stopped.
        last = (self.root / rec.id / "output.log").stat().st_mtime
        runtime = last - rec.started_at
        return SessionStatus(rec.id, rec.command, False, None, runtime, False, reaped)

    def _reaped(self, sid: str) -> str | None:
        try:
            return (self.root / sid / "reaped").read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def status(self, sid: str) -> SessionStatus:
        """The session's current state; raises SessionError for an unknown id."""
        return self._status(self._load(sid))

    def statuses(self) -> list[SessionStatus]:
        """All sessions of the run, oldest first."""
        return [self.status(sid) for sid in self.ids()]

    # --- lifecycle -----------------------------------------------------------------------

    def _new_dir(self, name: str | None) -> Path:
        if name is not None:
            if not _NAME.match(name):
                raise SessionError(
                    f"bad session name {name!r}: use 1-40 letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit"
                )
            try:
                (self.root / name).mkdir()
            except FileExistsError:
                # A name stays its session's for good (its output stays readable), so a model
                # that reuses one is told a free name, not just to think of one.
                raise SessionError(
                    f"a session named {name!r} already exists (read its output with "
                    f"session_output(id={name!r})); to start another, name it "
                    f"{self._free_name(name)!r} or give no name"
                ) from None
            return self.root / name
        n = 1
        while True:
            try:
                (self.root / f"s{n}").mkdir()
            except FileExistsError:
                n += 1
                continue
            return self.root / f"s{n}"

    def _free_name(self, name: str) -> str:
        """The first of `name`-2, -3, ... that no session has (counting on from a number
        `name` already ends with: job-2 gives job-3)."""
        numbered = re.fullmatch(r"(.+)-(\d+)", name)
        base, n = (numbered[1], int(numbered[2]) + 1) if numbered else (name, 2)
        while (self.root / (candidate := f"{base[: 40 - len(str(n)) - 1]}-{n}")).exists():
            n += 1
        return candidate

    def start(self, command: str, name: str | None = None) -> SessionStatus:
        """Start `command` in a new session (id = `name`, or s1, s2, ...).

        The record is written before the spawn and completed after it, so a runner killed
        in between leaves a record that `reattach` settles: it finds the process by its
        command line and adopts it, or clears a session that never started."""
        if self.sandbox is None:
            raise SessionError("this session manager only inspects sessions; it cannot start one")
        folder = self._new_dir(name)
        try:
            cgroup = self.sandbox.session_cgroup()
            rec = _Record(
                id=folder.name,
                command=command,
                pid=None,
                start_ticks=None,
                started_at=time.time(),
                cgroup=str(cgroup) if cgroup else None,
            )
            fifo = folder / "stdin"
            os.mkfifo(fifo, 0o600)
            os.mkfifo(folder / "tick", 0o600)
            _write_atomic(folder / "cursor", "0")
            if self._deadline is not None:
                _write_atomic(folder / "deadline", f"{self._deadline:.0f}")
            out_fd = os.open(folder / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            # Read-write, so the FIFO always has a writer and the command never reads EOF.
            in_fd = os.open(fifo, os.O_RDWR)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        try:
            self._save(rec)  # the intent: from here on a crash leaves a record to settle
            proc = self.sandbox.spawn_detached(
                command,
                stdin=in_fd,
                output=out_fd,
                session_dir=folder,
                cgroup=cgroup,
                tick_s=self.watch_interval_s,
            )
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            os.close(in_fd)
            os.close(out_fd)
        # Our own unreaped child cannot vanish yet, so its start time is always readable.
        ticks = _start_ticks(proc.pid)
        rec.pid = proc.pid
        rec.start_ticks = ticks[0] if ticks else None
        self._save(rec)
        self._children[rec.id] = proc
        return self._status(rec)

    def _settle(self) -> None:
        """Complete what a runner killed mid-start left: a folder without a record started
        nothing and is removed; a record without a pid adopts the launcher found by its
        command line, or, when none runs, is removed with its folder (nothing ever ran)."""
        for folder in self.root.iterdir():
            if not folder.is_dir() or not _NAME.match(folder.name):
                continue
            if not (folder / "meta.json").is_file():
                shutil.rmtree(folder, ignore_errors=True)
                continue
            rec = self._load(folder.name)
            if rec.pid is not None:
                continue
            pids = _launcher_pids(folder)
            if not pids:
                if rec.cgroup is not None:
                    try_remove_cgroup(Path(rec.cgroup))
                shutil.rmtree(folder, ignore_errors=True)
                continue
            # The launcher leads its process group; its watchdog is a fork with the same argv.
            rec.pid = next((pid for pid in pids if _is_group_leader(pid)), min(pids))
            ticks = _start_ticks(rec.pid)
            rec.start_ticks = ticks[0] if ticks else None
            self._save(rec)

    def reattach(self) -> list[str]:
        """Ids of sessions whose processes are still running (e.g. after a runner crash);
        settles half-started sessions and cleans up after those that ended meanwhile."""
        self._settle()
        return [s.id for s in self.statuses() if s.running]

    def set_deadline(self, at: float) -> None:
        """Sessions end at wall-clock time `at` (epoch s) if nobody has ended them by then:
        the run's remaining working time plus a grace. Applies to running sessions and to
        those started later; the runner moves it on after pauses and restarts."""
        self._deadline = at
        for status in self.statuses():
            if status.running:
                _write_atomic(self.root / status.id / "deadline", f"{at:.0f}")

    async def kill(self, sid: str) -> KillReport:
        """SIGKILL the session's process group; says whether it was still running."""
        rec = self._load(sid)
        before = self._status(rec)
        if before.running and rec.pid is not None:
            kill_group(rec.pid)
            deadline = time.monotonic() + 5.0
            while self._alive(rec) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        if rec.cgroup is not None:
            await release_cgroup(Path(rec.cgroup))
            rec.cgroup = None
        if rec.killed_at is None:
            rec.killed_at = time.time()
            rec.killed_while_running = before.running
            rec.killed_runtime_s = rec.killed_at - rec.started_at if before.running else None
        self._save(rec)
        after = self._status(rec)
        return KillReport(before.running, after.runtime_s, after.exit_code)

    async def kill_all(self) -> list[str]:
        """Kill every running session (run end); returns their ids."""
        running = self.reattach()
        for sid in running:
            await self.kill(sid)
        return running

    # --- input and output ----------------------------------------------------------------

    async def send(self, sid: str, text: str) -> None:
        """Write `text` to the session's stdin."""
        status = self.status(sid)
        if not status.running:
            raise SessionError(f"session {sid!r} is not running ({status.describe()})")
        try:
            fd = os.open(self.root / sid / "stdin", os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                raise SessionError(f"session {sid!r} no longer has its input open") from exc
            raise
        data = text.encode()
        deadline = time.monotonic() + _INPUT_TIMEOUT_S
        try:
            while data:
                try:
                    data = data[os.write(fd, data) :]
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise SessionError(
                            f"session {sid!r} is not reading its input; "
                            f"{len(data)} bytes were not sent"
                        ) from None
                    await asyncio.sleep(0.05)
        finally:
            os.close(fd)

    def read(self, sid: str, max_bytes: int = 2 * KEEP_BYTES) -> SessionOutput:
        """Output since the last read (head and tail if more than `max_bytes`). The cursor is
        saved before returning, so output is neither repeated nor lost across restarts."""
        folder = self._dir(sid)
        running = self.status(sid).running
        cursor = int((folder / "cursor").read_text() or 0)
        with open(folder / "output.log", "rb") as f:
            size = os.fstat(f.fileno()).st_size
            new = size - cursor
            f.seek(cursor)
            if new <= max_bytes:
                data = f.read(new)
                if running:  # the rest of a split character comes with the next read
                    data = data[: _complete_utf8(data)]
                consumed = len(data)
                text = data.decode("utf-8", errors="replace")
            else:
                half = max_bytes // 2
                head = f.read(half)
                f.seek(size - half)
                tail = f.read(half)
                skipped = new - 2 * half
                consumed = new
                text = (
                    head.decode("utf-8", errors="replace")
                    + f"\n[... {skipped} bytes of output skipped ...]\n"
                    + tail.decode("utf-8", errors="replace")
                )
        _write_atomic(folder / "cursor", str(cursor + consumed))
        return SessionOutput(text, consumed, cursor + consumed)

    def rewind(self, sid: str, cursor: int) -> None:
        """Set how much output the agent has been shown. A resumed run sets it from its log,
        so output read just before a crash, but never recorded, is shown again."""
        _write_atomic(self._dir(sid) / "cursor", str(max(0, cursor)))
