"""Run a task's hidden evaluator on a workspace and read its score.

The evaluator runs from the task's eval/ folder in a sandbox that shows it the eval folder and
the workspace read-only at their host paths (so `{workspace}` in the command is the real path),
with a private writable /tmp and no network. It must print a JSON object with a numeric `score`
on its last stdout line. Every failure becomes `EvalResult.error`; evaluate() never raises.

A result has one of three statuses: `scored`; `rejected`, the workspace cannot be evaluated as it
is (the agent can fix it and submit again); `evaluator_error`, the evaluator ran but gave no score
(it crashed, timed out, or printed no score), which says nothing about the work and is never
taken for a score.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apollo.env.sandbox import Bind, Layout
from apollo.env.task import Task
from apollo.env.workspace import Workspace

_STDERR_TAIL = 2000

SCORED = "scored"
REJECTED = "rejected"
EVALUATOR_ERROR = "evaluator_error"


@dataclass(slots=True)
class EvalResult:
    """A score (clamped to the task's score_range), the evaluator's other fields, or an error
    that says what went wrong with the evaluator's stderr tail; `status` says which."""

    score: float | None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0
    status: str = SCORED


def _failed(error: str, elapsed: float = 0.0) -> EvalResult:
    return EvalResult(None, error=error, duration_s=elapsed, status=EVALUATOR_ERROR)


def _tail(text: str) -> str:
    text = text.strip()
    return text[-_STDERR_TAIL:] if text else "(no stderr)"


def _parse(stdout: str, lo: float, hi: float) -> tuple[float, dict[str, Any]]:
    """Score and details from the last non-empty stdout line; ValueError says what is wrong."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the evaluator printed nothing on stdout")
    last = lines[-1].strip()
    try:
        data = json.loads(last)
    except json.JSONDecodeError:
        raise ValueError(f"the last stdout line is not JSON: {last[:300]!r}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the last stdout line is JSON but not an object: {last[:300]!r}")
    score = data.pop("score", None)
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise ValueError(f"the JSON object has no finite numeric 'score': {last[:300]!r}")
    return min(max(float(score), lo), hi), data


def escaping_links(root: Path) -> list[str]:
    """Symlinks under `root` that point outside it. The evaluator sees the hidden eval folder,
    so a link the agent made to it would let a submission read the answers."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                found.append(str(path.relative_to(root)))
    return found


async def evaluate(task: Task, workspace: Workspace) -> EvalResult:
    """Run the task's evaluator on the workspace; failures are reported in `error`."""
    spec = task.spec.evaluator
    started = time.monotonic()
    eval_dir = task.eval_dir.resolve()
    ws = workspace.path.resolve()
    links = escaping_links(ws)
    if links:
        return EvalResult(
            None,
            error="the workspace has links pointing outside it, which the evaluator will not "
            f"follow; remove them and submit again: {', '.join(links[:5])}",
            status=REJECTED,
        )
    here = Bind(eval_dir, str(eval_dir))
    layout = Layout(binds=(here, Bind(ws, str(ws))), workdir=here)
    command = spec.command.replace("{workspace}", shlex.quote(str(ws)))
    try:
        done = await workspace.sandbox.run(
            command, timeout=spec.timeout, layout=layout, merge_stderr=False, network=False
        )
    except OSError as exc:
        return _failed(f"could not start the evaluator: {exc}")
    elapsed = time.monotonic() - started
    if done.timed_out:
        return _failed(
            f"evaluator timed out after {spec.timeout:g}s; stderr: {_tail(done.stderr)}", elapsed
        )
    if done.exit_code != 0:
        return _failed(
            f"evaluator exited with code {done.exit_code}; stderr: {_tail(done.stderr)}", elapsed
        )
    try:
        score, details = _parse(done.output, *spec.score_range)
    except ValueError as exc:
        return _failed(f"{exc}; stderr: {_tail(done.stderr)}", elapsed)
    return EvalResult(score, details, None, elapsed)
