"""Typed payloads: events are built and read per kind, and logs of version 1 are read in the
current shape, without rewriting them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from apollo.log import schema
from apollo.log.events import Kind, NewEvent
from apollo.log.sqlite import SQLiteStore
from tests.agent.harness import act, run_agent

# A version-1 run_started: no `schema` key. The other payloads lack what version 2 added.
V1_STARTED = {"task": "t", "task_path": "/t", "model": "m", "messages": [], "tools": "b"}


def _v1_log(store: SQLiteStore, run_id: str) -> None:
    store.append(
        run_id,
        [
            NewEvent(Kind.RUN_STARTED, V1_STARTED),
            NewEvent(Kind.MODEL_CALL, {"purpose": "act", "output": "o1", "calls": []}, step=1),
            NewEvent(Kind.GUIDANCE, {"id": "g-1", "author": "ann", "text": "try x"}, "ann"),
            NewEvent(Kind.LABEL, {"step": 1, "verdict": "keep", "reason": ""}, "ann", step=1),
            NewEvent(Kind.SUBMISSION, {"n": 1, "score": 3.0, "final": False}, step=1),
            NewEvent(Kind.SUBMISSION, {"n": 2, "score": None, "error": "no file"}, step=1),
        ],
    )


def test_a_version_1_log_is_read_in_the_current_shape(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run("t", {}).id
    _v1_log(store, run_id)
    events = store.events(run_id)
    guidance = schema.GUIDANCE.payload(events[2])
    assert (guidance["kind"], guidance["urgent"], guidance["drift_from_step"]) == (
        "hint",
        False,
        None,
    )
    label = schema.LABEL.payload(events[3])
    assert (label["source"], label["author"]) == ("human", "ann")
    statuses = [schema.SUBMISSION.payload(ev)["status"] for ev in events[4:]]
    assert statuses == ["scored", "rejected"]
    # Kinds that did not change are read as written, and so is a read of only some kinds.
    assert dict(events[1].payload) == {"purpose": "act", "output": "o1", "calls": []}
    only = store.events(run_id, after=5, kinds=[Kind.SUBMISSION])
    assert [schema.SUBMISSION.payload(ev)["status"] for ev in only] == ["rejected"]
    # The log itself is not rewritten: the file still holds the version-1 payloads.
    with sqlite3.connect(tmp_path / "apollo.db") as db:
        stored = [json.loads(p) for (p,) in db.execute("SELECT payload FROM events ORDER BY seq")]
    assert "status" not in stored[4] and "kind" not in stored[2]


def test_upgrades_leave_current_events_alone(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "apollo.db")
    v1 = store.create_run("t", {}).id
    _v1_log(store, v1)
    # A version-1 run resumed by this version: its new events already have every key.
    current: schema.Guidance = {
        "id": "g-2",
        "author": "bob",
        "kind": "strategy",
        "text": "t",
        "drift_from_step": 1,
        "urgent": True,
    }
    store.append(v1, [schema.GUIDANCE.new(current, actor="bob")])
    assert store.events(v1, after=6)[0].payload == current
    # A log of this version is never touched, even where a payload lacks an upgraded key.
    v2 = store.create_run("t", {}).id
    store.append(v2, [NewEvent(Kind.RUN_STARTED, {**V1_STARTED, "schema": 2})])
    store.append(v2, [NewEvent(Kind.SUBMISSION, {"n": 1, "score": None}, step=1)])
    assert "status" not in store.events(v2)[1].payload


def test_event_types_build_and_read_their_own_kind_only(tmp_path: Path) -> None:
    control = schema.CONTROL.new({"action": "pause", "author": "ann"}, actor="ann")
    assert (control.kind, control.actor, control.step) == (Kind.CONTROL, "ann", None)
    assert schema.CONTROL.of(control) == {"action": "pause", "author": "ann"}
    assert schema.GUIDANCE.of(control) is None
    with pytest.raises(TypeError, match="expected a guidance event, got control"):
        schema.GUIDANCE.payload(control)


def test_a_new_run_records_the_schema_version(tmp_path: Path) -> None:
    out = run_agent(tmp_path, [act("finish", summary="done")])
    started = schema.RUN_STARTED.payload(out.events(Kind.RUN_STARTED)[0])
    assert started["schema"] == schema.SCHEMA_VERSION
    assert schema.log_version(started) == schema.SCHEMA_VERSION
    assert schema.log_version(V1_STARTED) == 1
