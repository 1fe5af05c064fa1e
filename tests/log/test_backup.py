"""`apollo backup DEST`: a consistent copy of the store while runs write, never clobbering."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from apollo.cli import main
from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore

# Appends pairs of events in one transaction each (a guidance, which the runs row counts, and
# an observation) until its stdin closes; says "started" after the first pair.
_WRITER = r"""
import select, sys
from apollo.log.events import NewEvent
from apollo.log.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[1])
i = 0
while True:
    store.append(sys.argv[2], [
        NewEvent("guidance", {"i": i}, actor="writer"),
        NewEvent("observation", {"i": i, "text": "x" * 300}),
    ])
    if i == 0:
        print("started", flush=True)
    i += 1
    if select.select([sys.stdin], [], [], 0)[0]:
        break
"""


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def test_backup_while_another_process_appends_is_a_consistent_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    store = SQLiteStore(home / "apollo.db")
    run = store.create_run("t", {})
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(home / "apollo.db"), run.id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "started"
        _wait_for(lambda: store.last_seq(run.id) >= 400, "the writer appended 400 events")
        before = store.last_seq(run.id)
        code = main(["backup", str(tmp_path / "copy.db"), "--home", str(home)])
        after = store.last_seq(run.id)
        # The writer is still going: the copy was taken in the middle of its appends.
        _wait_for(lambda: store.last_seq(run.id) > after, "the writer kept appending")
    finally:
        assert writer.stdin is not None
        writer.stdin.close()
        writer.wait(timeout=60)
        if writer.stdout is not None:
            writer.stdout.close()
    assert writer.returncode == 0
    assert code == 0
    assert "backed up" in capsys.readouterr().out
    assert not Path(f"{tmp_path / 'copy.db'}-wal").exists()
    with SQLiteStore(tmp_path / "copy.db") as copy:
        events = copy.events(run.id)
        n = len(events)
        assert before <= n <= after
        assert n % 2 == 0  # whole transactions only
        assert [e.seq for e in events] == list(range(1, n + 1))
        live = store.events(run.id, limit=n)
        assert [(e.kind, e.payload) for e in events] == [(e.kind, e.payload) for e in live]
        record = copy.get_run(run.id)
        assert record is not None and record.guidance_count == n // 2  # the cache agrees
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")] == []


def test_backup_refuses_an_existing_dest_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    with SQLiteStore(home / "apollo.db") as store:
        run = store.create_run("t", {})
        store.append_one(run.id, Kind.RUN_STARTED, {"task": "t"})
    dest = tmp_path / "precious.db"
    dest.write_text("an older backup\n")
    assert main(["backup", str(dest), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--force" in err
    assert dest.read_text() == "an older backup\n"

    assert main(["backup", str(dest), "--force", "--home", str(home)]) == 0
    with SQLiteStore(dest) as copy:
        assert [e.kind for e in copy.events(run.id)] == [Kind.RUN_STARTED]


@pytest.mark.parametrize("where", ["a folder", "a device", "the store itself"])
def test_backup_refuses_what_is_not_a_new_or_regular_file(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    SQLiteStore(home / "apollo.db").close()
    dest = {
        "a folder": tmp_path,
        "a device": Path("/dev/null"),
        "the store itself": home / "apollo.db",
    }[where]
    assert main(["backup", str(dest), "--force", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("apollo: error: ") and str(dest) in err
    assert ("is the store itself" if where == "the store itself" else "not a regular file") in err
    SQLiteStore(home / "apollo.db").close()  # the store is intact


@pytest.mark.parametrize("where", ["a missing folder", "below a file"])
def test_backup_to_an_unwritable_dest_is_a_clear_error(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    SQLiteStore(home / "apollo.db").close()
    (tmp_path / "file").write_text("")
    dest = {
        "a missing folder": tmp_path / "missing" / "copy.db",
        "below a file": tmp_path / "file" / "copy.db",
    }[where]
    assert main(["backup", str(dest), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write the backup {dest}" in err
    assert sorted(os.listdir(tmp_path)) == ["file", "home"]
