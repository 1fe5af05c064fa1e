"""Log -> samples. A sample is a context window: exactly the messages a model call saw, plus
the assistant turn it produced.

Within a window every act call's input extends the previous call's input and output, so the
window's last act call (its decoded input and its output) holds every earlier assistant turn
in place; that prefix property is checked for each call and a log that breaks it fails loudly.
A summary starts a new window. Each assistant turn produced by an act call carries the weight
of the policy's decision on its step; every other message is context.

Runs are read one at a time and only one window's messages are decoded at once, so memory does
not grow with the store or the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from apollo.log import schema
from apollo.log.actions import fold_actions
from apollo.log.calls import apply_input
from apollo.log.events import Event, Kind, RunRecord
from apollo.log.store import Store, StoreError
from apollo.supervise.policy import Decision, Policy, decide


class ExportError(Exception):
    """The log cannot be turned into exact samples (a broken prefix, a missing blob)."""


@dataclass(frozen=True)
class WindowOptions:
    """What goes into samples."""

    summaries: bool = False  # summary calls become their own samples
    guidance: bool = True  # keep guidance as the <real_user> turns the model saw


# The events a window is built from (guidance too, so the fold knows which turns are
# delivered guidance); observations are only referenced through call inputs.
EXPORT_KINDS = (
    Kind.RUN_STARTED,
    Kind.MODEL_CALL,
    Kind.SUMMARY,
    Kind.GUIDANCE,
    Kind.GUIDANCE_DELIVERED,
    Kind.LABEL,
)


@dataclass
class Sample:
    """One training sample. `texts[i]` is message i as stored (canonical JSON), `messages`
    the same decoded on first use; `weights[i]` is 0/1 for assistant messages, None otherwise;
    `steps[i]` is the action step of an act call's assistant turn."""

    run_id: str
    task: str
    kind: str  # "window" | "summary"
    index: int  # the window's number within the run (summaries count their own)
    texts: list[str]
    tools_text: str
    weights: list[int | None]
    steps: list[int | None]
    decisions: dict[int, Decision] = field(default_factory=dict)
    guidance: int = 0  # guidance turns kept in the sample
    guidance_dropped: int = 0
    _messages: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The messages, decoded (formats that can splice `texts` never pay for this)."""
        if self._messages is None:
            self._messages = [json.loads(t) for t in self.texts]
        return self._messages

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = json.loads(self.tools_text)
        return tools

    def trained(self) -> list[int]:
        """Indexes of the messages trained on."""
        return [i for i, w in enumerate(self.weights) if w == 1]

    def masked(self) -> list[int]:
        """Indexes of assistant messages kept as context only."""
        return [i for i, w in enumerate(self.weights) if w == 0]


@dataclass(slots=True)
class _Call:
    step: int
    n_input: int  # where its assistant turn sits in the window
    output: str


def run_samples(
    store: Store,
    run: RunRecord,
    policy: Policy,
    options: WindowOptions | None = None,
    events: Sequence[Event] | None = None,
) -> Iterator[Sample]:
    """The samples of one run, in log order."""
    opts = options or WindowOptions()
    evs = list(events) if events is not None else store.events(run.id, kinds=EXPORT_KINDS)
    # The actions, their labels and the delivered guidance; no text is needed for those.
    fold = fold_actions(evs)
    decisions = decide(policy, fold.steps(), fold.labels())
    started = fold.started
    tools = store.get_blob(started["tools"]) if started and started["tools"] else "[]"
    guidance_blobs = {g.message for g in fold.guidance.values() if g.message}
    prev_seq: int | None = None
    prev_ids: list[str] = []
    calls: list[_Call] = []
    last_ids: list[str] = []
    pending_summary: list[str] | None = None  # the decoded input of a summarize call
    index = 0
    for ev in evs:
        call = schema.MODEL_CALL.of(ev)
        if call is not None:
            ids = apply_input(prev_seq, prev_ids, call["input"])
            prev_seq, prev_ids = ev.seq, ids
            output = call.get("output")
            if not output:
                continue  # a failed call produced nothing to learn from
            if call["purpose"] == "act":
                if calls:
                    _check_prefix(run.id, ev, calls[-1], last_ids, ids)
                calls.append(_Call(ev.step or 0, len(ids), output))
                last_ids = ids
            elif call["purpose"] == "summarize" and opts.summaries:
                pending_summary = ids
        elif (summary := schema.SUMMARY.of(ev)) is not None:
            if calls:
                yield _window(
                    store, run, index, last_ids, calls, tools, decisions, guidance_blobs, opts
                )
                index += 1
            calls, last_ids = [], []
            if pending_summary is not None:
                yield _summary(
                    store, run, index, pending_summary, summary["messages"][0], guidance_blobs, opts
                )
                index += 1
                pending_summary = None
    if calls:
        yield _window(store, run, index, last_ids, calls, tools, decisions, guidance_blobs, opts)


def _check_prefix(run_id: str, ev: Event, prev: _Call, prev_ids: list[str], ids: list[str]) -> None:
    n = prev.n_input
    if len(ids) <= n or ids[:n] != prev_ids or ids[n] != prev.output:
        raise ExportError(
            f"run {run_id}: the act call at seq {ev.seq} (step {ev.step}) does not extend the "
            f"input and output of step {prev.step} although no summary lies between them; "
            "the log is inconsistent, so no exact sample can be built"
        )


def _load(store: Store, run_id: str, ids: list[str]) -> list[str]:
    try:
        texts = store.get_blobs(ids)
    except StoreError as exc:
        raise ExportError(f"run {run_id}: {exc}") from exc
    return [texts[i] for i in ids]


def _is_assistant(text: str) -> bool:
    # Canonical JSON sorts keys, so the role sits after content / reasoning / tool_call_id;
    # a substring test on the stored text avoids decoding every message.
    return '"role":"assistant"' in text


def _window(
    store: Store,
    run: RunRecord,
    index: int,
    last_ids: list[str],
    calls: list[_Call],
    tools: str,
    decisions: dict[int, Decision],
    guidance_blobs: set[str],
    opts: WindowOptions,
) -> Sample:
    ids = [*last_ids, calls[-1].output]
    at = {c.n_input: c.step for c in calls}
    texts = _load(store, run.id, ids)
    weights: list[int | None] = []
    steps: list[int | None] = []
    for i, text in enumerate(texts):
        step = at.get(i)
        steps.append(step)
        if step is not None:
            weights.append(decisions[step].weight)
        else:
            weights.append(0 if _is_assistant(text) else None)
    sample = Sample(
        run.id,
        run.task,
        "window",
        index,
        texts,
        tools,
        weights,
        steps,
        {c.step: decisions[c.step] for c in calls},
    )
    return _guidance(sample, ids, guidance_blobs, opts)


def _summary(
    store: Store,
    run: RunRecord,
    index: int,
    ids: list[str],
    snapshot: str,
    guidance_blobs: set[str],
    opts: WindowOptions,
) -> Sample:
    all_ids = [*ids, snapshot]
    texts = _load(store, run.id, all_ids)
    weights: list[int | None] = [0 if _is_assistant(t) else None for t in texts]
    weights[-1] = 1
    # A summary call is offered no tools; the sample says so.
    sample = Sample(run.id, run.task, "summary", index, texts, "[]", weights, [None] * len(texts))
    return _guidance(sample, all_ids, guidance_blobs, opts)


def _guidance(sample: Sample, ids: list[str], blobs: set[str], opts: WindowOptions) -> Sample:
    marks = [i for i, b in enumerate(ids) if b in blobs]
    if opts.guidance or not marks:
        sample.guidance = len(marks)
        return sample
    drop = set(marks)
    sample.texts = [t for i, t in enumerate(sample.texts) if i not in drop]
    sample.weights = [w for i, w in enumerate(sample.weights) if i not in drop]
    sample.steps = [s for i, s in enumerate(sample.steps) if i not in drop]
    sample.guidance_dropped = len(marks)
    return sample
