"""The policy: precedence, modes, provenance; and the supervision report."""

from __future__ import annotations

import asyncio

import pytest

from apollo.log.actions import Label
from apollo.log.writes import post_label
from apollo.supervise.policy import Policy, decide
from apollo.supervise.report import supervise_runs
from tests.agent.harness import Outcome


def lb(
    step: int, verdict: str, source: str, seq: int, author: str = "x", rule: str | None = None
) -> Label:
    return Label(step, verdict, f"{source} says {verdict}", source, author, seq, 0.0, rule)


LABELS = [
    lb(1, "mask", "rule", 1, "rules", "tool_error"),
    lb(1, "keep", "judge", 2, "gpt"),
    lb(2, "mask", "rule", 3, "rules", "exact_repeat"),
    lb(2, "mask", "judge", 4, "gpt"),
    lb(2, "keep", "human", 5, "alice"),
    lb(3, "keep", "judge", 6, "gpt"),
    lb(3, "mask", "judge", 7, "gpt"),  # the same judge later changed its mind
]


def test_default_precedence_human_judge_rule() -> None:
    d = decide(Policy(), [1, 2, 3, 4], LABELS)
    assert [d[s].verdict for s in (1, 2, 3, 4)] == ["keep", "keep", "mask", "keep"]
    assert (d[1].source, d[2].source, d[3].source, d[4].source) == (
        "judge",
        "human",
        "judge",
        "default",
    )
    assert {o.source for o in d[2].overridden} == {"rule", "judge"}
    assert d[3].deciding[0].seq == 7 and "judge gpt" in d[3].reason
    assert d[2].to_json()["by"][0]["author"] == "alice"


def test_other_orders_and_modes() -> None:
    rules_first = decide(Policy.parse("precedence", "rule,human,judge"), [1, 2], LABELS)
    assert rules_first[1].verdict == "mask" and rules_first[1].key() == "rule:tool_error"
    assert rules_first[2].verdict == "mask"
    cautious = decide(Policy("any-mask"), [1, 2, 3], LABELS)
    assert [cautious[s].verdict for s in (1, 2, 3)] == ["mask", "mask", "mask"]
    ablation = decide(Policy("keep-all"), [1, 2, 3], LABELS)
    assert all(d.verdict == "keep" and d.overridden for d in ablation.values())
    no_judge = decide(Policy.parse("precedence", "human,rule"), [3], LABELS)
    assert no_judge[3].verdict == "keep" and no_judge[3].source == "default"


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        Policy("lenient")
    with pytest.raises(ValueError, match="distinct sources"):
        Policy.parse("precedence", "human,human")


def test_human_labels_are_validated(run: Outcome) -> None:
    with pytest.raises(ValueError, match="no action at step 99"):
        post_label(run.store, run.run_id, 99, "mask", "bad", "alice")
    with pytest.raises(ValueError, match="needs a reason"):
        post_label(run.store, run.run_id, 4, "mask", " ", "alice")
    with pytest.raises(ValueError, match="verdict"):
        post_label(run.store, run.run_id, 4, "drop", "bad", "alice")


def test_report_counts_reasons_tokens_and_disagreements(run: Outcome) -> None:
    post_label(run.store, run.run_id, 4, "mask", "pointless echo", "alice")
    post_label(run.store, run.run_id, 4, "keep", "fine", "gpt-judge", "judge", model="gpt-judge")
    report = asyncio.run(supervise_runs(run.store, [run.run_id]))
    data = report.to_json()
    assert data["actions"] == 19
    # Rules mask 10 steps; the human masks step 4 over the judge's keep.
    assert data["masked"] == 11 and data["kept"] == 8
    assert data["masked_by"]["human"] == 1
    assert data["masked_by"]["rule:drift,exact_repeat,idle_polling"] == 1
    assert 0 < data["masked_token_share"] < 1
    assert data["assistant_tokens_masked"] > 0
    assert data["disagreements"] == [
        {
            "run": run.run_id,
            "step": 4,
            "human": {"author": "alice", "verdict": "mask", "reason": "pointless echo"},
            "judge": {"model": "gpt-judge", "verdict": "keep", "reason": "fine"},
        }
    ]
    text = report.render()
    assert "masked share of assistant tokens" in text and "disagree" in text
