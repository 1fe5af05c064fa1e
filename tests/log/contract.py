"""Contract tests every Store implementation must pass.

A test module subclasses `StoreContract` and provides a `store` fixture; the PostgreSQL store
will be run through exactly these tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from apollo.log.events import Kind, NewEvent, Role, RunStatus, blob_id
from apollo.log.store import (
    LastAdminError,
    LogCorrupt,
    NameTaken,
    RunEnded,
    Store,
    StoreError,
    UnknownAnnotator,
    UnknownRun,
)
from apollo.log.writes import post_control, post_label, post_presence


class StoreContract:
    def test_create_and_get_run(self, store: Store) -> None:
        run = store.create_run("task-a", {"model": "m"})
        got = store.get_run(run.id)
        assert got is not None
        assert got.task == "task-a"
        assert got.config == {"model": "m"}
        assert got.status == RunStatus.CREATED
        assert store.get_run("nope") is None

    def test_duplicate_run_id_rejected(self, store: Store) -> None:
        store.create_run("t", {}, run_id="r-1")
        with pytest.raises(StoreError, match="already exists"):
            store.create_run("t", {}, run_id="r-1")

    def test_append_assigns_dense_sequence(self, store: Store) -> None:
        run = store.create_run("t", {})
        first = store.append(run.id, [NewEvent(Kind.RUN_STARTED, {"task": "t"})])
        more = store.append(
            run.id,
            [
                NewEvent(Kind.MODEL_CALL, {"purpose": "act"}, step=1),
                NewEvent(Kind.OBSERVATION, {"tool": "think"}, step=1),
            ],
        )
        assert [e.seq for e in first + more] == [1, 2, 3]
        assert store.last_seq(run.id) == 3
        events = store.events(run.id)
        assert [e.kind for e in events] == ["run_started", "model_call", "observation"]
        assert events[1].step == 1
        assert events[1].payload == {"purpose": "act"}

    def test_events_after_and_kinds_and_limit(self, store: Store) -> None:
        run = store.create_run("t", {})
        for i in range(10):
            kind = Kind.GUIDANCE if i % 3 == 0 else Kind.OBSERVATION
            store.append_one(run.id, kind, {"i": i}, step=i)
        assert [e.payload["i"] for e in store.events(run.id, after=7)] == [7, 8, 9]
        assert [e.payload["i"] for e in store.events(run.id, kinds=[Kind.GUIDANCE])] == [
            0,
            3,
            6,
            9,
        ]
        assert len(store.events(run.id, limit=4)) == 4

    def test_append_to_unknown_run_fails_and_writes_nothing(self, store: Store) -> None:
        with pytest.raises(StoreError, match="unknown run"):
            store.append_one("missing", Kind.GUIDANCE, {})
        assert store.events("missing") == []

    def test_runs_cache_is_derived_from_events(self, store: Store) -> None:
        run = store.create_run("t", {})
        store.append_one(run.id, Kind.RUN_STARTED, {})
        store.append_one(run.id, Kind.MODEL_CALL, {"purpose": "act", "output": "b1"}, step=4)
        store.append_one(run.id, Kind.MODEL_CALL, {"purpose": "summarize"}, step=9)
        # A failed or cancelled call made no action: it does not move the step.
        store.append_one(run.id, Kind.MODEL_CALL, {"purpose": "act", "error": "x"}, step=5)
        store.append_one(run.id, Kind.GUIDANCE, {"text": "x"}, actor="alice")
        store.append_one(run.id, Kind.GUIDANCE, {"text": "y"}, actor="bob")
        store.append_one(run.id, Kind.SUBMISSION, {"n": 1, "score": 42.5})
        store.append_one(run.id, Kind.CONTROL, {"action": "pause"})
        got = store.get_run(run.id)
        assert got is not None
        assert (got.step, got.guidance_count, got.last_score) == (4, 2, 42.5)
        assert got.status == RunStatus.PAUSED
        store.append_one(run.id, Kind.CONTROL, {"action": "resume"})
        store.append_one(run.id, Kind.RUN_FINISHED, {"status": "timeout"})
        got = store.get_run(run.id)
        assert got is not None and got.status == RunStatus.TIMEOUT

    def test_no_steering_after_a_final_end(self, store: Store) -> None:
        run = store.create_run("t", {})
        store.append_one(run.id, Kind.RUN_RESUMED, {"paused": True})
        got = store.get_run(run.id)
        assert got is not None and got.status == RunStatus.PAUSED  # resumed into a pause
        store.append_one(run.id, Kind.RUN_FINISHED, {"status": "failed"})
        store.append_one(run.id, Kind.GUIDANCE, {"text": "a failed run can still resume"})
        store.append_one(run.id, Kind.RUN_FINISHED, {"status": "stopped"})
        for kind in (Kind.GUIDANCE, Kind.CONTROL):
            with pytest.raises(StoreError, match="has ended"):
                store.append_one(run.id, kind, {"action": "pause", "text": "late"})
        store.append_one(run.id, Kind.LABEL, {"step": 1, "verdict": "keep"})  # review goes on
        got = store.get_run(run.id)
        assert got is not None and got.status == RunStatus.STOPPED

    def test_list_runs_newest_first_and_by_status(self, store: Store) -> None:
        ids = [store.create_run("t", {}, run_id=f"r-{i}").id for i in range(3)]
        store.append_one(ids[1], Kind.RUN_STARTED, {})
        listed = [r.id for r in store.list_runs()]
        assert set(ids) <= set(listed)
        assert [r.id for r in store.list_runs(status="running")] == [ids[1]]
        assert len(store.list_runs(limit=2)) == 2

    def test_blobs_are_content_addressed_and_stored_once(self, store: Store) -> None:
        big = "observation line\n" * 2000
        ids = store.put_blobs(["hello", big, "hello", "ünïcödé"])
        assert ids[0] == ids[2] == blob_id("hello")
        got = store.get_blobs(ids)
        assert got[ids[1]] == big
        assert got[ids[3]] == "ünïcödé"
        assert store.put_blob(big) == ids[1]
        with pytest.raises(StoreError, match="unknown blob"):
            store.get_blobs(["0" * 64])

    def test_concurrent_appends_never_share_a_sequence(self, store: Store) -> None:
        run = store.create_run("t", {})

        def writer(n: int) -> None:
            for i in range(50):
                store.append_one(run.id, Kind.OBSERVATION, {"w": n, "i": i})

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seqs = [e.seq for e in store.events(run.id)]
        assert seqs == list(range(1, 201))

    def test_annotators_tokens_hashed_and_revocable(self, store: Store) -> None:
        ann, token = store.add_annotator("alice", Role.ANNOTATOR)
        assert ann.role == "annotator" and not ann.revoked
        authed = store.authenticate(token)
        assert authed is not None and authed.name == "alice"
        assert store.authenticate(token + "x") is None
        with pytest.raises(StoreError, match="already exists"):
            store.add_annotator("alice", Role.VIEWER)
        with pytest.raises(ValueError):
            store.add_annotator("bob", "superuser")
        store.revoke_annotator("alice")
        assert store.authenticate(token) is None
        assert [a.revoked for a in store.list_annotators()] == [True]
        with pytest.raises(StoreError, match="no annotator"):
            store.revoke_annotator("carol")

    def test_each_refusal_is_its_own_class(self, store: Store) -> None:
        """The console answers each class with its own status (docs/api.md "Errors")."""
        run = store.create_run("t", {}, run_id="r-1")
        store.add_annotator("root", Role.ADMIN)
        refusals: list[tuple[type[StoreError], Callable[[], object]]] = [
            (UnknownRun, lambda: store.append_one("r-nope", Kind.LABEL, {})),
            (UnknownRun, lambda: post_control(store, "r-nope", "ann", "pause")),
            (UnknownRun, lambda: post_label(store, "r-nope", 1, "keep", "", "ann")),
            (UnknownRun, lambda: post_presence(store, "r-nope", "ann", 1.0)),
            (NameTaken, lambda: store.create_run("t", {}, run_id="r-1")),
            (NameTaken, lambda: store.add_annotator("root", Role.VIEWER)),
            (UnknownAnnotator, lambda: store.revoke_annotator("nobody")),
            (LastAdminError, lambda: store.revoke_annotator("root")),
            (LogCorrupt, lambda: store.get_blobs(["0" * 64])),
        ]
        store.append_one(run.id, Kind.RUN_FINISHED, {"status": "finished"})
        refusals.append((RunEnded, lambda: post_control(store, run.id, "ann", "pause")))
        refusals.append((RunEnded, lambda: store.append_one(run.id, Kind.GUIDANCE, {})))
        for error, call in refusals:
            with pytest.raises(StoreError) as caught:
                call()
            assert type(caught.value) is error, (error, caught.value)
