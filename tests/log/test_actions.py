"""The one fold of actions: calls paired with their results, guidance and labels on the
action they follow, streaks, sessions, and the same facts whether folded at once or bit by
bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apollo.log import schema
from apollo.log.actions import (
    ActionFold,
    Streak,
    action_texts,
    fold_actions,
    parse_arguments,
    strip_footer,
)
from apollo.log.events import Event, canonical_json
from apollo.log.sqlite import SQLiteStore
from apollo.log.writes import post_guidance, post_label

FOOTER = "\n\n[step 1/9 · 9m left · 2 submissions left]"


class Log:
    """Writes a run's log the way the agent does, blobs included."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = SQLiteStore(tmp_path / "apollo.db")
        self.run_id = self.store.create_run("t", {}).id
        self.n = 0
        started: schema.RunStarted = {
            "schema": schema.SCHEMA_VERSION,
            "task": "t",
            "task_path": "/t",
            "model": "m",
            "budget": {"working_time": 600.0, "steps": 9, "submissions": 2},
            "messages": [self.blob({"role": "system", "content": "s"})],
            "tools": self.blob([]),
        }
        self.append(schema.RUN_STARTED.new(started))

    def blob(self, value: Any) -> str:
        return self.store.put_blob(canonical_json(value))

    def append(self, *events: Any) -> list[Event]:
        return self.store.append(self.run_id, list(events))

    def act(self, step: int, *calls: tuple[str, str], text: str = "") -> list[str]:
        """An act call whose reply makes `calls` (name, raw JSON arguments); their ids."""
        ids = [f"c{step}-{i}" for i in range(len(calls))]
        tool_calls = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, (name, args) in zip(ids, calls, strict=True)
        ]
        reply = {"role": "assistant", "content": text, "tool_calls": tool_calls}
        call: schema.ModelCall = {
            "purpose": "act",
            "input": {"prev": None, "keep": 0, "add": []},
            "tools": None,
            "output": self.blob(reply),
            "calls": [{"id": cid, "name": name} for cid, (name, _) in zip(ids, calls, strict=True)],
            "usage": {"completion_tokens": 7},
            "parse_error": None if calls else "no tool call",
            "work_s": float(step),
        }
        self.append(schema.MODEL_CALL.new(call, step=step))
        return ids

    def result(
        self, step: int, call_id: str | None, tool: str | None, text: str, **more: Any
    ) -> None:
        content = text + FOOTER
        message = self.blob({"role": "tool", "tool_call_id": call_id, "content": content})
        observation: schema.Observation = {
            "tool_call_id": call_id,
            "tool": tool,
            "message": message,
            "error": bool(more.pop("error", False)),
            "meta": more.pop("meta", {}),
            "work_s": float(step),
            **more,  # type: ignore[typeddict-item]
        }
        self.append(schema.OBSERVATION.new(observation, step=step))

    def fold(self, results: bool = True) -> ActionFold:
        events = self.store.events(self.run_id)
        return fold_actions(events, action_texts(self.store, events, results=results))


def test_results_pair_with_their_calls_and_guidance_and_labels_with_their_action(
    tmp_path: Path,
) -> None:
    log = Log(tmp_path)
    a, b = log.act(1, ("read_file", '{"path": "x"}'), ("run", "not json"), text="look")
    log.result(1, b, "run", "bad arguments", error=True)  # answered out of order
    log.result(1, a, "read_file", "file x")
    guidance = post_guidance(log.store, log.run_id, "ann", "look at y", drift_from_step=1)
    gid = schema.GUIDANCE.payload(guidance)["id"]
    log.append(
        schema.GUIDANCE_DELIVERED.new(
            {"guidance_id": gid, "step": 2, "message": log.blob({"role": "user"})}, step=2
        )
    )
    (c,) = log.act(2, ("read_file", '{"path": "y"}'))
    post_label(log.store, log.run_id, 1, "mask", "wrong file", author="ann")

    fold = log.fold()
    first, second = fold.actions
    assert [(x.name, x.args) for x in first.calls] == [("read_file", {"path": "x"}), ("run", None)]
    assert first.calls[0].result is not None and first.calls[0].result.body == "file x"
    assert first.calls[1].result is not None and first.calls[1].result.error
    assert [r.tool_call_id for r in first.results] == [b, a]  # in log order
    assert first.content == "look" and first.tokens == 7
    assert [g.id for g in first.guidance] == [gid] and second.guidance == []
    assert fold.guidance[gid].state == "delivered" and fold.guidance[gid].delivered_step == 2
    assert [(lb.step, lb.verdict, lb.author) for lb in first.labels] == [(1, "mask", "ann")]
    assert fold.labels() == first.labels
    # The latest action's call has no result yet: a crash would have cut it.
    assert list(fold.pending) == [c] and fold.last_step == 2 and fold.steps() == [1, 2]
    assert fold.work_s == 2.0


def test_folding_bit_by_bit_gives_what_folding_at_once_gives(tmp_path: Path) -> None:
    log = Log(tmp_path)
    seen = ActionFold()
    after = 0
    for step in range(1, 5):
        (cid,) = log.act(step, ("session_output", '{"id": "job"}'))
        log.result(step, cid, "session_output", "...", meta={"new_bytes": 0})
        new = log.store.events(log.run_id, after=after)
        texts = action_texts(log.store, new, results=True)
        for ev in new:
            seen.apply(ev, texts)
        after = new[-1].seq
    whole = log.fold()
    assert [a.signature() for a in seen.actions] == [a.signature() for a in whole.actions]
    assert seen.repeat_streak == whole.repeat_streak
    assert whole.repeat_streak.count == 4 and whole.repeat_streak.since == 1
    assert all(a.polled_nothing() for a in whole.actions)


def test_streaks_sessions_and_replies_without_a_call(tmp_path: Path) -> None:
    log = Log(tmp_path)
    (start,) = log.act(1, ("session_start", '{"id": "job", "command": "train.sh"}'))
    log.result(1, start, "session_start", "started", meta={"session": "job", "cursor": 0})
    for step in (2, 3, 4):
        (cid,) = log.act(step, ("run", json.dumps({"command": f"try {step}"})))
        log.result(step, cid, "run", "exit 1", error=True)
    (kill,) = log.act(5, ("session_kill", '{"id": "job"}'))
    meta = {"session": "job", "was_running": True, "runtime_s": 4.5}
    log.result(5, kill, "session_kill", "killed", meta=meta)
    log.act(6, text="I am done")  # a reply without a tool call, not answered yet

    fold = log.fold()
    job = fold.sessions["job"]
    assert (job.command, job.running) == ("train.sh", False)
    assert fold.killed is not None and (fold.killed.session, fold.killed.step) == ("job", 5)
    assert fold.killed.runtime_s == 4.5
    # Three failures in a row from step 2, broken by the kill's success.
    assert fold.error_streak.count == 0
    partial = fold_actions(log.store.events(log.run_id)[:9])  # through step 4
    assert (partial.error_streak.count, partial.error_streak.since) == (3, 2)
    assert fold.uncorrected == "no tool call" and fold.pending == {}
    log.result(6, None, None, "call a tool", error=True, malformed=True)
    assert log.fold().uncorrected is None


def test_without_texts_the_fold_knows_calls_but_not_their_arguments(tmp_path: Path) -> None:
    log = Log(tmp_path)
    (cid,) = log.act(1, ("read_file", '{"path": "x"}'))
    log.result(1, cid, "read_file", "file x")
    fold = fold_actions(log.store.events(log.run_id))
    (call,) = fold.actions[0].calls
    assert (call.name, call.arguments, call.args) == ("read_file", None, None)
    assert call.result is not None and call.result.content is None
    assert fold.actions[0].message is None and fold.repeat_streak.count == 0


def test_the_shared_helpers() -> None:
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("") == {} and parse_arguments(None) == {}
    assert parse_arguments("[1]") is None and parse_arguments("{oops") is None
    assert strip_footer("out" + FOOTER) == "out"
    assert strip_footer("[step 1/9 · x] stays when not at the end\nmore") == (
        "[step 1/9 · x] stays when not at the end\nmore"
    )
    streak = Streak()
    for key, step in [("a", 1), ("a", 2), ("b", 3), ("b", 4), ("b", 5)]:
        streak.push(key, step)
    assert (streak.key, streak.count, streak.since) == ("b", 3, 3)
    streak.push(None)
    assert (streak.count, streak.since) == (0, None)


def test_without_history_the_fold_keeps_the_same_facts_in_constant_memory(
    tmp_path: Path,
) -> None:
    log = Log(tmp_path)
    for step in (1, 2, 3):
        (cid,) = log.act(step, ("run", '{"command": "make"}'))
        log.result(step, cid, "run", "exit 2", error=True)
    post_label(log.store, log.run_id, 1, "mask", "same failure again", author="ann")
    events = log.store.events(log.run_id)
    texts = action_texts(log.store, events)
    light = ActionFold(history=False)
    for ev in events:
        light.apply(ev, texts)
    full = fold_actions(events, texts)
    assert [a.step for a in light.actions] == [2, 3] and light.results == []
    assert all(a.message is None for a in light.actions)
    assert len(full.actions) == 3 and len(full.results) == 3
    for fold in (light, full):
        assert (fold.error_streak.count, fold.repeat_streak.count) == (3, 3)
        assert fold.repeat_streak.label == "run" and fold.last_step == 3
        assert [(lb.step, lb.verdict) for lb in fold.labels()] == [(1, "mask")]


def test_without_history_a_label_outlives_its_action(tmp_path: Path) -> None:
    log = Log(tmp_path)
    light = ActionFold(history=False)
    for step in (1, 2, 3, 4):
        log.act(step, ("think", '{"thought": "x"}'))
        if step == 2:
            post_label(log.store, log.run_id, 2, "mask", "wrong turn", author="ann")
    for ev in log.store.events(log.run_id):
        light.apply(ev)
    assert [a.step for a in light.actions] == [3, 4]
    assert [(lb.step, lb.verdict) for lb in light.labels()] == [(2, "mask")]
