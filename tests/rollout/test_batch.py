"""`apollo collect` and the batch driver under it, on real runs: the scripted policy of
tests/rollout/policies.py over loopback HTTP, real SQLite, real bubblewrap. Its successes are
known from each instance's hidden answer, so the counts are checked, not just printed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apollo.cli import main
from apollo.llm.models import EmbeddedError
from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore
from apollo.rollout.batch import Batch, BatchPlan, lock_batch, read_episode
from apollo.rollout.home import Home
from apollo.rollout.runner import Runner, RunOptions
from tests.rollout.policies import GatedServer, first_option_wins

FAMILY = "noise-filter"


def collect(home: Path, url: str, *extra: str) -> list[str]:
    return ["collect", FAMILY, "--home", str(home), "--model", url, *extra]


def batch_runs(home: Path, tag: str) -> list[tuple[int, int, str, str]]:
    """(seed, repeat, run id, status) of the batch's runs, by slot."""
    store = SQLiteStore(home / "apollo.db")
    rows = [
        (r.config["batch"]["seed"], r.config["batch"]["repeat"], r.id, r.status)
        for r in store.list_runs(limit=1000)
        if (r.config.get("batch") or {}).get("tag") == tag
    ]
    store.close()
    return sorted(rows)


def expected_successes(home: Path, seeds: list[int]) -> int:
    return sum(first_option_wins(FAMILY, s, home / "instances") for s in seeds)


def test_collect_runs_each_instance_once_k_at_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    seeds = [1000, 1001, 1002, 1003]
    # Each run's first request waits until two runs have opened: K=2 really drives two at once.
    with GatedServer(width=2) as server:
        args = collect(home, server.base_url, "--n", "4", "--concurrency", "2", "--tag", "t1")
        assert main([*args, "--annotator", "none"]) == 0
        assert not server.gate_failed, "two runs were never in flight at once"
        out = capsys.readouterr().out
        rows = batch_runs(home, "t1")
        assert [(s, r) for s, r, _, _ in rows] == [(s, 0) for s in seeds]
        assert {status for *_, status in rows} == {"finished"}
        wins = expected_successes(home, seeds)
        assert 0 < wins < 4  # the seeds hold both outcomes, so the count says something
        assert f"episodes: 4 · successes: {wins} ({wins / 4:.0%})" in out
        assert "4 run(s) driven this time" in out
        assert "apollo export --tag t1" in out
        store = SQLiteStore(home / "apollo.db")
        record = store.get_run(rows[0][2])
        assert record is not None
        assert record.config["family"] == FAMILY and record.config["split"] == "train"
        assert record.config["batch"] == {"tag": "t1", "kind": "collect", "seed": 1000, "repeat": 0}
        assert record.config["options"]["annotator"] == "none"
        store.close()

        # Again: every instance has ended, so nothing runs and the model is not called.
        before = len(server.requests)
        assert main([*args, "--annotator", "none"]) == 0
        out = capsys.readouterr().out
        assert len(server.requests) == before
        assert "0 run(s) driven this time" in out and f"successes: {wins}" in out
        assert len(batch_runs(home, "t1")) == 4

        # A larger --n continues the batch with the seeds after the first four only.
        assert (
            main(
                [*collect(home, server.base_url, "--n", "5", "--tag", "t1"), "--annotator", "none"]
            )
            == 0
        )
        assert "1 run(s) driven this time" in capsys.readouterr().out
        assert [s for s, *_ in batch_runs(home, "t1")] == [*seeds, 1004]

        # --skip shards the split: another home takes the seeds after the first four.
        shard = tmp_path / "shard"
        args = collect(shard, server.base_url, "--n", "2", "--skip", "4", "--tag", "t1")
        assert main([*args, "--annotator", "none"]) == 0
        assert "2 run(s) driven this time" in capsys.readouterr().out
        assert [s for s, *_ in batch_runs(shard, "t1")] == [1004, 1005]


def test_collect_with_the_simulated_annotator_counts_its_interventions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    with GatedServer() as server:
        assert main([*collect(home, server.base_url, "--n", "2", "--repeats", "2")]) == 0
    out = capsys.readouterr().out
    tag = "collect-noise-filter-train-simulated"
    rows = batch_runs(home, tag)
    assert [(s, r) for s, r, _, _ in rows] == [(1000, 0), (1000, 1), (1001, 0), (1001, 1)]
    store = SQLiteStore(home / "apollo.db")
    guidance = sum(len(store.events(run, kinds=[Kind.GUIDANCE])) for _, _, run, _ in rows)
    records = [store.get_run(run) for *_, run, _ in rows]
    assert all(r is not None and r.config["options"]["annotator"] == "simulated" for r in records)
    store.close()
    # However many hints fired before the runs ended, the summary counts the log's.
    assert f"interventions: {guidance} " in out
    assert f"annotator-minutes: {guidance * 2:g} (estimated: 2 min per intervention" in out


def test_collected_runs_export_by_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    with GatedServer() as server:
        assert main([*collect(home, server.base_url, "--n", "2", "--tag", "mine")]) == 0
        assert main([*collect(home, server.base_url, "--n", "1", "--tag", "other")]) == 0
    capsys.readouterr()
    out = tmp_path / "data.jsonl"
    assert main(["export", "--home", str(home), "--tag", "mine", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "from 2 runs" in printed
    card = (tmp_path / "data.card.md").read_text()
    assert '"tags": [\n      "mine"\n    ]' in card  # the card records the selection
    exported = {run for *_, run, _ in batch_runs(home, "mine")}
    assert all(run in card for run in exported)
    assert not any(run in card for *_, run, _ in batch_runs(home, "other"))


def _wait_held(server: GatedServer, proc: subprocess.Popen[str]) -> None:
    """Until the held request arrives (or the batch process died first)."""
    while not server.held.wait(0.1):
        if proc.poll() is not None:
            raise AssertionError(f"collect exited ({proc.returncode}) before the held request")


@contextlib.contextmanager
def _ctrl_c_as_at_a_terminal() -> Iterator[None]:
    """A test run in the background (`cmd &`) ignores SIGINT, and so would a child it
    starts: Python then installs no KeyboardInterrupt handler and the collect never hears
    Ctrl-C. At a terminal SIGINT is not ignored. A handled signal is reset to its default at
    exec (only an ignored one stays ignored), so while the child starts, the parent handles
    SIGINT as Python does by default."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_an_interrupted_collect_continues_without_repeating_an_instance(
    tmp_path: Path, how: signal.Signals, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    # The second run's first model call is never answered: it is in flight when stopped.
    with GatedServer(hold=2) as server:
        args = collect(home, server.base_url, "--n", "3", "--tag", "cut", "--annotator", "none")
        with _ctrl_c_as_at_a_terminal():
            proc = subprocess.Popen(
                [sys.executable, "-m", "apollo.cli", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                # faulthandler: a collect that does not stop can be made to say where it hangs.
                env={
                    **os.environ,
                    "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                    "PYTHONFAULTHANDLER": "1",
                },
            )
        try:
            _wait_held(server, proc)
            before = batch_runs(home, "cut")
            os.kill(proc.pid, how)
            try:
                output, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGABRT)  # every thread's stack, then the process ends
                output, _ = proc.communicate(timeout=30)
                raise AssertionError(
                    f"collect did not stop within 60 s of {how.name}:\n{output}"
                ) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert [(s, status) for s, _, _, status in before] == [
            (1000, "finished"),
            (1001, "running"),
        ]
        if how == signal.SIGINT:
            assert proc.returncode == 130, output
            assert "Run the same command again (batch tag cut) to continue" in output
        store = SQLiteStore(home / "apollo.db")
        first, cut = before[0][2], before[1][2]
        first_events = len(store.events(first))

        assert main(args) == 0
        out = capsys.readouterr().out
        assert "1 of 3 runs ended before; continuing" in out
        assert "2 run(s) driven this time" in out
        rows = batch_runs(home, "cut")
        assert [(s, r, status) for s, r, _, status in rows] == [
            (1000, 0, "finished"),
            (1001, 0, "finished"),
            (1002, 0, "finished"),
        ]
        assert rows[0][2] == first and rows[1][2] == cut  # the same runs, none made again
        assert len(store.events(first)) == first_events  # the finished run was not touched
        assert store.events(cut, kinds=[Kind.RUN_RESUMED]), "the cut run was not resumed"
        assert len(store.events(cut, kinds=[Kind.RUN_STARTED])) == 1
        wins = expected_successes(home, [1000, 1001, 1002])
        assert f"episodes: 3 · successes: {wins}" in out
        store.close()


def test_a_batch_reads_its_episodes_from_the_store(tmp_path: Path) -> None:
    """The driver's result and a fresh read of the store agree, slot by slot."""
    home = Home(tmp_path / "home")
    with GatedServer() as server:
        options = RunOptions(model=server.base_url)
        plan = BatchPlan("eval", "direct", (FAMILY,), "test", 2, 1, options)
        result = asyncio.run(Batch(home, plan).drive(concurrency=1))
    assert len(result.driven) == 2 and not result.open
    store = home.open_store()
    for slot in Batch(home, plan).slots(store):
        record = store.get_run(slot.run_id or "")
        assert record is not None
        again = read_episode(store, record, slot.family)
        assert again == slot.episode
        assert again is not None and again.split == "test" and again.steps == 3
        assert again.success == first_option_wins(FAMILY, slot.seed, home.instances_dir)
        assert again.submissions and again.submissions[-1][1] == again.score
        assert again.tokens > again.completion_tokens > 0 and again.model_s > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n", "0"], "--n is 0; give 1 or more instances"),
        (["--n", "301"], "--n 301 is more than split 'train' of family noise-filter holds (300"),
        (["--n", "2", "--skip", "-1"], "--skip is -1; give 0 or more seeds to skip"),
        (
            ["--n", "2", "--skip", "299"],
            "--n 2 after --skip 299 is more than split 'train' of family noise-filter holds (300 "
            "seeds); give at most 1 or a smaller --skip",
        ),
        (
            ["--n", "1", "--skip", "300"],
            "--skip 300 leaves no seed: split 'train' of family noise-filter holds (300 seeds); "
            "skip at most 299",
        ),
        (["--n", "2", "--split", "dev"], "dev"),
        (["--n", "2", "--concurrency", "0"], "--concurrency is 0; give 1 or more"),
        (["--n", "2", "--repeats", "0"], "--repeats is 0; give 1 or more"),
        (["--n", "2", "--tag", "bad tag"], "tag 'bad tag' is not allowed"),
        (["--n", "2", "--temperature", "-1"], "--temperature must be 0 or more"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["collect", FAMILY, "--home", str(tmp_path / "home"), "--model", "http://127.0.0.1:9/v1"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("apollo: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "home" / "runs").exists()


def test_unknown_family_and_model_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    assert main(["collect", "no-such-family", "--n", "1", "--home", home]) == 2
    assert "'no-such-family': no such family" in capsys.readouterr().err
    assert main(["collect", FAMILY, "--n", "1", "--home", home, "--model", "embedded:nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("apollo: error: ") and "nope" in err


def test_a_tag_continues_only_with_the_settings_it_began_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    with GatedServer() as server:
        args = collect(home, server.base_url, "--n", "1", "--tag", "same")
        assert main([*args, "--annotator", "none"]) == 0
        capsys.readouterr()
        assert main([*args, "--annotator", "none", "--max-steps", "5"]) == 2
        err = capsys.readouterr().err
        assert "batch 'same' was started with other settings (max_steps None)" in err
        assert "give a new --tag" in err
        # An evaluation beside it has a tag of its own; an eval cannot take a collect's tag.
        evaluation = ["eval", server.base_url, "--family", FAMILY, "--home", str(home)]
        assert main([*evaluation, "--n", "1"]) == 0
        options = RunOptions(model=server.base_url, annotator="none")
        plan = BatchPlan("eval", "same", (FAMILY,), "train", 1, 1, options)
        with pytest.raises(ValueError, match="names a batch of `apollo collect`"):
            Batch(Home(home), plan).slots(Home(home).open_store())
    assert len(batch_runs(home, "same")) == 1


def test_one_batch_is_driven_by_one_process_at_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    held = lock_batch(Home(home), "busy")  # as a live `apollo collect --tag busy` holds it
    try:
        args = ["collect", FAMILY, "--n", "1", "--tag", "busy", "--home", str(home)]
        assert main([*args, "--model", "http://127.0.0.1:9/v1"]) == 2
    finally:
        held.close()
    err = capsys.readouterr().err
    assert "batch 'busy' is being driven by another live process" in err
    assert batch_runs(home, "busy") == []


def test_a_run_stopped_by_an_error_leaves_the_others_going(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    drive = Runner.drive

    async def failing(self: Runner, run_id: str, on_event: Any = None) -> str:
        record = self.store.get_run(run_id)
        assert record is not None
        if record.config["batch"]["seed"] == 1001:
            raise EmbeddedError("the embedded model server died")
        return await drive(self, run_id, on_event)

    monkeypatch.setattr(Runner, "drive", failing)
    with GatedServer() as server:
        args = [*collect(home, server.base_url, "--n", "3", "--tag", "err", "--annotator", "none")]
        assert main(args) == 1
        out = capsys.readouterr().out
        assert "1 stopped on an error" in out and "the embedded model server died" in out
        rows = batch_runs(home, "err")
        assert [(s, status) for s, _, _, status in rows] == [
            (1000, "finished"),
            (1001, "created"),
            (1002, "finished"),
        ]
        monkeypatch.undo()  # the fault is gone: the same command finishes the batch
        assert main(args) == 0
    again = batch_runs(home, "err")
    assert [status for *_, status in again] == ["finished"] * 3
    assert [run for _, _, run, _ in again] == [run for _, _, run, _ in rows]  # resumed, not new
