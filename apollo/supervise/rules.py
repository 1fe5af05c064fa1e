"""Rules: cheap, deterministic verdicts on actions that are clearly not worth imitating.

Each rule has a name and a reason text and only ever masks. Rule labels are written to the log
(source `rule`, author `rules`); `sync_rule_labels` makes that idempotent and retracts a rule's
mask (with a `keep` label of the same rule) when a later pass no longer fires it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from apollo.log.actions import Action, Label, Streak
from apollo.log.events import Event
from apollo.log.store import Store
from apollo.log.writes import post_label
from apollo.supervise.labels import current, read_labels
from apollo.supervise.trajectory import Trajectory

RULES_AUTHOR = "rules"
_GIT_RESTORE = re.compile(r"\bgit\s+(?:checkout\s+(?:HEAD\s+)?--|restore)\s+(?P<paths>[^;&|]+)")


@dataclass(frozen=True)
class RuleConfig:
    """Thresholds of the rules."""

    # An action undone within this many steps (a session killed, a file restored) is masked.
    undo_window: int = 5
    # Consecutive polls that bring nothing new allowed before the following ones are masked.
    poll_limit: int = 3


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule firing on one action."""

    step: int
    rule: str
    reason: str


@dataclass(frozen=True)
class Rule:
    """A named rule; `check` yields its hits on a trajectory."""

    name: str
    reason: str
    check: Callable[[Trajectory, RuleConfig], Iterator[Hit]]


def _tool_error(traj: Trajectory, cfg: RuleConfig) -> Iterator[Hit]:
    for a in traj.actions:
        # A crash interrupting a call is not the agent's fault; malformed calls have their rule.
        failed = [r for r in a.results if r.error and not r.malformed and not r.interrupted]
        failed = [r for r in failed if not r.meta.get("bad_arguments")]
        if failed:
            tools = ", ".join(sorted({r.tool or "?" for r in failed}))
            yield Hit(a.step, "tool_error", f"the tool call failed ({tools})")


def _malformed(traj: Trajectory, cfg: RuleConfig) -> Iterator[Hit]:
    for a in traj.actions:
        if any(r.malformed for r in a.results) or a.parse_error:
            yield Hit(a.step, "malformed_call", "no valid tool call in the reply")
        elif any(r.meta.get("bad_arguments") for r in a.results) or any(
            c.args is None for c in a.calls
        ):
            yield Hit(a.step, "malformed_call", "a tool call with invalid arguments")


def _repeat(traj: Trajectory, cfg: RuleConfig) -> Iterator[Hit]:
    prev: Action | None = None
    prev_signature = ""
    for a in traj.actions:
        signature = a.signature()  # once per action: it parses the calls' arguments
        if (
            prev is not None
            and a.calls
            and signature == prev_signature
            and a.outcome() == prev.outcome()
        ):
            yield Hit(
                a.step,
                "exact_repeat",
                f"repeats step {prev.step} exactly (same call, same result)",
            )
        prev, prev_signature = a, signature


def _undone(traj: Trajectory, cfg: RuleConfig) -> Iterator[Hit]:
    started: dict[str, int] = {}  # session id -> step that started it
    # Per path, the changes made to it: (step, content before or None when unknown, edit).
    changes: dict[str, list[tuple[int, str | None, tuple[str, str] | None]]] = {}
    known: dict[str, str] = {}  # path -> the content the log shows it has
    for a in traj.actions:
        for call in a.calls:
            result, args = call.result, call.args or {}
            if result is None or result.error:
                continue
            meta = result.meta
            path = args.get("path") if isinstance(args.get("path"), str) else None
            if call.name == "session_start" and meta.get("session"):
                started[str(meta["session"])] = a.step
            elif call.name == "session_kill" and meta.get("was_running"):
                first = started.pop(str(args.get("id")), None)
                if first is not None and a.step - first <= cfg.undo_window:
                    yield Hit(
                        first, "undone", f"the session it started was killed at step {a.step}"
                    )
            elif call.name in ("write_file", "edit_file") and path is not None:
                before = known.get(path)
                edit = None
                if call.name == "write_file":
                    after: str | None = str(args.get("content", ""))
                else:
                    edit = (str(args.get("old", "")), str(args.get("new", "")))
                    after = before.replace(edit[0], edit[1], 1) if before is not None else None
                for step, prior, prior_edit in changes.get(path, []):
                    if a.step - step > cfg.undo_window:
                        continue
                    restored = prior is not None and prior == after
                    # Without the file's content, an edit straight back still shows the undo.
                    reverted = edit is not None and prior_edit == (edit[1], edit[0])
                    if restored or reverted:
                        yield Hit(step, "undone", f"the file was restored at step {a.step}")
                changes.setdefault(path, []).append((a.step, before, edit))
                if after is None:
                    known.pop(path, None)
                else:
                    known[path] = after
            elif call.name == "run":
                match = _GIT_RESTORE.search(str(args.get("command", "")))
                for name in match.group("paths").split() if match else []:
                    for step, _, _ in changes.get(name.strip("'\""), []):
                        if 0 < a.step - step <= cfg.undo_window:
                            yield Hit(step, "undone", f"the file was restored at step {a.step}")


def _idle(traj: Trajectory, cfg: RuleConfig) -> Iterator[Hit]:
    polls = Streak()
    for a in traj.actions:
        polls.push("poll" if a.polled_nothing() else None, a.step)
        if polls.count > cfg.poll_limit:
            yield Hit(a.step, "idle_polling", f"poll {polls.count} in a row with nothing new")


def _drift(traj: Trajectory, cfg: RuleConfig) -> Iterator[Hit]:
    steps = [a.step for a in traj.actions]
    for g in traj.guidance:
        if g.drift_from_step is None or g.delivered_step is None:
            continue
        for step in steps:
            # The delivery step's own action already answers the guidance: it is kept.
            if g.drift_from_step <= step < g.delivered_step:
                yield Hit(
                    step,
                    "drift",
                    f"{g.author} said the run drifted from step {g.drift_from_step} "
                    f"(guidance {g.id}, delivered at step {g.delivered_step})",
                )


RULES: tuple[Rule, ...] = (
    Rule("tool_error", "the tool call failed", _tool_error),
    Rule("malformed_call", "the reply held no valid tool call", _malformed),
    Rule("exact_repeat", "the same call as the previous step, with the same result", _repeat),
    Rule(
        "undone", "undone soon after (a session killed right after start, a file restored)", _undone
    ),
    Rule("idle_polling", "polling with nothing new, beyond the limit", _idle),
    Rule(
        "drift", "between the step an annotator said the run drifted from and the guidance", _drift
    ),
)
RULE_NAMES = tuple(r.name for r in RULES)


def apply_rules(
    traj: Trajectory, config: RuleConfig | None = None, only: set[str] | None = None
) -> list[Hit]:
    """Every rule hit on a trajectory, one per (step, rule), ordered by step."""
    cfg = config or RuleConfig()
    hits: dict[tuple[int, str], Hit] = {}
    for rule in RULES:
        if only is not None and rule.name not in only:
            continue
        for hit in rule.check(traj, cfg):
            hits.setdefault((hit.step, hit.rule), hit)
    return sorted(hits.values(), key=lambda h: (h.step, RULE_NAMES.index(h.rule)))


def sync_rule_labels(
    store: Store, traj: Trajectory, hits: list[Hit], labels: list[Label] | None = None
) -> list[Event]:
    """Write the rule labels the log lacks: a mask for each new hit, a keep for each rule mask
    in force that no longer fires. Running it twice writes nothing the second time."""
    in_force = {
        (lb.step, lb.rule): lb
        for lb in current(labels if labels is not None else read_labels(store, traj.run_id))
        if lb.source == "rule"
    }
    written = []
    fired = {(h.step, h.rule) for h in hits}
    for h in hits:
        old = in_force.get((h.step, h.rule))
        if old is None or old.verdict != "mask" or old.reason != h.reason:
            written.append(
                post_label(
                    store,
                    traj.run_id,
                    h.step,
                    "mask",
                    h.reason,
                    RULES_AUTHOR,
                    "rule",
                    h.rule,
                )
            )
    for (step, rule), old in in_force.items():
        if old.verdict == "mask" and (step, rule) not in fired:
            written.append(
                post_label(
                    store,
                    traj.run_id,
                    step,
                    "keep",
                    "the rule no longer fires",
                    RULES_AUTHOR,
                    "rule",
                    rule,
                )
            )
    return written
