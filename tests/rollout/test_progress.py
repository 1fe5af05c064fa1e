"""Progress lines: one per event worth one, safe for a terminal, the footer left out."""

from __future__ import annotations

import re
from pathlib import Path

from apollo.log.writes import post_label, post_presence
from apollo.rollout.progress import describe
from tests.agent.harness import act, run_agent


def test_each_kind_worth_a_line_reads_as_what_happened(tmp_path: Path) -> None:
    script = [
        act("run", command="printf 'hi\\033[31m'"),
        act("submit", note="first try"),
        act("finish", summary="done"),
    ]
    out = run_agent(tmp_path, script)
    lines = [describe(ev, out.store) for ev in out.events()]
    shown = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines if line]
    assert shown[0] == "           run started: task fake-task · model scripted"
    assert shown[1] == "step    1  → run(command=printf 'hi\\033[31m')"
    # The escape the command printed is shown, not obeyed, and the budget footer is cut.
    assert shown[2] == "step    1  ← run: hi\\x1b[31m [exit code: 0]"
    assert shown[3] == "step    2  → submit(note=first try)"
    assert re.fullmatch(r"step    2  submission 1: (\d+(\.\d+)?|error: .*)", shown[4])
    assert shown[-1].startswith("step    3  run finished: ")
    assert all("\x1b" not in line for line in shown)
    # Events not worth a line (presence, labels) give none.
    presence = post_presence(out.store, out.run_id, "ann", 5.0)
    label = post_label(out.store, out.run_id, 1, "keep", "fine", author="ann")
    assert describe(presence, out.store) is None and describe(label, out.store) is None
