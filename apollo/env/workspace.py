"""A run's workspace: a copy of the task's template, its sandbox and its sessions."""

from __future__ import annotations

import shutil
from pathlib import Path

from apollo.env.sandbox import Sandbox
from apollo.env.sessions import SessionManager
from apollo.env.task import Limits, Task


class Workspace:
    """The folder the agent works in (`run_dir/workspace`, seen as /workspace inside the
    sandbox), plus the sandbox that runs its commands and the manager of its sessions."""

    def __init__(self, task: Task, run_dir: Path, sandbox: Sandbox) -> None:
        """Use `create` or `open`."""
        self.task = task
        self.run_dir = run_dir
        self.path = run_dir / "workspace"
        self.sandbox = sandbox
        # Session files live beside the workspace, never inside it, so the agent cannot
        # tamper with their bookkeeping.
        self.sessions = SessionManager(run_dir / "sessions", sandbox)

    @property
    def limits(self) -> Limits:
        """The task's sandbox limits, which the tools apply."""
        return self.task.spec.limits

    @classmethod
    def _build(cls, task: Task, run_dir: Path, allow_unsandboxed: bool) -> Workspace:
        run_dir = run_dir.resolve()
        sandbox = Sandbox.create(
            run_dir / "workspace",
            task.spec.limits,
            network=task.spec.network,
            allow_unsandboxed=allow_unsandboxed,
        )
        return cls(task, run_dir, sandbox)

    @classmethod
    def create(cls, task: Task, run_dir: Path, *, allow_unsandboxed: bool = False) -> Workspace:
        """Copy the task's workspace template into `run_dir/workspace` for a new run.

        Raises SandboxUnavailable (before copying anything) when bubblewrap is unusable and
        unsandboxed runs are not allowed, and FileExistsError if the run already has one."""
        target = run_dir.resolve() / "workspace"
        if target.exists():
            raise FileExistsError(f"{target} already exists; open it to resume the run")
        # Build the sandbox first: a refusal must not leave a half-made run behind.
        ws = cls._build(task, run_dir, allow_unsandboxed)
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(task.workspace_template, target, symlinks=True)
        return ws

    @classmethod
    def open(cls, task: Task, run_dir: Path, *, allow_unsandboxed: bool = False) -> Workspace:
        """The existing workspace of a run (to resume it)."""
        if not (run_dir / "workspace").is_dir():
            raise FileNotFoundError(f"{run_dir / 'workspace'} does not exist; create the run first")
        return cls._build(task, run_dir, allow_unsandboxed)

    def reattach_sessions(self) -> list[str]:
        """Ids of sessions whose processes are still alive (e.g. after a runner crash)."""
        return self.sessions.reattach()

    async def shutdown(self) -> None:
        """At run end: kill the sessions that are still running."""
        await self.sessions.kill_all()
