"""The LLM judge over real HTTP to the scripted server: good answers become labels; bad ones
are retried, then reported, never taken as keep."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apollo.llm.base import CallLimits
from apollo.llm.openai_client import OpenAIChatModel
from apollo.llm.scripted import Request, ScriptedServer, reply
from apollo.supervise.judge import Judge, JudgeConfig, JudgeResult, parse_verdicts, windows
from apollo.supervise.labels import read_labels
from apollo.supervise.prompts import prompt
from apollo.supervise.report import supervise_runs
from apollo.supervise.trajectory import load_trajectory
from tests.agent.harness import Outcome, act, make_task, run_agent

Answer = Callable[[list[int]], str]


def asked(request: Request) -> list[int]:
    """The steps a judge request asks about (from its last user message)."""
    text = request.body["messages"][-1]["content"]
    listed = re.search(r"Steps to judge: ([\d, ]+)", text) or re.search(
        r"for each of these steps: ([\d, ]+)", text
    )
    assert listed is not None
    return [int(s) for s in listed.group(1).split(",")]


def verdicts(steps: list[int], extra: tuple[int, ...] = ()) -> str:
    items = [
        {"step": s, "verdict": "mask" if s % 2 else "keep", "reason": f"step {s} reason"}
        for s in [*steps, *extra]
    ]
    return json.dumps({"verdicts": items})


def judge_with(
    answers: list[Answer], config: JudgeConfig | None = None, delay: float = 0.0
) -> tuple[ScriptedServer, Judge]:
    def entry(answer: Answer) -> Callable[[Request], dict[str, Any]]:
        return lambda request: reply(answer(asked(request)), delay=delay)

    server = ScriptedServer([entry(a) for a in answers]).start()
    model = OpenAIChatModel(server.base_url, "judge-model", limits=CallLimits(max_attempts=1))
    return server, Judge(model, config or JudgeConfig())


def run_judge(run: Outcome, answers: list[Answer], **kw: Any) -> tuple[ScriptedServer, JudgeResult]:
    server, judge = judge_with(answers, **kw)
    try:
        result = asyncio.run(judge.judge(load_trajectory(run.store, run.run_id)))
    finally:
        server.stop()
    return server, result


def test_windows_fit_the_context_and_cover_every_step(run: Outcome) -> None:
    traj = load_trajectory(run.store, run.run_id)
    small = JudgeConfig(context_tokens=1500)
    parts = windows(traj, small)
    assert len(parts) > 2
    assert [s for _, steps in parts for s in steps] == list(range(1, 20))
    for text, _ in parts:
        assert len(text) + len(prompt("judge")) < 1500 * 3.5
        assert "Guidance from the real user" in text and "drifted from step 11" in text
    assert "<real_user>Stop polling" in "".join(t for t, _ in parts)


def test_good_answers_become_judge_labels_with_the_model_name(run: Outcome) -> None:
    server, judge = judge_with([verdicts] * 10, JudgeConfig(context_tokens=4000))
    try:
        report = asyncio.run(supervise_runs(run.store, [run.run_id], rules=False, judge=judge))
    finally:
        server.stop()
    assert report.judge_problems == [] and report.judge_labels_written == 19
    labels = [lb for lb in read_labels(run.store, run.run_id) if lb.source == "judge"]
    assert {(lb.author, lb.model) for lb in labels} == {("judge-model", "judge-model")}
    assert {lb.step: lb.verdict for lb in labels}[3] == "mask"
    # The prompt came from the file, the trajectory in the user turn.
    first = server.requests[0].body["messages"]
    assert first[0]["content"] == prompt("judge")
    assert "### Step 1" in first[1]["content"]


def test_malformed_json_is_retried(run: Outcome) -> None:
    server, result = run_judge(run, [lambda s: "{not json", verdicts])
    assert result.problems == [] and len(result.verdicts) == 19 and result.calls == 2
    retry = server.requests[1].body["messages"]
    assert "could not be used" in retry[-1]["content"] and retry[-2]["content"] == "{not json"


def test_missing_steps_are_asked_again_then_reported(run: Outcome) -> None:
    half: Answer = lambda steps: verdicts(steps[: len(steps) // 2])  # noqa: E731
    nothing: Answer = lambda steps: json.dumps({"verdicts": []})  # noqa: E731
    server, result = run_judge(run, [half, nothing, nothing])
    assert result.calls == 3
    assert [v.step for v in result.verdicts] == list(range(1, 10))
    assert result.unjudged == list(range(10, 20))
    assert "no verdict for step(s) 10" in result.problems[0]
    # The retry asked only for the missing steps.
    assert asked(server.requests[1]) == list(range(10, 20))


def test_verdicts_for_steps_that_do_not_exist_are_reported(run: Outcome) -> None:
    bogus: Answer = lambda steps: verdicts(steps, extra=(99,))  # noqa: E731
    _, result = run_judge(run, [bogus, bogus, bogus])
    assert len(result.verdicts) == 19
    assert result.problems and "step 99 is not one of the steps" in result.problems[0]
    assert 99 not in {v.step for v in result.verdicts}


def test_a_judge_that_times_out_is_reported_not_kept(run: Outcome) -> None:
    _, result = run_judge(
        run, [verdicts, verdicts], config=JudgeConfig(timeout_s=0.2, attempts=2), delay=1.0
    )
    assert result.verdicts == [] and result.unjudged == list(range(1, 20))
    assert "did not answer within 0.2s" in result.problems[0]


def test_parse_accepts_fenced_json_and_rejects_bad_entries() -> None:
    text = '```json\n{"verdicts": [{"step": 1, "verdict": "keep", "reason": "ok"}]}\n```'
    assert parse_verdicts(text, [1]) == (parse_verdicts(text, [1])[0], [])
    found, problems = parse_verdicts(
        '{"verdicts": [{"step": 1, "verdict": "maybe", "reason": "x"}, {"step": 2, '
        '"verdict": "mask"}]}',
        [1, 2],
    )
    assert (
        found == []
        and any("maybe" in p for p in problems)
        and any("no reason" in p for p in problems)
    )


def test_the_judge_is_told_a_failed_evaluator_is_not_a_score(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    (task.eval_dir / "score.py").write_text("raise RuntimeError('the grader broke')\n")
    outcome = run_agent(
        tmp_path, [act("submit", note="try"), act("finish", summary="x")], task=task
    )
    server, _ = run_judge(outcome, [verdicts] * 4)
    header = server.requests[0].body["messages"][1]["content"]
    scores = next(line for line in header.splitlines() if line.startswith("Scores: "))
    assert "step 1: not scored (the evaluator itself failed" in scores
    assert "None" not in scores
