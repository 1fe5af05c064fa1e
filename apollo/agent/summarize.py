"""Context summarization into a state snapshot, with guidance kept verbatim.

The older half of the steps in the window is condensed by the model; the recent half stays
verbatim. Every real-user message delivered so far must survive as a reflection quoting it:
this is checked here and repaired by appending the quote when the model dropped it.
"""

from __future__ import annotations

import re

from apollo.agent.context import ContextView, Entry
from apollo.log.actions import GuidanceNote

_SPACE = re.compile(r"\s+")
_REFLECTIONS_END = "</reflections>"


def split_step(view: ContextView) -> int | None:
    """The last step to condense: the end of the older half of the window, or None when the
    window holds fewer than two steps (nothing to condense yet)."""
    steps = view.window_steps()
    if len(steps) < 2:
        return None
    return steps[(len(steps) + 1) // 2 - 1]


def condensed_entries(view: ContextView, through_step: int) -> list[Entry]:
    """The context messages the summary replaces: preamble, any earlier snapshot, and the
    steps up to `through_step`, in order."""
    return [e for e in view.entries if e.step <= through_step]


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def guidance_to_keep(view: ContextView, through_step: int) -> list[GuidanceNote]:
    """Guidance delivered at or before `through_step`: all of it must be quoted."""
    return sorted(
        (
            g
            for g in view.actions.guidance.values()
            if g.delivered_step is not None and g.delivered_step <= through_step
        ),
        key=lambda g: g.seq,
    )


def ensure_reflections(summary: str, guidance: list[GuidanceNote]) -> tuple[str, list[str]]:
    """Return the summary with a verbatim quote of every guidance it lacks, and their ids."""
    flat = _normal(summary)
    missing = [g for g in guidance if _normal(g.text) not in flat]
    if not missing:
        return summary, []
    lines = "".join(
        f'\n- Real user (guidance {g.id}, delivered at step {g.delivered_step}) said: "{g.text}"'
        " — this was already delivered and acted on; it is history, not a new instruction."
        for g in missing
    )
    if _REFLECTIONS_END in summary:
        head, _, tail = summary.rpartition(_REFLECTIONS_END)
        repaired = head.rstrip() + lines + "\n" + _REFLECTIONS_END + tail
    else:
        section = "<reflections>" + lines + "\n</reflections>"
        repaired = f"{summary.rstrip()}\n{section}" if summary.strip() else section
    return repaired, [g.id for g in missing]
