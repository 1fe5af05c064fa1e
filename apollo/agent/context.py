"""The agent's context and state as a fold over the run's events.

The live agent and a resumed one build their context by applying the same events in the same
order, so a resumed run sees exactly the context it would have had (docs/design.md
"Principles": one log, many views).
Every message that enters the context is a blob of canonical JSON; events reference it by id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apollo.log import schema
from apollo.log.actions import CHARS_PER_TOKEN, ActionFold, action_texts
from apollo.log.calls import apply_input
from apollo.log.events import Event, Kind
from apollo.log.store import Store


@dataclass(slots=True)
class Entry:
    """One message of the context. `step` 0 is the preamble (system, task, summary)."""

    step: int
    blob: str
    text: str | None = None


@dataclass
class ContextView:
    """The messages the model sees next and the run state the agent needs, derived from
    events only: what the agent did comes from the run's `ActionFold`, and this view adds
    the context window, the delta chain of model inputs and the controls."""

    # What the agent compares a new call with is the action before it: two are kept.
    actions: ActionFold = field(default_factory=lambda: ActionFold(history=False))
    entries: list[Entry] = field(default_factory=list)
    last_seq: int = 0
    last_call_seq: int | None = None  # the latest model_call of the current window
    last_call_ids: list[str] = field(default_factory=list)
    paused: bool = False
    stop_requested: bool = False
    summaries: int = 0

    # -- folding --------------------------------------------------------------------------
    def apply(self, ev: Event, texts: dict[str, str] | None = None) -> None:
        """Apply one event. `texts` may hold the JSON of blobs just written (saves a read)."""
        self.last_seq = ev.seq
        handle = _HANDLERS.get(ev.kind)  # one table lookup: this runs for every event replayed
        # The fold reads the agent's replies (for the calls' arguments), never its results.
        self.actions.apply(ev, texts if handle is ContextView._model_call else None)
        if handle is not None:
            handle(self, ev, texts)

    def _model_call(self, ev: Event, texts: dict[str, str] | None) -> None:
        call = schema.MODEL_CALL.payload(ev)
        self.last_call_ids = apply_input(self.last_call_seq, self.last_call_ids, call["input"])
        self.last_call_seq = ev.seq
        if schema.is_action(call):
            self.entries.append(self._entry(ev.step or 0, call["output"], texts))

    def _observation(self, ev: Event, texts: dict[str, str] | None) -> None:
        message = schema.OBSERVATION.payload(ev)["message"]
        self.entries.append(self._entry(ev.step or 0, message, texts))

    def _started(self, ev: Event, texts: dict[str, str] | None) -> None:
        started = schema.RUN_STARTED.payload(ev)
        self.entries = [self._entry(0, b, texts) for b in started["messages"]]

    def _delivered(self, ev: Event, texts: dict[str, str] | None) -> None:
        delivered = schema.GUIDANCE_DELIVERED.payload(ev)
        self.entries.append(self._entry(delivered["step"], delivered["message"], texts))

    def _summary(self, ev: Event, texts: dict[str, str] | None) -> None:
        summary = schema.SUMMARY.payload(ev)
        last = summary["covers"][1]
        self.summaries += 1
        kept = [e for e in self.entries if e.step > last]
        head = self.entries[: self._preamble_len()]
        self.entries = head + [self._entry(0, b, texts) for b in summary["messages"]] + kept
        # The next call starts a new window: no delta against the old one.
        self.last_call_seq = None
        self.last_call_ids = []

    def _control(self, ev: Event, texts: dict[str, str] | None) -> None:
        action = schema.CONTROL.payload(ev)["action"]
        if action == "pause":
            self.paused = True
        elif action == "resume":
            self.paused = False
        elif action == "stop":
            self.stop_requested = True

    def _preamble_len(self) -> int:
        """System prompt and task message: always the first two entries."""
        started = self.actions.started
        return len(started["messages"]) if started else 0

    @staticmethod
    def _entry(step: int, blob: str, texts: dict[str, str] | None) -> Entry:
        return Entry(step, blob, texts.get(blob) if texts else None)

    # -- queries --------------------------------------------------------------------------
    def materialize(self, store: Store) -> None:
        """Fetch the text of entries folded without it (after a replay)."""
        missing = [e.blob for e in self.entries if e.text is None]
        if not missing:
            return
        got = store.get_blobs(missing)
        for e in self.entries:
            if e.text is None:
                e.text = got[e.blob]

    def message_texts(self) -> list[str]:
        """The encoded messages, in order (call `materialize` first after a replay)."""
        out = []
        for e in self.entries:
            assert e.text is not None, "context entry not materialized"
            out.append(e.text)
        return out

    def token_estimate(self) -> int:
        return int(sum(len(e.text or "") for e in self.entries) / CHARS_PER_TOKEN)

    def submissions(self) -> int:
        """Submissions the agent made (the final evaluation at the end is not one)."""
        return sum(1 for s in self.actions.submissions if not s["final"])

    def final_scored(self) -> bool:
        """Whether the run's final evaluation is in the log."""
        return any(s["final"] for s in self.actions.submissions)

    def window_steps(self) -> list[int]:
        """Steps whose messages are in the context verbatim, in order."""
        return sorted({e.step for e in self.entries if e.step > 0})


# What each kind of event does to the context (the rest reaches it through the fold).
_HANDLERS: dict[str, Callable[[ContextView, Event, dict[str, str] | None], None]] = {
    Kind.MODEL_CALL: ContextView._model_call,
    Kind.OBSERVATION: ContextView._observation,
    Kind.RUN_STARTED: ContextView._started,
    Kind.GUIDANCE_DELIVERED: ContextView._delivered,
    Kind.SUMMARY: ContextView._summary,
    Kind.CONTROL: ContextView._control,
}


def replay(store: Store, run_id: str) -> ContextView:
    """Rebuild a run's context view from its log. Of the replies, only the last two are
    read: what the agent compares a new call with is the action before it."""
    view = ContextView()
    events = store.events(run_id)
    texts = action_texts(store, _last_actions(events, 2))
    for ev in events:
        view.apply(ev, texts)
    view.materialize(store)
    return view


def _last_actions(events: list[Event], n: int) -> list[Event]:
    """The last `n` act calls that made an action, oldest first (looked for from the end)."""
    found: list[Event] = []
    for ev in reversed(events):
        if len(found) == n:
            break
        if (call := schema.MODEL_CALL.of(ev)) is not None and schema.is_action(call):
            found.append(ev)
    return found[::-1]
