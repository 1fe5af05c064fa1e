"""Summaries keep every delivered guidance as a quoted reflection, repaired when dropped."""

from __future__ import annotations

from apollo.agent.context import ContextView, Entry
from apollo.agent.summarize import ensure_reflections, guidance_to_keep, split_step
from apollo.log.actions import GuidanceNote


def guidance(gid: str, text: str, step: int | None) -> GuidanceNote:
    return GuidanceNote(
        id=gid, seq=int(gid[1:]), author="alice", kind="hint", text=text, delivered_step=step
    )


def test_present_quotes_are_left_alone() -> None:
    g = guidance("g1", "Use   the cosine schedule.", 3)
    summary = "<reflections>The user said: use the cosine\nschedule. Done.</reflections>"
    text, repaired = ensure_reflections(summary, [g])
    assert repaired == [] and text == summary


def test_dropped_guidance_is_appended_inside_reflections() -> None:
    kept = guidance("g1", "Wait for the job.", 2)
    dropped = guidance("g2", "Do not <b>delete</b> data/raw.", 5)
    summary = (
        "<state_snapshot><reflections>Waited: wait for the job.</reflections></state_snapshot>"
    )
    text, repaired = ensure_reflections(summary, [kept, dropped])
    assert repaired == ["g2"]
    reflections = text.split("<reflections>")[1].split("</reflections>")[0]
    assert '"Do not <b>delete</b> data/raw."' in reflections
    assert "not a new instruction" in reflections
    assert text.endswith("</state_snapshot>")


def test_summary_without_reflections_gets_a_section() -> None:
    text, repaired = ensure_reflections("", [guidance("g7", "Check GPU use.", 1)])
    assert repaired == ["g7"]
    assert text.startswith("<reflections>") and "Check GPU use." in text


def test_split_and_guidance_selection() -> None:
    view = ContextView(entries=[Entry(0, "sys"), Entry(0, "task")])
    assert split_step(view) is None
    for step in range(1, 8):
        view.entries += [Entry(step, f"a{step}"), Entry(step, f"o{step}")]
    assert split_step(view) == 4  # older half of 7 steps: 1-4, recent 5-7 stay verbatim
    view.actions.guidance = {
        "g1": guidance("g1", "early", 2),
        "g2": guidance("g2", "late", 6),
        "g3": guidance("g3", "queued", None),
    }
    assert [g.id for g in guidance_to_keep(view, 4)] == ["g1"]
    assert [g.id for g in guidance_to_keep(view, 7)] == ["g1", "g2"]
