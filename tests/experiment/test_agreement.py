"""A judge's agreement with the rules and with people, on labels made by hand."""

from __future__ import annotations

from apollo.experiment.agreement import agreement, kappa
from apollo.log.actions import Label


def label(step: int, verdict: str, source: str, seq: int, model: str | None = None) -> Label:
    author = {"judge": model or "j", "rule": "rules", "human": "ada"}[source]
    rule = "exact_repeat" if source == "rule" else None
    return Label(step, verdict, "why", source, author, seq, float(seq), rule=rule, model=model)


def test_kappa() -> None:
    assert kappa([(True, True), (False, False)]) == 1.0
    assert kappa([(True, False), (False, True)]) == -1.0
    assert kappa([(True, True)] * 3) is None  # all one decision: chance explains it
    assert kappa([]) is None


def test_agreement_with_rules_and_people() -> None:
    run = [
        label(2, "mask", "rule", 1),
        label(1, "keep", "judge", 2, "m"),
        label(2, "mask", "judge", 3, "m"),
        label(3, "keep", "judge", 4, "m"),
        label(3, "mask", "judge", 5, "m"),  # the later verdict of the same judge replaces it
        label(3, "mask", "human", 6),
        label(1, "mask", "judge", 7, "other-model"),  # another judge: not counted for "m"
    ]
    made = agreement([run], "m")
    rules, people = made["rules"], made["humans"]
    # (rule mask?, judge mask?): step 1 (no, no), step 2 (yes, yes), step 3 (no, yes).
    assert rules["actions"] == 3 and abs(rules["agreement"] - 2 / 3) < 1e-12
    assert abs(rules["kappa"] - 0.4) < 1e-12
    assert (rules["judge_masks"], rules["other_masks"]) == (2, 1)
    assert people["actions"] == 1 and people["agreement"] == 1.0 and people["kappa"] is None
    assert agreement([], "m")["rules"]["actions"] == 0
