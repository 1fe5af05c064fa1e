"""Windows: exactly what the model saw, split at summaries and nowhere else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apollo.export.windows import ExportError, Sample, WindowOptions, run_samples
from apollo.log.events import Kind
from apollo.supervise.policy import Policy
from tests.agent.harness import Outcome
from tests.export.conftest import kept_steps
from tests.export.runs import DRIFT_GUIDANCE, FIRST_GUIDANCE, rich_run


def samples(out: Outcome, **opts: bool) -> list[Sample]:
    run = out.store.get_run(out.run_id)
    assert run is not None
    return list(run_samples(out.store, run, Policy(), WindowOptions(**opts)))


def test_windows_are_exactly_what_each_call_saw(summarized: Outcome) -> None:
    windows = samples(summarized)
    assert [sorted(s for s in w.steps if s) for w in windows] == [
        list(range(1, 13)),
        list(range(13, 17)),
        list(range(17, 20)),
    ]
    bodies = summarized.act_bodies()
    assert len(bodies) == 19
    outputs = [ev for ev in summarized.events(Kind.MODEL_CALL) if ev.payload["purpose"] == "act"]
    for body, ev in zip(bodies, outputs, strict=True):
        w = next(w for w in windows if ev.step in w.steps)
        at = w.steps.index(ev.step)
        # The request the server received is the window's prefix; the reply follows it.
        assert w.messages[:at] == body["messages"]
        assert w.messages[at] == json.loads(summarized.store.get_blob(ev.payload["output"]))
    # Each later window starts from the summary snapshot, then the verbatim steps.
    assert windows[1].messages[2]["content"].startswith("<state_snapshot>")
    assert windows[1].weights[2] == 0 and windows[1].steps[2] is None


def test_weights_follow_the_policy(summarized: Outcome) -> None:
    got = {
        step: w
        for sample in samples(summarized)
        for step, w in zip(sample.steps, sample.weights, strict=True)
        if step
    }
    assert {s for s, w in got.items() if w == 1} == kept_steps(summarized)
    assert set(got) == set(range(1, 20))


def test_no_summary_means_one_window(tmp_path: Path) -> None:
    out = rich_run(tmp_path)
    windows = samples(out)
    assert len(windows) == 1 and sorted(s for s in windows[0].steps if s) == list(range(1, 20))
    out.store.close()


def test_guidance_sits_where_the_model_saw_it(summarized: Outcome) -> None:
    delivered = {
        ev.payload["guidance_id"]: ev.payload["step"]
        for ev in summarized.events(Kind.GUIDANCE_DELIVERED)
    }
    windows = samples(summarized)
    for step in delivered.values():
        w = next(w for w in windows if step in w.steps)
        at = w.steps.index(step)
        # After the previous step's tool result, right before the delivery step's own turn.
        assert w.messages[at - 1]["content"].startswith("<real_user>")
        assert w.messages[at - 2]["role"] == "tool"
    # Later windows repeat recent steps verbatim as context (weight 0, no step of their own).
    repeated = windows[2].messages.index(
        {"role": "user", "content": f"<real_user>{DRIFT_GUIDANCE}</real_user>"}
    )
    assert windows[2].steps[repeated + 1] is None and windows[2].weights[repeated + 1] == 0
    texts = [m["content"] for w in windows for m in w.messages if m["role"] == "user"]
    assert f"<real_user>{FIRST_GUIDANCE}</real_user>" in texts
    assert f"<real_user>{DRIFT_GUIDANCE}</real_user>" in texts
    dropped = samples(summarized, guidance=False)
    assert sum(s.guidance_dropped for s in dropped) == 3  # the second is in two windows
    assert not any(
        m["role"] == "user" and m["content"].startswith("<real_user>")
        for s in dropped
        for m in s.messages
    )


def test_summary_calls_become_samples(summarized: Outcome) -> None:
    all_samples = samples(summarized, summaries=True)
    assert [s.kind for s in all_samples] == ["window", "summary", "window", "summary", "window"]
    summary_bodies = [b for b in summarized.server.bodies() if not b.get("tools")]
    for sample, body in zip(
        [s for s in all_samples if s.kind == "summary"], summary_bodies, strict=True
    ):
        assert sample.messages[:-1] == body["messages"]
        assert sample.messages[-1]["content"].startswith("<state_snapshot>")
        assert sample.weights[-1] == 1 and sample.trained() == [len(sample.messages) - 1]


def test_a_broken_prefix_fails_loudly(tmp_path: Path) -> None:
    out = rich_run(tmp_path)
    act = out.events(Kind.MODEL_CALL)[-1].payload
    bogus = out.store.put_blob(json.dumps({"role": "user", "content": "rewritten history"}))
    out.store.append_one(
        out.run_id,
        Kind.MODEL_CALL,
        {**act, "input": {"prev": None, "keep": 0, "add": [bogus]}},
        step=20,
    )
    with pytest.raises(ExportError, match="does not extend"):
        samples(out)
    out.store.close()
