"""Shared real runs (made once per session) and the packaged SmolLM2 tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apollo.log.writes import post_label
from apollo.supervise.rules import apply_rules, sync_rule_labels
from apollo.supervise.trajectory import load_trajectory
from tests.agent.harness import Outcome
from tests.export.runs import rich_run

SUMMARY_THRESHOLD = 1600  # two summaries in the rich run: windows 1-12, 13-16, 17-19


@pytest.fixture(scope="session")
def summarized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """The rich run with two summaries, supervised: rule labels, a human keep on step 5
    (over its exact_repeat rule) and a human mask on step 17."""
    out = rich_run(tmp_path_factory.mktemp("summarized"), SUMMARY_THRESHOLD)
    traj = load_trajectory(out.store, out.run_id)
    sync_rule_labels(out.store, traj, apply_rules(traj))
    post_label(out.store, out.run_id, 5, "keep", "checking twice was fine", "alice")
    post_label(out.store, out.run_id, 17, "mask", "wrote the answer blindly", "alice")
    yield out
    out.store.close()


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from apollo.export.formats.tokenized import load_tokenizer

    return load_tokenizer()


def kept_steps(outcome: Outcome) -> set[int]:
    """Action steps the default policy keeps in the `summarized` run."""
    masked = {2, 3, 6, 9, 11, 12, 13, 14, 15, 17}  # rules, minus step 5 (human keep), plus 17
    return set(range(1, 20)) - masked
