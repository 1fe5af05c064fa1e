"""Condensers: how an agent keeps its context within the model's window.

A condenser looks at the agent's view before each model call and may condense it. The
summarizing one replaces the older half of the steps with a state snapshot written by the same
model (docs/design.md "Summaries"); `NoCondenser` never condenses (for models whose window the
run never fills, and for tests of everything else).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from apollo.agent.context import ContextView
from apollo.agent.prompts import prompt
from apollo.agent.summarize import (
    condensed_entries,
    ensure_reflections,
    guidance_to_keep,
    split_step,
)
from apollo.llm.base import Completion, ModelError
from apollo.log import schema
from apollo.log.events import NewEvent, canonical_json
from apollo.log.store import Store


class AgentHost(Protocol):
    """What a condenser may use of the agent: its view, and its recorded model calls."""

    view: ContextView
    store: Store

    async def call_model(
        self, purpose: str, step: int, ids: list[str], messages: list[str]
    ) -> Completion: ...

    def put(self, message: dict[str, Any], texts: dict[str, str]) -> str: ...

    def record(self, events: Sequence[NewEvent], texts: dict[str, str] | None = None) -> None: ...

    def work_s(self) -> float: ...


class Condenser(Protocol):
    """Decides, before a model call, whether and how to condense the context."""

    async def condense(self, agent: AgentHost, step: int) -> None: ...


class NoCondenser:
    """Never condenses."""

    async def condense(self, agent: AgentHost, step: int) -> None:
        return None


class SummarizingCondenser:
    """Past `threshold_tokens` (estimated), the older half of the window becomes a summary."""

    def __init__(self, threshold_tokens: int) -> None:
        self.threshold_tokens = threshold_tokens

    async def condense(self, agent: AgentHost, step: int) -> None:
        view = agent.view
        if view.token_estimate() <= self.threshold_tokens:
            return
        through = split_step(view)
        if through is None:
            return
        first = min(view.window_steps())
        entries = condensed_entries(view, through)
        request = canonical_json({"role": "user", "content": prompt("summarize")})
        ids = [e.blob for e in entries] + [agent.store.put_blob(request)]
        messages = [e.text or "" for e in entries] + [request]
        try:
            completion = await agent.call_model("summarize", step, ids, messages)
        except ModelError:
            # Carry on unsummarized; the next step tries again and the failure is in the log.
            return
        keep = guidance_to_keep(view, through)
        text, repaired = ensure_reflections(completion.content or "", keep)
        texts: dict[str, str] = {}
        summary: schema.Summary = {
            "covers": [first, through],
            "messages": [
                agent.put({"role": "assistant", "content": text}, texts),
                agent.put({"role": "user", "content": prompt("continue")}, texts),
            ],
            "cited_guidance": [g.id for g in keep],
            "repaired_guidance": repaired,
            "work_s": agent.work_s(),
        }
        agent.record([schema.SUMMARY.new(summary, step=step)], texts)
