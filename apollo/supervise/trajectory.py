"""A run's actions read back from its log, for the rules, the judge and the report.

An action is one `act` model call that produced an assistant turn (identified by its step),
together with the tool results it got and the guidance delivered just before it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from apollo.log.events import Event, Kind
from apollo.log.outcome import final_outcome
from apollo.log.store import Store, StoreError

# Every tool result ends with the budget footer (step, time left), which differs from step to
# step; comparisons of results ignore it.
_FOOTER = re.compile(r"\n\n\[step \d+/\d+ · [^\]]*\]\s*$")
CHARS_PER_TOKEN = 3.5


def strip_footer(text: str) -> str:
    """A tool result without the budget footer the agent appends to every result."""
    return _FOOTER.sub("", text)


@dataclass(slots=True)
class ToolUse:
    """One tool call of an action; `args` is the parsed arguments (None when not JSON)."""

    id: str
    name: str
    arguments: str
    args: dict[str, Any] | None


@dataclass(slots=True)
class Result:
    """One tool result (or the note a malformed reply got)."""

    tool_call_id: str | None
    tool: str | None
    content: str
    error: bool
    malformed: bool
    interrupted: bool
    meta: dict[str, Any]


@dataclass(slots=True)
class GuidanceNote:
    """A guidance event and where it was delivered."""

    id: str
    author: str
    kind: str
    text: str
    drift_from_step: int | None
    delivered_step: int | None
    seq: int


@dataclass(slots=True)
class Action:
    """An assistant turn of an `act` call and what followed it."""

    step: int
    seq: int
    content: str
    reasoning: str | None
    calls: list[ToolUse]
    results: list[Result] = field(default_factory=list)
    parse_error: str | None = None
    tokens: int = 0  # completion tokens (the model's usage, else estimated from characters)

    def signature(self) -> str:
        """The action's tool calls (names and arguments), comparable across steps."""
        return json.dumps(
            [[c.name, c.args if c.args is not None else c.arguments] for c in self.calls],
            sort_keys=True,
        )

    def outcome(self) -> str:
        """The action's results without footers, comparable across steps."""
        return json.dumps([strip_footer(r.content) for r in self.results])


@dataclass
class Trajectory:
    """Everything supervision looks at in one run."""

    run_id: str
    task: str
    task_text: str
    status: str | None
    actions: list[Action]
    guidance: list[GuidanceNote]
    submissions: list[dict[str, Any]]
    finish_reason: str | None


def act_steps(events: list[Event]) -> list[int]:
    """Steps that hold an action (an `act` call with an assistant turn), in order."""
    return [
        ev.step or 0
        for ev in events
        if ev.kind == Kind.MODEL_CALL
        and ev.payload.get("purpose") == "act"
        and ev.payload.get("output")
    ]


def load_trajectory(store: Store, run_id: str) -> Trajectory:
    """Read a run's actions, results, guidance and outcomes from its log."""
    run = store.get_run(run_id)
    if run is None:
        raise StoreError(f"no run {run_id!r} (see `apollo runs`)")
    events = store.events(run_id)
    blobs = [
        ev.payload[key]
        for ev in events
        for key in ("output", "message")
        if ev.kind in (Kind.MODEL_CALL, Kind.OBSERVATION)
        and ev.payload.get(key)
        and (ev.kind == Kind.OBSERVATION or ev.payload.get("purpose") == "act")
    ]
    started = next((ev.payload for ev in events if ev.kind == Kind.RUN_STARTED), None)
    if started and len(started["messages"]) > 1:
        blobs.append(started["messages"][1])
    texts = store.get_blobs(blobs)
    task_text = json.loads(texts[started["messages"][1]])["content"] if blobs and started else ""
    actions: list[Action] = []
    guidance: dict[str, GuidanceNote] = {}
    submissions: list[dict[str, Any]] = []
    current: Action | None = None
    for ev in events:
        p = ev.payload
        if ev.kind == Kind.MODEL_CALL and p.get("purpose") == "act" and p.get("output"):
            message = json.loads(texts[p["output"]])
            calls = []
            for tc in message.get("tool_calls") or []:
                raw = tc["function"].get("arguments") or ""
                try:
                    parsed = json.loads(raw or "{}")
                except ValueError:
                    parsed = None
                calls.append(
                    ToolUse(
                        tc["id"],
                        tc["function"]["name"],
                        raw,
                        parsed if isinstance(parsed, dict) else None,
                    )
                )
            content = message.get("content") or ""
            usage = p.get("usage") or {}
            tokens = usage.get("completion_tokens") or int(
                len(texts[p["output"]]) / CHARS_PER_TOKEN
            )
            current = Action(
                ev.step or 0,
                ev.seq,
                content,
                message.get("reasoning_content"),
                calls,
                parse_error=p.get("parse_error"),
                tokens=int(tokens),
            )
            actions.append(current)
        elif ev.kind == Kind.OBSERVATION and current is not None:
            current.results.append(
                Result(
                    p.get("tool_call_id"),
                    p.get("tool"),
                    json.loads(texts[p["message"]])["content"] or "",
                    bool(p.get("error")),
                    bool(p.get("malformed")),
                    bool(p.get("interrupted")),
                    p.get("meta") or {},
                )
            )
        elif ev.kind == Kind.GUIDANCE:
            guidance[p["id"]] = GuidanceNote(
                p["id"],
                ev.actor,
                p.get("kind", "hint"),
                p["text"],
                p.get("drift_from_step"),
                None,
                ev.seq,
            )
        elif ev.kind == Kind.GUIDANCE_DELIVERED and p["guidance_id"] in guidance:
            guidance[p["guidance_id"]].delivered_step = p["step"]
        elif ev.kind == Kind.SUBMISSION:
            submissions.append({"step": ev.step, **p})
    outcome = final_outcome(events) or {}
    return Trajectory(
        run_id,
        run.task,
        task_text,
        outcome.get("status"),
        actions,
        sorted(guidance.values(), key=lambda g: g.seq),
        submissions,
        outcome.get("reason"),
    )
