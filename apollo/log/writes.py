"""Writes that people and programs other than the agent make to a run's log.

Guidance, controls and labels from the CLI, the console and annotators all go through here,
so each carries who made it and is validated the same way.
"""

from __future__ import annotations

import uuid

from apollo.log import schema
from apollo.log.events import Event, Kind, NewEvent, RunRecord
from apollo.log.store import Store, UnknownRun, check_steerable

GUIDANCE_KINDS: tuple[str, ...] = ("knowledge", "strategy", "correction", "hint", "other")
MAX_GUIDANCE_CHARS = 4000


def _live_run(store: Store, run_id: str) -> RunRecord:
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRun(f"no run {run_id!r} (see `apollo runs`)")
    # Checked again inside the append transaction (Store.append); this is the early answer.
    check_steerable(run_id, run.status, [Kind.GUIDANCE])
    return run


def check_drift_step(run: RunRecord, drift_from_step: int) -> None:
    """A drift marks actions already taken: its step must be one the run has reached.
    (Steps only grow, so a step valid now stays valid when the guidance lands.)"""
    if drift_from_step < 1 or drift_from_step > run.step:
        taken = f"steps 1 to {run.step}" if run.step else "no steps yet"
        raise ValueError(
            f"drift_from_step {drift_from_step} is not a step run {run.id} has taken ({taken}); "
            "give the first step that went wrong, or leave it out"
        )


def _guidance(
    store: Store,
    run_id: str,
    author: str,
    text: str,
    kind: str,
    drift_from_step: int | None,
    urgent: bool,
    hint_id: str | None,
) -> NewEvent:
    """A checked guidance event for a live run (not yet appended)."""
    text = text.strip()
    if not text:
        raise ValueError("guidance text is empty; write what the agent should know or do")
    if len(text) > MAX_GUIDANCE_CHARS:
        raise ValueError(
            f"guidance is {len(text)} characters; keep it under {MAX_GUIDANCE_CHARS} (be short)"
        )
    if kind not in GUIDANCE_KINDS:
        raise ValueError(f"unknown guidance kind {kind!r}; use one of {', '.join(GUIDANCE_KINDS)}")
    run = _live_run(store, run_id)
    if drift_from_step is not None:
        check_drift_step(run, drift_from_step)
    payload: schema.Guidance = {
        "id": "g-" + uuid.uuid4().hex[:12],
        "author": author,
        "kind": kind,
        "text": text,
        "drift_from_step": drift_from_step,
        "urgent": urgent,
    }
    if hint_id is not None:
        payload["hint_id"] = hint_id
    return schema.GUIDANCE.new(payload, actor=author)


def post_guidance(
    store: Store,
    run_id: str,
    author: str,
    text: str,
    kind: str = "hint",
    drift_from_step: int | None = None,
    urgent: bool = False,
    hint_id: str | None = None,
) -> Event:
    """Queue guidance for a run; the agent delivers it at its next step boundary. The
    simulated annotator names the task's hint it posts (`hint_id`)."""
    event = _guidance(store, run_id, author, text, kind, drift_from_step, urgent, hint_id)
    return _append(store, run_id, event)


def post_control(store: Store, run_id: str, author: str, action: str) -> Event:
    """Pause, resume or stop a run; takes effect at the agent's next step boundary."""
    if action not in ("pause", "resume", "stop"):
        raise ValueError(f"unknown control {action!r}; use pause, resume or stop")
    _live_run(store, run_id)
    control = schema.CONTROL.new({"action": action, "author": author}, actor=author)
    return _append(store, run_id, control)


LABEL_VERDICTS: tuple[str, ...] = ("keep", "mask")
LABEL_SOURCES: tuple[str, ...] = ("human", "judge", "rule")
MAX_LABEL_REASON_CHARS = 2000
MAX_PRESENCE_S = 120.0


def post_label(
    store: Store,
    run_id: str,
    step: int,
    verdict: str,
    reason: str,
    author: str,
    source: str = "human",
    rule: str | None = None,
    model: str | None = None,
) -> Event:
    """Label one action (step) of a run keep or mask, with the reason (required to mask);
    supervision reads it. Labels are welcome on ended runs (review happens afterwards), but
    only for steps the run has taken. A judge's label names its `model`, a rule's its `rule`."""
    reason = reason.strip()
    if verdict not in LABEL_VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; use keep or mask")
    if source not in LABEL_SOURCES:
        raise ValueError(f"unknown label source {source!r}; use one of {', '.join(LABEL_SOURCES)}")
    if verdict == "mask" and not reason:
        raise ValueError("a mask needs a reason: say what was wrong with the action")
    if len(reason) > MAX_LABEL_REASON_CHARS:
        raise ValueError(
            f"the reason is {len(reason)} characters; keep it under {MAX_LABEL_REASON_CHARS}"
        )
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRun(f"no run {run_id!r} (see `apollo runs`)")
    if step < 1 or step > run.step:
        raise ValueError(
            f"run {run_id} has no action at step {step} (its actions are steps 1 to {run.step})"
        )
    payload: schema.Label = {
        "step": step,
        "verdict": verdict,
        "reason": reason,
        "source": source,
        "author": author,
    }
    if rule is not None:
        payload["rule"] = rule
    if model is not None:
        payload["model"] = model
    return _append(store, run_id, schema.LABEL.new(payload, actor=author, step=step))


def post_presence(store: Store, run_id: str, author: str, seconds: float) -> Event:
    """Record that an annotator spent `seconds` watching a run (the console reports it in
    short slices while the run view is visible, and 0 when watching starts), for the cost
    of human attention. The console credits at most the time since the annotator's previous
    report, measured from the reports' arrival (apollo/server/views.py)."""
    if not 0 <= seconds <= MAX_PRESENCE_S:
        raise ValueError(f"presence seconds must be from 0 to {MAX_PRESENCE_S:g}")
    if store.get_run(run_id) is None:
        raise UnknownRun(f"no run {run_id!r} (see `apollo runs`)")
    presence = schema.PRESENCE.new({"seconds": float(seconds)}, actor=author)
    return _append(store, run_id, presence)


def post_decision(
    store: Store, run_id: str, decision: schema.AnnotatorDecision, hint_kind: str | None = None
) -> Event:
    """Record what an LLM annotator decided at a step, under its identity; with `hint_kind`,
    its `hint` is queued as guidance of that kind in the same append (so the log never holds
    the hint without the decision that counts it), and the decision names it."""
    events: list[NewEvent] = []
    if hint_kind is not None:
        text = decision["hint"] or ""
        events.append(
            _guidance(store, run_id, decision["annotator"], text, hint_kind, None, False, None)
        )
        decision = {**decision, "guidance_id": schema.GUIDANCE.payload(events[0])["id"]}
    actor, step = decision["annotator"], decision["step"]
    events.append(schema.ANNOTATOR_DECISION.new(decision, actor=actor, step=step))
    return store.append(run_id, events)[-1]


def _append(store: Store, run_id: str, event: NewEvent) -> Event:
    return store.append(run_id, [event])[0]
