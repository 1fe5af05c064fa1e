"""Rules on a real run: each fires exactly where the scripted agent misbehaved."""

from __future__ import annotations

from apollo.supervise.labels import current, read_labels
from apollo.supervise.rules import RULE_NAMES, RULES, RuleConfig, apply_rules, sync_rule_labels
from apollo.supervise.trajectory import load_trajectory
from tests.agent.harness import Outcome
from tests.export.runs import EXPECTED_RULES


def test_every_rule_has_a_name_and_a_reason() -> None:
    assert set(RULE_NAMES) == {
        "tool_error",
        "malformed_call",
        "exact_repeat",
        "undone",
        "idle_polling",
        "drift",
    }
    assert all(r.reason for r in RULES)


def test_rules_fire_exactly_where_expected(run: Outcome) -> None:
    traj = load_trajectory(run.store, run.run_id)
    assert [a.step for a in traj.actions] == list(range(1, 20))
    drift = next(g for g in traj.guidance if g.drift_from_step)
    assert (drift.drift_from_step, drift.delivered_step) == (11, 16)
    hits: dict[int, set[str]] = {}
    for h in apply_rules(traj):
        hits.setdefault(h.step, set()).add(h.rule)
        assert h.reason
    assert hits == EXPECTED_RULES
    undone = {h.step: h.reason for h in apply_rules(traj) if h.rule == "undone"}
    assert "killed at step 7" in undone[6] and "restored at step 10" in undone[9]


def test_thresholds_change_what_fires(run: Outcome) -> None:
    traj = load_trajectory(run.store, run.run_id)
    loose = apply_rules(traj, RuleConfig(undo_window=0, poll_limit=10))
    assert not [h for h in loose if h.rule in ("undone", "idle_polling")]
    polls = apply_rules(traj, RuleConfig(poll_limit=1), only={"idle_polling"})
    assert [h.step for h in polls] == [12, 13, 14]


def test_rule_labels_are_idempotent_and_retracted(run: Outcome) -> None:
    traj = load_trajectory(run.store, run.run_id)
    hits = apply_rules(traj)
    written = sync_rule_labels(run.store, traj, hits)
    assert len(written) == sum(len(v) for v in EXPECTED_RULES.values())
    assert all(ev.payload["source"] == "rule" and ev.payload["rule"] for ev in written)
    assert sync_rule_labels(run.store, traj, hits) == []
    # With a higher poll limit the idle_polling mask is retracted by a keep of the same rule.
    fewer = apply_rules(traj, RuleConfig(poll_limit=10))
    retracted = sync_rule_labels(run.store, traj, fewer)
    assert [(e.payload["step"], e.payload["rule"], e.payload["verdict"]) for e in retracted] == [
        (14, "idle_polling", "keep")
    ]
    in_force = [lb for lb in current(read_labels(run.store, run.run_id)) if lb.verdict == "mask"]
    assert not any(lb.rule == "idle_polling" for lb in in_force)
    sync_rule_labels(run.store, traj, hits)  # back to the default thresholds
