"""Condensers are a strategy of the loop: the summarizing one condenses past its threshold,
the no-op one never does."""

from __future__ import annotations

from pathlib import Path

from apollo.agent.condense import NoCondenser
from apollo.agent.loop import AgentConfig
from apollo.log.events import Kind
from tests.agent.harness import act, run_agent

SCRIPT = [act("think", thought="x" * 400) for _ in range(8)]


def test_the_summarizing_condenser_condenses_past_its_threshold(tmp_path: Path) -> None:
    done = run_agent(
        tmp_path,
        SCRIPT,
        default=act("finish", summary="ok"),
        config=AgentConfig(summary_threshold_tokens=300),
    )
    assert done.status == "finished"
    assert done.events(Kind.SUMMARY), "the context was never condensed"


def test_the_no_op_condenser_never_condenses(tmp_path: Path) -> None:
    done = run_agent(
        tmp_path,
        SCRIPT,
        default=act("finish", summary="ok"),
        config=AgentConfig(summary_threshold_tokens=300, condenser=NoCondenser()),
    )
    assert done.status == "finished"
    assert done.events(Kind.SUMMARY) == []
    # Every call offered tools: none was a summarize call.
    assert all(body.get("tools") for body in done.server.bodies())
