"""How far an LLM judge's keep/mask verdicts agree with the rules' and with people's, on the
actions both decided: the share of equal decisions and Cohen's kappa (agreement beyond what
chance gives with the same mask rates). The rules only mask, so on an action a judge
labelled the rules' decision is "mask" when a rule label is in force there, else "keep".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from apollo.log.actions import Label
from apollo.supervise.labels import current


def kappa(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of paired yes/no decisions (None when chance alone explains all)."""
    n = len(pairs)
    if not n:
        return None
    observed = sum(a == b for a, b in pairs) / n
    pa, pb = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
    chance = pa * pb + (1 - pa) * (1 - pb)
    return None if chance == 1 else (observed - chance) / (1 - chance)


def _figures(pairs: Sequence[tuple[bool, bool]]) -> dict[str, Any]:
    return {
        "actions": len(pairs),
        "agreement": sum(a == b for a, b in pairs) / len(pairs) if pairs else None,
        "kappa": kappa(pairs),
        "judge_masks": sum(b for _, b in pairs),
        "other_masks": sum(a for a, _ in pairs),
    }


def agreement(runs: Iterable[Sequence[Label]], judge: str) -> dict[str, Any]:
    """The judge `judge` (its model name) against the rules and against human labels, over
    the labels of the runs (each run's labels, as the log holds them)."""
    with_rules: list[tuple[bool, bool]] = []
    with_people: list[tuple[bool, bool]] = []
    for labels in runs:
        now = current(labels)
        judged = {
            lb.step: lb.verdict == "mask"
            for lb in now
            if lb.source == "judge" and lb.model == judge
        }
        ruled = {lb.step for lb in now if lb.source == "rule" and lb.verdict == "mask"}
        people = {lb.step: lb.verdict == "mask" for lb in now if lb.source == "human"}
        for step, masked in judged.items():
            with_rules.append((step in ruled, masked))
            if step in people:
                with_people.append((people[step], masked))
    return {"judge": judge, "rules": _figures(with_rules), "humans": _figures(with_people)}
