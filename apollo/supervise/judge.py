"""The LLM judge: reads a trajectory with its guidance and outcomes, in windows that fit its
context, and answers per action with a verdict and a reason in JSON.

Bad output (not JSON, steps missing, steps that do not exist, a bad verdict) is retried with a
message that says what was wrong; when the attempts are spent the problem is reported and the
steps without a valid verdict get no judge label: a failure is never taken as "keep".
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from apollo.llm.base import ChatModel, ModelError
from apollo.log import schema
from apollo.log.actions import CHARS_PER_TOKEN, Action
from apollo.log.events import Event
from apollo.log.store import Store
from apollo.log.writes import LABEL_VERDICTS, post_label
from apollo.supervise.prompts import prompt
from apollo.supervise.trajectory import Trajectory

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


@dataclass(frozen=True)
class JudgeConfig:
    """Limits of the judge."""

    context_tokens: int = 32_000  # the judge model's window
    answer_tokens_per_step: int = 60  # room kept for its answer
    attempts: int = 3  # per window: the first answer and this many minus one retries
    timeout_s: float = 300.0  # per model call
    result_chars: int = 1500  # a tool result is shown head and tail up to this size
    text_chars: int = 2000  # an assistant turn's text likewise
    params: dict[str, Any] = field(default_factory=lambda: {"temperature": 0})


@dataclass(frozen=True, slots=True)
class Verdict:
    step: int
    verdict: str
    reason: str


@dataclass
class JudgeResult:
    """What the judge said about one run, and what went wrong."""

    run_id: str
    model: str
    verdicts: list[Verdict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unjudged: list[int] = field(default_factory=list)
    calls: int = 0


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"


def render_step(a: Action, cfg: JudgeConfig, guidance: list[str]) -> str:
    """One action as the judge reads it: guidance delivered before it, its text, its calls
    and their results."""
    lines = [f"### Step {a.step}"]
    lines += [f"<real_user>{g}</real_user> (delivered before this step)" for g in guidance]
    if a.reasoning:
        lines.append("Reasoning: " + _clip(a.reasoning, cfg.text_chars))
    if a.content:
        lines.append("Assistant: " + _clip(a.content, cfg.text_chars))
    for c in a.calls:
        lines.append(f"Call: {c.name}({_clip(c.arguments or '', cfg.text_chars)})")
    for r in a.results:
        flag = " [error]" if r.error else ""
        lines.append(f"Result{flag}: " + _clip(r.body, cfg.result_chars))
    return "\n".join(lines)


def _score(submission: schema.Submission) -> str:
    """A submission's score in words; a failed evaluator says nothing about the agent."""
    if submission["score"] is not None:
        return f"{submission['score']:g}"
    if submission["status"] == "evaluator_error":
        return "not scored (the evaluator itself failed; this says nothing about the work)"
    return f"not scored ({submission['error'] or 'no score'})"


def _header(traj: Trajectory, cfg: JudgeConfig) -> str:
    scores = [
        f"step {step}: {_score(s)}{' (final)' if s['final'] else ''}"
        for step, s in traj.submissions
    ]
    guidance = [
        f"- {g.id} by {g.author} ({g.kind}), delivered at step {g.delivered_step}"
        + (f", says the run drifted from step {g.drift_from_step}" if g.drift_from_step else "")
        + f": {_clip(g.text, 600)}"
        for g in traj.guidance
    ]
    return "\n".join(
        [
            f"## Task ({traj.task})",
            _clip(traj.task_text, 3000),
            "## Outcome",
            f"Run status: {traj.status or 'still running'}"
            + (f" ({traj.finish_reason})" if traj.finish_reason else ""),
            "Scores: " + ("; ".join(scores) if scores else "none"),
            "## Guidance from the real user",
            "\n".join(guidance) if guidance else "none",
        ]
    )


def windows(traj: Trajectory, cfg: JudgeConfig) -> list[tuple[str, list[int]]]:
    """The trajectory cut into user messages that fit the judge's context, each with the
    steps it asks about."""
    header = _header(traj, cfg)
    budget_chars = int(cfg.context_tokens * CHARS_PER_TOKEN) - len(prompt("judge")) - len(header)
    delivered: dict[int, list[str]] = {}
    for g in traj.guidance:
        if g.delivered_step is not None:
            delivered.setdefault(g.delivered_step, []).append(g.text)
    out: list[tuple[str, list[int]]] = []
    parts: list[str] = []
    steps: list[int] = []
    used = 0
    for a in traj.actions:
        text = render_step(a, cfg, delivered.get(a.step, []))
        cost = len(text) + 1 + int(cfg.answer_tokens_per_step * CHARS_PER_TOKEN)
        if steps and used + cost > budget_chars:
            out.append(_message(header, parts, steps))
            parts, steps, used = [], [], 0
        parts.append(text)
        steps.append(a.step)
        used += cost
    if steps:
        out.append(_message(header, parts, steps))
    return out


def _message(header: str, parts: list[str], steps: list[int]) -> tuple[str, list[int]]:
    listed = ", ".join(str(s) for s in steps)
    text = f"{header}\n## Steps to judge: {listed}\n" + "\n\n".join(parts)
    return text, steps


def parse_verdicts(text: str, steps: list[int]) -> tuple[list[Verdict], list[str]]:
    """The valid verdicts in a judge answer for `steps`, and the problems found."""
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    try:
        data = json.loads(body[start : end + 1] if start >= 0 < end else body)
    except ValueError as exc:
        return [], [f"the answer is not a JSON object ({exc})"]
    items = data.get("verdicts") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return [], ['the answer has no "verdicts" list']
    wanted = set(steps)
    found: dict[int, Verdict] = {}
    problems: list[str] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("step"), int):
            problems.append(f"an entry without an integer step: {str(item)[:80]}")
            continue
        step, verdict, reason = item["step"], item.get("verdict"), item.get("reason")
        if step not in wanted:
            problems.append(f"step {step} is not one of the steps to judge")
        elif verdict not in LABEL_VERDICTS:
            problems.append(f"step {step}: verdict {verdict!r} is not keep or mask")
        elif not isinstance(reason, str) or not reason.strip():
            problems.append(f"step {step}: no reason")
        elif step in found:
            problems.append(f"step {step} was judged twice")
        else:
            found[step] = Verdict(step, verdict, reason.strip())
    missing = [s for s in steps if s not in found]
    if missing:
        problems.append("no verdict for step(s) " + ", ".join(map(str, missing)))
    return list(found.values()), problems


class Judge:
    """An LLM judge over any ChatModel."""

    def __init__(self, model: ChatModel, config: JudgeConfig | None = None) -> None:
        self.model = model
        self.config = config or JudgeConfig()

    async def judge(self, traj: Trajectory) -> JudgeResult:
        """Verdicts for every action of a trajectory (nothing is written)."""
        result = JudgeResult(traj.run_id, self.model.name)
        for text, steps in windows(traj, self.config):
            verdicts, problems = await self._window(text, steps, result)
            result.verdicts += verdicts
            if problems:
                done = {v.step for v in verdicts}
                left = [s for s in steps if s not in done]
                result.unjudged += left
                span = f"steps {steps[0]}-{steps[-1]}"
                result.problems.append(
                    f"{traj.run_id} {span}: {'; '.join(problems)}"
                    + (f" (unjudged: {', '.join(map(str, left))})" if left else "")
                )
        return result

    async def _window(
        self, text: str, steps: list[int], result: JudgeResult
    ) -> tuple[list[Verdict], list[str]]:
        cfg = self.config
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": prompt("judge")},
            {"role": "user", "content": text},
        ]
        best: dict[int, Verdict] = {}
        problems: list[str] = []
        for _ in range(cfg.attempts):
            result.calls += 1
            try:
                completion = await asyncio.wait_for(
                    self.model.complete(messages, None, dict(cfg.params)), cfg.timeout_s
                )
            except TimeoutError:
                problems = [f"the judge did not answer within {cfg.timeout_s:g}s"]
                continue
            except ModelError as exc:
                problems = [f"the judge call failed: {exc}"]
                continue
            answer = completion.content or ""
            verdicts, problems = parse_verdicts(answer, steps)
            # A retry may answer only part; valid verdicts from earlier attempts stand.
            best.update({v.step: v for v in verdicts})
            problems = [p for p in problems if not p.startswith("no verdict")]
            missing = [s for s in steps if s not in best]
            if missing:
                problems.append("no verdict for step(s) " + ", ".join(map(str, missing)))
            if not problems:
                break
            retry = prompt("judge_retry").format(
                problems="; ".join(problems), steps=", ".join(map(str, missing or steps))
            )
            messages += [
                {"role": "assistant", "content": answer},
                {"role": "user", "content": retry},
            ]
        return [best[s] for s in steps if s in best], problems


def write_judge_labels(store: Store, traj: Trajectory, result: JudgeResult) -> list[Event]:
    """Append the judge's verdicts as labels (source judge, author and model the model's name)."""
    return [
        post_label(
            store,
            traj.run_id,
            v.step,
            v.verdict,
            v.reason,
            result.model,
            "judge",
            model=result.model,
        )
        for v in result.verdicts
    ]
