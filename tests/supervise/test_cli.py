"""`apollo supervise --judge`: the judge's sampling flags reach the judge model."""

from __future__ import annotations

from pathlib import Path

import pytest

from apollo.cli import main
from apollo.llm.scripted import ScriptedServer, reply
from tests.agent.harness import act, make_task


def test_judge_sampling_flags_reach_the_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = make_task(tmp_path)
    home = str(tmp_path / "home")
    script = [act("think", thought="look around"), act("finish", summary="done")]
    with ScriptedServer(script) as agent:
        assert (
            main(["run", str(task.path), "--model", agent.base_url, "--quiet", "--home", home]) == 0
        )
    run_id = capsys.readouterr().out.split()[1]
    with ScriptedServer(default=reply('{"verdicts": []}')) as judge:
        main(
            [
                "supervise",
                run_id,
                "--judge",
                judge.base_url,
                "--judge-temperature",
                "0.4",
                "--judge-max-tokens",
                "100",
                "--home",
                home,
            ]
        )
        bodies = judge.bodies()
    assert bodies, "the judge was never asked"
    for body in bodies:
        assert (body["temperature"], body["max_tokens"]) == (0.4, 100)
