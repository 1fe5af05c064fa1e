"""What the runtime does for a weak model, measured to matter with Qwen2.5-Coder-0.5B: it
calls scripts of the task as if they were tools, repeats a failing call verbatim, and copies
the budget footer's durations into arguments."""

from __future__ import annotations

import json
from pathlib import Path

from apollo.agent.context import replay
from apollo.llm.scripted import reply
from apollo.log import schema
from apollo.log.events import Kind
from apollo.supervise.trajectory import load_trajectory
from tests.agent.harness import act, make_task, observation_texts, run_agent


def test_a_call_to_a_script_of_the_task_is_told_how_to_run_it(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    (task.path / "workspace" / "probe.py").write_text("print('probing')\n")
    fenced = '```json\n{"name": "probe", "arguments": {"n": 3}}\n```'
    out = run_agent(tmp_path, [reply(fenced), act("finish", summary="done")], task=task)
    note = out.act_bodies()[1]["messages"][-1]
    assert note["role"] == "user" and "there is no tool named `probe`" in note["content"]
    assert "probe.py is a file in /workspace, not a tool" in note["content"]
    assert 'run {"command": "python3 probe.py"}' in note["content"]


def test_an_exact_repeat_of_a_failing_call_is_answered_without_running_it(
    tmp_path: Path,
) -> None:
    failing = "echo x >> count.txt; exit 3"
    script = [
        act("run", command=failing),
        act("run", command=failing),  # the same call again: not run
        act("run", command="echo y >> count.txt; exit 3"),  # changed: runs
        act("session_output", id="nope"),  # polls may change by themselves: both run
        act("session_output", id="nope"),
        act("finish", summary="done"),
    ]
    out = run_agent(tmp_path, script)
    assert (out.workspace.path / "count.txt").read_text().split() == ["x", "y"]
    texts = observation_texts(out)
    assert "exactly the call you made at step 1" in texts[1]
    assert "exactly the call" not in texts[2] and "exactly the call" not in texts[4]
    results = [schema.OBSERVATION.payload(ev) for ev in out.events(Kind.OBSERVATION)]
    assert [r["error"] for r in results[:5]] == [True] * 5
    assert [(r.get("meta") or {}).get("repeated_failure") for r in results[:3]] == [None, 1, None]


def test_a_call_going_round_in_circles_is_told_so(tmp_path: Path) -> None:
    """A, B, A again (same result): noted, though nothing failed and a step lay between; a
    repeat whose result changed, and a poll, are not."""
    script = [
        act("write_file", path="a.txt", content="one"),  # 1
        act("run", command="cat a.txt"),  # 2
        act("write_file", path="a.txt", content="one"),  # 3: same call, same result as 1
        act("run", command="cat a.txt"),  # 4: same as 2
        act("write_file", path="a.txt", content="two"),  # 5
        act("run", command="cat a.txt"),  # 6: same call as 2 and 4, new result
        act("sleep", seconds=0),  # 7
        act("sleep", seconds=0),  # 8: polls may rightly repeat
        act("finish", summary="done"),
    ]
    out = run_agent(tmp_path, script)
    texts = observation_texts(out)
    results = [schema.OBSERVATION.payload(ev) for ev in out.events(Kind.OBSERVATION)]
    noted = [(r.get("meta") or {}).get("repeated_call") for r in results[:8]]
    assert noted == [None, None, 1, 2, None, None, None, None]
    assert "you made exactly this call at step 1 and got this same result" in texts[2]
    assert texts[3].startswith("one") and "at step 2" in texts[3]
    assert texts[5].startswith("two") and "exactly this call" not in texts[5]
    # What supervision compares and shows is the tool's own text, without the note.
    traj = load_trajectory(out.store, out.run_id)
    bodies = [a.results[0].body for a in traj.actions[:4]]
    assert bodies[2] == bodies[0] and bodies[3] == bodies[1] and bodies[3].startswith("one")
    assert not any("exactly this call" in b for b in bodies)
    # The fold tells the same from the log alone: a resumed agent notes the same repeats.
    view = replay(out.store, out.run_id)
    assert view.actions.same_call_before(results[1]["call_digest"]) == 4
    assert view.actions.same_call_before(results[5]["call_digest"]) == 6
    assert "call_digest" in results[6] and view.actions.same_call_before(results[6]["call_digest"])


def test_durations_copied_from_the_footer_are_read_as_seconds(tmp_path: Path) -> None:
    out = run_agent(tmp_path, [act("sleep", seconds="1s"), act("finish", summary="done")])
    assert observation_texts(out)[0].startswith("Slept 1.0s of 1s.")


def test_a_resumed_agent_compares_new_calls_with_the_last_replies(tmp_path: Path) -> None:
    script = [
        act("run", command="exit 3"),
        act("think", thought="hm"),
        act("run", command="exit 3"),
        act("finish", summary="done"),
    ]
    out = run_agent(tmp_path, script)
    view = replay(out.store, out.run_id)
    # The agent keeps its latest two actions, and the replay read both replies.
    before, last = view.actions.actions
    assert (before.step, last.step) == (3, 4)
    assert json.loads(before.calls[0].arguments or "") == {"command": "exit 3"}
    assert json.loads(last.calls[0].arguments or "") == {"summary": "done"}
    # The run call at step 3 repeats step 1's, but a step lies between: it was made (and
    # noted as going round in circles, not answered as a repeated failure).
    third = schema.OBSERVATION.payload(out.events(Kind.OBSERVATION)[2])
    assert (third.get("meta") or {}).get("repeated_failure") is None
    assert (third.get("meta") or {}).get("repeated_call") == 1
