"""The store's one busy policy: while another process holds the write lock, operations wait
with backoff for a bounded time, then fail with StoreBusy; a run survives a long lock."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from apollo.cli import main
from apollo.llm.scripted import Request, ScriptedServer
from apollo.log.events import Kind, RunStatus
from apollo.log.sqlite import SQLiteStore
from apollo.log.store import BUSY_ENV, DEFAULT_BUSY_S, StoreBusy, StoreError
from tests.agent.harness import act, make_task, run_agent
from tests.log.lockholder import LockHolder, store_waiting


def test_append_waits_for_another_process_and_succeeds_after_release(tmp_path: Path) -> None:
    db = tmp_path / "apollo.db"
    store = SQLiteStore(db, busy_s=120)
    run = store.create_run("t", {})
    done: dict[str, Any] = {}

    def append() -> None:
        done["event"] = store.append_one(run.id, Kind.OBSERVATION, {"i": 1})

    with LockHolder(db) as holder, store_waiting() as waiting:
        holder.lock()
        writer = threading.Thread(target=append)
        writer.start()
        assert waiting.wait(60), "the append never found the store busy"
        assert writer.is_alive() and "event" not in done
        # Readers are not held up by the lock (WAL), in this process or another one.
        assert store.get_run(run.id) is not None
        with SQLiteStore(db) as other:
            assert other.events(run.id) == []
        holder.release()
        writer.join(60)
    assert not writer.is_alive()
    assert done["event"].seq == 1
    assert [e.payload for e in store.events(run.id)] == [{"i": 1}]


def test_a_short_busy_time_fails_with_a_clear_store_busy(tmp_path: Path) -> None:
    db = tmp_path / "apollo.db"
    store = SQLiteStore(db, busy_s=0.5)
    run = store.create_run("t", {})
    with LockHolder(db) as holder:
        holder.lock()
        with pytest.raises(StoreBusy) as caught:
            store.append_one(run.id, Kind.GUIDANCE, {"text": "hi"})
        message = str(caught.value)
        assert str(db) in message
        assert "another process" in message and "write lock" in message
        assert BUSY_ENV in message
        assert isinstance(caught.value, StoreError)
        # Every kind of write follows the same policy.
        for write in (
            lambda: store.create_run("t", {}),
            lambda: store.put_blob("text"),
            lambda: store.add_annotator("ann", "annotator"),
        ):
            with pytest.raises(StoreBusy):
                write()
        holder.release()
    # Nothing was half written, and the connection is usable again.
    assert store.append_one(run.id, Kind.GUIDANCE, {"text": "hi"}).seq == 1
    record = store.get_run(run.id)
    assert record is not None and record.guidance_count == 1
    assert [r.id for r in store.list_runs()] == [run.id]


def test_busy_time_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SQLiteStore(tmp_path / "a.db").busy_s == DEFAULT_BUSY_S
    monkeypatch.setenv(BUSY_ENV, "7.5")
    assert SQLiteStore(tmp_path / "a.db").busy_s == 7.5
    assert SQLiteStore(tmp_path / "a.db", busy_s=2).busy_s == 2
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(BUSY_ENV, bad)
        with pytest.raises(StoreError, match=BUSY_ENV):
            SQLiteStore(tmp_path / "a.db")


def test_guide_on_a_busy_store_exits_with_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    store = SQLiteStore(home / "apollo.db")
    run = store.create_run("t", {})
    store.append_one(run.id, Kind.RUN_STARTED, {"task": "t"})
    monkeypatch.setenv(BUSY_ENV, "0.5")
    with LockHolder(home / "apollo.db") as holder:
        holder.lock()
        code = main(["guide", run.id, "wait for the job", "--home", str(home)])
        holder.release()
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("apollo: error: the store ")
    assert "is busy" in err and "write lock" in err and str(home / "apollo.db") in err
    assert store.events(run.id, kinds=[Kind.GUIDANCE]) == []


def test_agent_run_keeps_going_across_a_lock_longer_than_sqlites_busy_timeout(
    tmp_path: Path,
) -> None:
    db = tmp_path / "apollo.db"
    SQLiteStore(db).close()  # the holder opens an existing store
    with LockHolder(db) as holder, store_waiting() as waiting:
        took_lock = threading.Event()
        held: dict[str, float] = {}

        def lock_then_answer(request: Request) -> dict[str, Any]:
            # The reply to step 3 reaches the agent while another process holds the lock.
            holder.lock()
            took_lock.set()
            return act("think", thought="written once the lock is free")

        def release_once_waiting() -> None:
            assert took_lock.wait(60), "the lock was never taken"
            assert waiting.wait(60), "the agent never waited for the lock"
            held["s"] = holder.release()

        async def during(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
            await asyncio.to_thread(release_once_waiting)

        script = [
            act("think", thought="one"),
            act("think", thought="two"),
            lock_then_answer,
            act("think", thought="four"),
            act("finish", summary="done despite the lock"),
        ]
        out = run_agent(tmp_path, script, during=during)
    assert out.status == RunStatus.FINISHED
    busy_timeout_s = out.store._db.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
    assert held["s"] > busy_timeout_s
    events = out.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    thoughts = [e.step for e in out.events(Kind.MODEL_CALL)]
    assert thoughts == [1, 2, 3, 4, 5]  # the step made under the lock was written once
    record = out.store.get_run(out.run_id)
    assert record is not None and record.status == RunStatus.FINISHED


def test_a_runner_that_gives_up_leaves_the_run_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    task = make_task(tmp_path)
    SQLiteStore(home / "apollo.db").close()
    with LockHolder(home / "apollo.db") as holder:

        def lock_then_answer(request: Request) -> dict[str, Any]:
            holder.lock()
            return act("think", thought="never written: the store stays busy")

        script = [
            act("think", thought="one"),
            lock_then_answer,
            act("think", thought="two, after resuming"),
            act("finish", summary="resumed after the busy store"),
        ]
        with ScriptedServer(script) as server:
            argv = ["--home", str(home), "--model", server.base_url, "--model-name", "scripted"]
            monkeypatch.setenv(BUSY_ENV, "0.5")
            code = main(["run", str(task.path), "--quiet", *argv])
            out, err = capsys.readouterr()
            assert code != 0
            assert err.count("\n") == 1 and err.startswith("apollo: error: the store ")
            run_id = out.split()[1]
            assert f"`apollo resume {run_id}`" in err
            holder.release()
            store = SQLiteStore(home / "apollo.db")
            record = store.get_run(run_id)
            assert record is not None and record.status == RunStatus.RUNNING
            assert store.events(run_id, kinds=[Kind.RUN_FINISHED]) == []

            monkeypatch.delenv(BUSY_ENV)
            code = main(["resume", run_id, "--quiet", "--home", str(home)])
    assert code == 0, capsys.readouterr().err
    assert f"run {run_id} ended: finished" in capsys.readouterr().out
    finished = store.events(run_id, kinds=[Kind.RUN_FINISHED])
    assert [e.payload["status"] for e in finished] == ["finished"]
    assert len(store.events(run_id, kinds=[Kind.RUN_RESUMED])) == 1
