"""A run's outcome from its log: the last `run_finished` with no `run_resumed` after it, and the
readers of `run_finished` that go by that rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from apollo.log.events import Kind, RunStatus
from apollo.log.outcome import final_outcome, resumable
from apollo.log.sqlite import SQLiteStore
from apollo.rollout.annotator import RunFacts
from apollo.supervise.trajectory import load_trajectory


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (RunStatus.FAILED, True),
        (RunStatus.FINISHED, False),
        (RunStatus.STOPPED, False),
        (RunStatus.TIMEOUT, False),
        (RunStatus.RUNNING, False),
        ("no-such-status", False),
    ],
)
def test_only_a_failed_run_is_resumable(status: str, expected: bool) -> None:
    assert resumable(status) is expected


def test_the_outcome_is_the_last_run_finished_not_followed_by_a_resume(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run("t", {}).id
    store.append_one(run_id, Kind.RUN_STARTED, {"task": "t", "messages": []})
    assert final_outcome(store.events(run_id)) is None
    failed = {"status": "failed", "reason": "model gone", "resumable": True}
    store.append_one(run_id, Kind.RUN_FINISHED, failed)
    assert final_outcome(store.events(run_id)) == failed
    facts = RunFacts()
    for ev in store.events(run_id):
        facts.apply(ev)
    assert facts.finished
    assert load_trajectory(store, run_id).status == "failed"

    resumed = store.append_one(run_id, Kind.RUN_RESUMED, {"sessions": []})
    # Live again: neither the failure nor anything else is the outcome now.
    assert final_outcome(store.events(run_id)) is None
    facts.apply(resumed)
    assert not facts.finished  # the simulated annotator follows the resumed run
    trajectory = load_trajectory(store, run_id)
    assert (trajectory.status, trajectory.finish_reason) == (None, None)

    done = {"status": "finished", "reason": "done", "resumable": False}
    store.append_one(run_id, Kind.RUN_FINISHED, done)
    assert final_outcome(store.events(run_id)) == done
    assert load_trajectory(store, run_id).finish_reason == "done"
    store.close()
