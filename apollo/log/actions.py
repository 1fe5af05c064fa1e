"""A run's actions, folded from its log: the one reading of what the agent did.

An action is one `act` model call that produced a reply (identified by its step), its tool
calls, their results (each paired with its call), the guidance delivered after it and the
labels on it. `ActionFold` applies events one at a time, so the live agent, a resumed one, the
console (which advances it by the events appended since it last looked), the simulated
annotator, supervision, export and progress all read the same actions the same way.

The fold reads the text of a blob only when it is given (`texts`): the assistant message of an
act call (for the tool calls' arguments and the reply's content) and the tool message of a
result (for its content). Readers pass the texts they need; `action_texts` fetches them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from apollo.log import schema
from apollo.log.events import Event, Kind
from apollo.log.outcome import fold_outcome
from apollo.log.store import Store

# Rough characters-per-token ratio, where no tokenizer counted (budget checks, estimates).
CHARS_PER_TOKEN = 3.5
# Tools whose repeated use with nothing new is polling.
POLL_TOOLS = frozenset({"session_output", "session_list", "sleep"})
# How many distinct (call, result) pairs a fold remembers to tell a repeated call: enough for
# the cycles weak models fall into, in constant memory however long the run.
RECENT_CALLS = 256
# Every tool result ends with the budget footer (step, time left), which differs from step to
# step (the agent's prompts/footer.txt); comparisons and displays of results ignore it.
_FOOTER = re.compile(r"\n\n\[step \d+/\d+ · [^\]]*\]\s*$")


def strip_footer(text: str) -> str:
    """A tool result without the budget footer the agent appends to every result."""
    return _FOOTER.sub("", text)


def call_digest(name: str, arguments: str | None, output: str) -> str:
    """A short digest of a call (tool, arguments as parsed when they parse) and its output
    text: equal digests are the same call with the same result (an observation's
    `call_digest`)."""
    args = parse_arguments(arguments)
    key = json.dumps([name, args if args is not None else arguments, output], sort_keys=True)
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def parse_arguments(raw: str | None) -> dict[str, Any] | None:
    """Tool-call arguments as the model wrote them (JSON text), parsed; None when they are
    not a JSON object. Empty arguments are no arguments."""
    try:
        args = json.loads(raw or "{}")
    except ValueError:
        return None
    return args if isinstance(args, dict) else None


@dataclass(slots=True)
class Streak:
    """A run of equal keys in a row: `push` a key per item (None breaks the run)."""

    key: object = None
    count: int = 0
    since: int | None = None  # the step the run began at
    label: str = ""  # what the run is of, in words, as given when it began

    def push(self, key: object, step: int | None = None, label: str = "") -> None:
        if key is None:
            self.key, self.count, self.since, self.label = None, 0, None, ""
        elif key == self.key:
            self.count += 1
        else:
            self.key, self.count, self.since, self.label = key, 1, step, label


@dataclass(slots=True)
class Result:
    """A tool result (or the note a reply without a valid tool call got)."""

    seq: int
    step: int
    tool_call_id: str | None
    tool: str | None
    message: str  # blob of the tool message
    error: bool
    malformed: bool
    interrupted: bool
    meta: dict[str, Any]
    content: str | None = None  # the message's text, when it was read

    @property
    def body(self) -> str:
        """The tool's own text: without the budget footer, and without the note on a call
        repeated with the same result, the paragraph the agent adds last ('' when it was
        not read)."""
        body = strip_footer(self.content or "")
        return body.rsplit("\n\n", 1)[0] if "repeated_call" in self.meta else body

    def learned(self) -> bool:
        """Whether a poll learned something: new output, an ended session, guidance, an error."""
        meta = self.meta
        if meta.get("woke_on_guidance") or meta.get("new_bytes") or self.error:
            return True
        return self.tool == "session_output" and meta.get("running") is False


@dataclass(slots=True)
class ToolCall:
    """One tool call of an action, with its result once the log has it."""

    id: str
    name: str
    arguments: str | None = None  # the raw JSON text; None when the reply was not read
    result: Result | None = None
    # The parsed arguments (None when they are not a JSON object, or were not read).
    args: dict[str, Any] | None = None


@dataclass(slots=True)
class Label:
    """One verdict on one action, with its provenance."""

    step: int
    verdict: str
    reason: str
    source: str
    author: str
    seq: int
    ts: float
    rule: str | None = None
    model: str | None = None

    def origin(self) -> tuple[str, str, str]:
        """Labels of the same origin replace each other: a rule per rule name, a judge per
        model, a human per person."""
        return (self.source, self.rule or self.author, str(self.step))

    @classmethod
    def of(cls, ev: Event) -> Label:
        """The label a `label` event carries."""
        p = schema.LABEL.payload(ev)
        return cls(
            step=int(p["step"]),
            verdict=p["verdict"],
            reason=p["reason"] or "",
            source=p["source"],
            author=p["author"] or ev.actor,
            seq=ev.seq,
            ts=ev.ts,
            rule=p.get("rule"),
            model=p.get("model"),
        )


@dataclass(slots=True)
class GuidanceNote:
    """Guidance and its life: queued, then delivered at a step or cancelled."""

    id: str
    seq: int
    author: str
    kind: str
    text: str
    urgent: bool = False
    drift_from_step: int | None = None
    hint_id: str | None = None
    delivered_step: int | None = None
    message: str | None = None  # blob of the user turn it became
    cancelled: bool = False

    @property
    def state(self) -> str:
        if self.delivered_step is not None:
            return "delivered"
        return "cancelled" if self.cancelled else "queued"


@dataclass(slots=True)
class Action:
    """An assistant turn of an `act` call and what followed it."""

    step: int
    seq: int
    output: str  # blob of the assistant message
    calls: list[ToolCall]
    usage: dict[str, int]
    parse_error: str | None
    message: dict[str, Any] | None = None  # the assistant message, when it was read
    chars: int = 0  # length of its encoded text, when it was read
    results: list[Result] = field(default_factory=list)
    guidance: list[GuidanceNote] = field(default_factory=list)  # delivered after it
    labels: list[Label] = field(default_factory=list)

    @property
    def content(self) -> str:
        return str((self.message or {}).get("content") or "")

    @property
    def reasoning(self) -> str | None:
        return (self.message or {}).get("reasoning_content")

    @property
    def tokens(self) -> int:
        """Completion tokens: the model's count, else estimated from the reply's characters."""
        return int(self.usage.get("completion_tokens") or self.chars / CHARS_PER_TOKEN)

    def signature(self) -> str:
        """The action's tool calls (names and arguments), comparable across steps."""
        return json.dumps(
            [[c.name, c.args if c.args is not None else c.arguments] for c in self.calls],
            sort_keys=True,
        )

    def outcome(self) -> str:
        """The action's results without footers, comparable across steps."""
        return json.dumps([r.body for r in self.results])

    def polled_nothing(self) -> bool:
        """Whether the action only polled and learned nothing."""
        return (
            bool(self.calls)
            and all(c.name in POLL_TOOLS for c in self.calls)
            and not any(r.learned() for r in self.results)
        )


@dataclass(slots=True)
class SessionState:
    """A session the agent started, as its tool results tell."""

    id: str
    command: str | None
    running: bool = True
    exit_code: int | None = None


@dataclass(slots=True)
class Killed:
    """A session killed while it was still running."""

    session: str
    step: int
    runtime_s: float | None


@dataclass
class ActionFold:
    """Everything a run's log says about its actions, advanced one event at a time.

    With `history` off, only the latest two actions are kept (without their reply's text)
    and results are not listed: what a reader that follows a run needs (the agent, the
    console, the simulated annotator), in constant memory however long the run; streaks,
    sessions, guidance, labels and submissions are the same."""

    history: bool = True

    started: schema.RunStarted | None = None
    actions: list[Action] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)  # every result, in log order
    guidance: dict[str, GuidanceNote] = field(default_factory=dict)
    submissions: list[schema.Submission] = field(default_factory=list)
    submission_steps: list[int | None] = field(default_factory=list)
    outcome: schema.RunFinished | None = None  # how the run ended (None while it has not)
    last_step: int = 0  # the highest step with an action
    work_s: float = 0.0
    # Calls of the latest action that have no result yet: a crash cut them.
    pending: dict[str, ToolCall] = field(default_factory=dict)
    # The parse error (or "") of an act reply without a tool call not yet answered.
    uncorrected: str | None = None
    # Steps whose cut tool calls were answered "interrupted": they do not spend the budget.
    interrupted_steps: set[int] = field(default_factory=set)
    finish_summary: str | None = None  # the agent called finish; the run is ending
    # Per session, how much of its output the log shows the agent has been given.
    session_cursors: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, SessionState] = field(default_factory=dict)
    killed: Killed | None = None  # the latest session killed while running
    error_streak: Streak = field(default_factory=Streak)  # failing results in a row
    repeat_streak: Streak = field(default_factory=Streak)  # same tool calls in a row
    # call_digest -> the latest step that made that call with that result (RECENT_CALLS kept).
    recent_calls: OrderedDict[str, int] = field(default_factory=OrderedDict)
    # Every label, in log order (an action dropped without history takes none with it).
    _all_labels: list[Label] = field(default_factory=list)
    _labels: dict[int, list[Label]] = field(default_factory=dict)  # labels before their action

    def apply(self, ev: Event, texts: Mapping[str, str] | None = None) -> None:
        """Apply one event; `texts` may hold the text of blobs it refers to."""
        work_s = ev.payload.get("work_s")  # a float in the kinds the agent writes
        if type(work_s) is float and work_s > self.work_s:
            self.work_s = work_s
        # One table lookup per event: this runs for every event of every log read.
        handle = _HANDLERS.get(ev.kind)
        if handle is not None:
            handle(self, ev, texts)

    # The handlers of the two kinds of every step: the table has checked the kind.
    def _model_call(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        call = cast(schema.ModelCall, ev.payload)
        if schema.is_action(call):
            self._act(ev, call, texts)

    def _observation(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        self._observe(ev, cast(schema.Observation, ev.payload), texts)

    def _guidance(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        g = schema.GUIDANCE.payload(ev)
        self.guidance[g["id"]] = GuidanceNote(
            id=g["id"],
            seq=ev.seq,
            author=ev.actor,
            kind=g["kind"],
            text=g["text"],
            urgent=bool(g["urgent"]),
            drift_from_step=g["drift_from_step"],
            hint_id=g.get("hint_id"),
        )

    def _delivered(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        d = schema.GUIDANCE_DELIVERED.payload(ev)
        note = self.guidance.get(d["guidance_id"])
        if note is not None:
            note.delivered_step, note.message = d["step"], d["message"]
            if self.actions:
                self.actions[-1].guidance.append(note)

    def _cancelled(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        note = self.guidance.get(schema.GUIDANCE_CANCELLED.payload(ev)["guidance_id"])
        if note is not None:
            note.cancelled = True

    def _submission(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        self.submissions.append(schema.SUBMISSION.payload(ev))
        self.submission_steps.append(ev.step)

    def _sessions_closed(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        for closed in schema.SESSIONS_CLOSED.payload(ev)["sessions"]:
            self.session_cursors[closed["id"]] = closed["cursor"]

    def _started(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        self.started = schema.RUN_STARTED.payload(ev)

    def _ended_or_resumed(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        self.outcome = fold_outcome(self.outcome, ev)

    def _act(self, ev: Event, p: schema.ModelCall, texts: Mapping[str, str] | None) -> None:
        step = ev.step or 0
        text = texts.get(p["output"]) if texts else None
        if text is None:
            message, chars = None, 0
            calls = [ToolCall(c["id"], c["name"]) for c in p.get("calls", ())]
        else:
            message, chars = json.loads(text), len(text)
            arguments = call_arguments(message)
            calls = [_call(c["id"], c["name"], arguments.get(c["id"])) for c in p["calls"]]
        action = Action(
            step,
            ev.seq,
            p["output"],
            calls,
            p.get("usage") or {},
            p.get("parse_error"),
            message,
            chars,
            labels=self._labels.pop(step) if step in self._labels else [],
        )
        if self.history:
            self.actions.append(action)
        else:
            self.actions = [*self.actions[-1:], action]
        self.last_step = max(self.last_step, step)
        self.pending = {c.id: c for c in calls}
        self.uncorrected = None if calls else (p.get("parse_error") or "")
        if calls and message is not None:
            # Same tools with the same arguments, ignoring call ids and the model's prose.
            names = ", ".join(c.name for c in calls)
            self.repeat_streak.push(action.signature(), step, names)
        if not self.history:
            action.message = None

    def _observe(self, ev: Event, p: schema.Observation, texts: Mapping[str, str] | None) -> None:
        text = texts.get(p["message"]) if texts else None
        meta = p.get("meta") or {}
        result = Result(
            seq=ev.seq,
            step=ev.step or 0,
            tool_call_id=p["tool_call_id"],
            tool=p["tool"],
            message=p["message"],
            error=bool(p["error"]),
            malformed=bool(p.get("malformed")),
            interrupted=bool(p.get("interrupted")),
            meta=meta,
            content=str(json.loads(text).get("content") or "") if text is not None else None,
        )
        if self.history:
            self.results.append(result)
        if self.actions:
            self.actions[-1].results.append(result)
        self.uncorrected = None
        self.error_streak.push("error" if result.error else None, result.step)
        # A result answers a call of the latest action (a crash's cut calls are answered
        # before the next model call), so pairing needs only the calls still pending.
        call = self.pending.pop(p["tool_call_id"] or "", None)
        if call is not None:
            call.result = result
        if (digest := p.get("call_digest")) is not None:
            self._remember_call(digest, result.step)
        if result.interrupted:
            self.interrupted_steps.add(result.step)
        if "finish" in meta:
            self.finish_summary = meta["finish"]
        sid = meta.get("session")
        if sid is not None and "cursor" in meta:
            self.session_cursors[sid] = meta["cursor"]
        if sid is not None:
            self._track_session(result, call, sid)

    def _remember_call(self, key: str, step: int) -> None:
        self.recent_calls[key] = step
        self.recent_calls.move_to_end(key)
        if len(self.recent_calls) > RECENT_CALLS:
            self.recent_calls.popitem(last=False)

    def _track_session(self, result: Result, call: ToolCall | None, sid: str) -> None:
        meta, tool = result.meta, result.tool
        if tool == "session_start" and sid and not result.error:
            args = (call.args if call else None) or {}
            self.sessions[sid] = SessionState(sid, args.get("command"))
        elif tool == "session_output" and sid in self.sessions:
            self.sessions[sid].running = bool(meta.get("running"))
            self.sessions[sid].exit_code = meta.get("exit_code")
        elif tool == "session_kill" and sid in self.sessions:
            self.sessions[sid].running = False
            if meta.get("was_running"):
                self.killed = Killed(sid, result.step, meta.get("runtime_s"))
        elif tool == "session_list" and isinstance(meta.get("running"), list):
            for s in self.sessions.values():
                s.running = s.id in meta["running"]

    def _label(self, ev: Event, texts: Mapping[str, str] | None) -> None:
        label = Label.of(ev)
        self._all_labels.append(label)
        for action in reversed(self.actions):
            if action.step == label.step:
                action.labels.append(label)
                return
            if action.step < label.step:
                break
        # A label written before the fold saw its action (a partial read): kept for it.
        self._labels.setdefault(label.step, []).append(label)

    # -- queries --------------------------------------------------------------------------
    def pending_guidance(self) -> list[GuidanceNote]:
        """Guidance written but not yet delivered, oldest first."""
        return sorted(
            (g for g in self.guidance.values() if g.delivered_step is None and not g.cancelled),
            key=lambda g: g.seq,
        )

    def labels(self) -> list[Label]:
        """Every label on the run's actions, oldest first."""
        return list(self._all_labels)

    def failed_before(self, name: str, arguments: str) -> Result | None:
        """The failed result of this same call (tool and arguments) in the action before the
        latest one, if it made it: the model is repeating a call that failed."""
        if len(self.actions) < 2:
            return None
        args = parse_arguments(arguments)
        for call in self.actions[-2].calls:
            same = call.arguments == arguments or (args is not None and call.args == args)
            if call.name == name and same and call.result is not None:
                result = call.result
                return result if result.error and not result.interrupted else None
        return None

    def same_call_before(self, digest: str) -> int | None:
        """The latest earlier step that made this same call and got this same result (their
        `call_digest`), if the fold remembers one: the model is going round in circles."""
        return self.recent_calls.get(digest)

    def steps(self) -> list[int]:
        """Steps that hold an action, in order."""
        return [a.step for a in self.actions]


# What each kind of event does to the fold (kinds not listed say nothing about actions).
_HANDLERS: dict[str, Callable[[ActionFold, Event, Mapping[str, str] | None], None]] = {
    Kind.MODEL_CALL: ActionFold._model_call,
    Kind.OBSERVATION: ActionFold._observation,
    Kind.GUIDANCE: ActionFold._guidance,
    Kind.GUIDANCE_DELIVERED: ActionFold._delivered,
    Kind.GUIDANCE_CANCELLED: ActionFold._cancelled,
    Kind.LABEL: ActionFold._label,
    Kind.SUBMISSION: ActionFold._submission,
    Kind.SESSIONS_CLOSED: ActionFold._sessions_closed,
    Kind.RUN_STARTED: ActionFold._started,
    Kind.RUN_FINISHED: ActionFold._ended_or_resumed,
    Kind.RUN_RESUMED: ActionFold._ended_or_resumed,
}


def _call(call_id: str, name: str, arguments: str | None) -> ToolCall:
    """A tool call of a reply that was read, its arguments parsed once."""
    args = parse_arguments(arguments) if arguments is not None else None
    return ToolCall(call_id, name, arguments, args=args)


def call_arguments(message: Mapping[str, Any] | None) -> dict[str, str]:
    """Call id -> raw JSON arguments of an assistant message's tool calls."""
    if message is None:
        return {}
    return {
        tc["id"]: (tc.get("function") or {}).get("arguments") or ""
        for tc in message.get("tool_calls") or []
        if tc.get("id")
    }


def action_texts(store: Store, events: Iterable[Event], results: bool = False) -> dict[str, str]:
    """The texts the fold reads for `events`: every action's reply, and with `results` every
    tool result's message too."""
    wanted: list[str] = []
    for ev in events:
        if ev.kind == Kind.MODEL_CALL:
            call = schema.MODEL_CALL.payload(ev)
            if schema.is_action(call):
                wanted.append(call["output"])
        elif results and ev.kind == Kind.OBSERVATION:
            wanted.append(schema.OBSERVATION.payload(ev)["message"])
    return store.get_blobs(wanted) if wanted else {}


def fold_actions(events: Sequence[Event], texts: Mapping[str, str] | None = None) -> ActionFold:
    """The fold of a whole log (or a part of one)."""
    fold = ActionFold()
    for ev in events:
        fold.apply(ev, texts)
    return fold
