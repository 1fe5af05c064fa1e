"""The policy: labels in, one keep / mask decision per action out, with its provenance.

Modes:
- `precedence` (default): the first source in `order` that has a label in force on the action
  decides (default order human > judge > rule). Within a source the latest label decides;
  rules only mask, so any rule mask in force masks.
- `any-mask`: an action is masked when any label in force masks it (the cautious choice).
- `keep-all`: every action is kept (the "no action masking" ablation); labels are still
  reported as overridden.
An action without labels is kept: the filter removes what something flagged, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apollo.log.actions import Label
from apollo.log.writes import LABEL_SOURCES
from apollo.supervise.labels import current

MODES = ("precedence", "any-mask", "keep-all")
DEFAULT_ORDER: tuple[str, ...] = ("human", "judge", "rule")


@dataclass(frozen=True)
class Policy:
    """How labels become decisions."""

    mode: str = "precedence"
    order: tuple[str, ...] = DEFAULT_ORDER

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown policy mode {self.mode!r}; use one of {', '.join(MODES)}")
        unknown = [s for s in self.order if s not in LABEL_SOURCES]
        if unknown or len(set(self.order)) != len(self.order) or not self.order:
            raise ValueError(
                f"precedence must list distinct sources among {', '.join(LABEL_SOURCES)}, "
                f"got {','.join(self.order)}"
            )

    @classmethod
    def parse(cls, mode: str = "precedence", order: str | None = None) -> Policy:
        """From CLI text: `order` is comma-separated, e.g. "human,rule,judge"."""
        parts = tuple(p.strip() for p in order.split(",")) if order else DEFAULT_ORDER
        return cls(mode, parts)

    def describe(self) -> str:
        if self.mode == "precedence":
            return "precedence " + " > ".join(self.order) + "; unlabelled actions kept"
        if self.mode == "any-mask":
            return f"any-mask over {', '.join(self.order)}; unlabelled actions kept"
        return "keep-all (no action masking)"

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "order": list(self.order), "text": self.describe()}


@dataclass(frozen=True)
class Decision:
    """The verdict on one action and why: the deciding labels, and those overridden."""

    step: int
    verdict: str
    source: str  # human | judge | rule | default | policy
    reason: str
    deciding: tuple[Label, ...] = ()
    overridden: tuple[Label, ...] = field(default=())

    @property
    def weight(self) -> int:
        return 1 if self.verdict == "keep" else 0

    def key(self) -> str:
        """What the report groups by: the rule's name, or the source."""
        if self.source == "rule":
            return "rule:" + ",".join(sorted({lb.rule or "?" for lb in self.deciding}))
        return self.source

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "verdict": self.verdict,
            "source": self.source,
            "reason": self.reason,
            "by": [_label_json(lb) for lb in self.deciding],
            "overridden": [_label_json(lb) for lb in self.overridden],
        }


def _label_json(lb: Label) -> dict[str, Any]:
    out: dict[str, Any] = {
        "source": lb.source,
        "author": lb.author,
        "verdict": lb.verdict,
        "reason": lb.reason,
        "seq": lb.seq,
    }
    if lb.rule:
        out["rule"] = lb.rule
    if lb.model:
        out["model"] = lb.model
    return out


def decide(policy: Policy, steps: Iterable[int], labels: Sequence[Label]) -> dict[int, Decision]:
    """One decision per action step."""
    by_step: dict[int, list[Label]] = {}
    for lb in current(labels):
        if lb.source in policy.order:
            by_step.setdefault(lb.step, []).append(lb)
    return {s: _decide_one(policy, s, by_step.get(s, [])) for s in steps}


def _source_verdict(source: str, labels: list[Label]) -> tuple[str, tuple[Label, ...]]:
    if source == "rule":
        masks = tuple(lb for lb in labels if lb.verdict == "mask")
        return ("mask", masks) if masks else ("keep", tuple(labels))
    latest = max(labels, key=lambda lb: lb.seq)
    return latest.verdict, (latest,)


def _decide_one(policy: Policy, step: int, labels: list[Label]) -> Decision:
    if not labels:
        return Decision(step, "keep", "default", "no label")
    if policy.mode == "keep-all":
        return Decision(step, "keep", "policy", "keep-all policy", (), tuple(labels))
    if policy.mode == "any-mask":
        masks = tuple(lb for lb in labels if lb.verdict == "mask")
        if masks:
            rest = tuple(lb for lb in labels if lb.verdict != "mask")
            return Decision(step, "mask", masks[0].source, _reasons(masks), masks, rest)
        return Decision(step, "keep", labels[0].source, _reasons(labels), tuple(labels))
    for source in policy.order:
        mine = [lb for lb in labels if lb.source == source]
        if not mine:
            continue
        verdict, deciding = _source_verdict(source, mine)
        if not deciding:  # only retracted rule masks: rules have nothing to say here
            continue
        overridden = tuple(lb for lb in labels if lb not in deciding)
        return Decision(step, verdict, source, _reasons(deciding), deciding, overridden)
    return Decision(step, "keep", "default", "no label in force", (), tuple(labels))


def _reasons(labels: Iterable[Label]) -> str:
    parts = []
    for lb in labels:
        who = f"{lb.rule}" if lb.source == "rule" else lb.author
        parts.append(f"{lb.source} {who}: {lb.reason}" if lb.reason else f"{lb.source} {who}")
    return "; ".join(parts)
