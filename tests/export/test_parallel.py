"""Encoding in worker processes gives what one process gives, in order, and fails cleanly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from apollo.export.formats import get_format
from apollo.export.formats.openai import OpenAI
from apollo.export.formats.tokenized import Tokenized
from apollo.export.parallel import IN_FLIGHT, PARALLEL_MIN_STEPS, cores, encoded, worker_count
from apollo.export.pipeline import RunFilter, export
from apollo.export.windows import ExportError, Sample, WindowOptions, run_samples
from apollo.log.events import RunRecord
from apollo.supervise.policy import Policy
from tests.agent.harness import Outcome
from tests.export.test_tokenized import AWKWARD, REWRITES, sample


def window_samples(outcome: Outcome) -> list[Sample]:
    run = outcome.store.get_run(outcome.run_id)
    assert run is not None
    return list(run_samples(outcome.store, run, Policy(), WindowOptions()))


def test_workers_give_the_lines_of_one_process_in_order(
    summarized: Outcome, tokenizer: Any
) -> None:
    fmt = Tokenized(tokenizer)
    windows = window_samples(summarized)
    # More samples than are ever in flight, so the queue refills many times.
    many = windows * (IN_FLIGHT * 2 // len(windows) + 3)
    alone = [done for _, done in encoded(fmt, many, 1)]
    pooled = list(encoded(fmt, many, 2))
    assert [s for s, _ in pooled] == many
    assert [done for _, done in pooled] == alone
    assert len({done.line for done in alone}) == len(windows) > 1  # windows differ


def test_an_export_in_workers_writes_the_same_file_and_card(
    summarized: Outcome, tokenizer: Any, tmp_path: Path
) -> None:
    results = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.jsonl"
        result = export(
            summarized.store,
            out,
            Tokenized(tokenizer),
            Policy(),
            RunFilter(runs=(summarized.run_id,)),
            WindowOptions(),
            "test",
            workers=workers,
        )
        results.append((out.read_bytes(), result.stats))
    (one, one_stats), (two, two_stats) = results
    assert one == two and one.count(b"\n") == one_stats.samples == 3
    assert one_stats.tokens_trained == two_stats.tokens_trained > 0
    assert one_stats.tokens_masked == two_stats.tokens_masked > 0


def test_an_error_in_a_worker_is_raised_as_it_was(tokenizer: Any, tmp_path: Path) -> None:
    (tmp_path / "rewrites.jinja").write_text(REWRITES)
    fmt = Tokenized(tokenizer, str(tmp_path / "rewrites.jinja"))
    with pytest.raises(ExportError, match="renders message 2 differently once later messages"):
        list(encoded(fmt, [sample(AWKWARD)] * 3, 2))


class DiesInWorkers(OpenAI):
    """A format whose encoding kills the process it runs in, unless that is the test's."""

    def __init__(self) -> None:
        self.parent = os.getpid()

    def encode_line(self, sample: Sample) -> tuple[str, dict[str, Any] | None]:
        if os.getpid() != self.parent:
            os._exit(9)
        return super().encode_line(sample)


def test_a_worker_that_dies_is_a_clear_error_and_writes_nothing(
    summarized: Outcome, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match=r"an export worker process died .*--workers 1"):
        list(encoded(DiesInWorkers(), window_samples(summarized), 2))
    fmt = DiesInWorkers()
    fmt.name = "tokenized"  # so that export uses workers at all
    out = tmp_path / "out.jsonl"
    with pytest.raises(ExportError, match="worker process died"):
        export(
            summarized.store,
            out,
            fmt,
            Policy(),
            RunFilter(runs=(summarized.run_id,)),
            WindowOptions(),
            "test",
            workers=2,
        )
    assert list(tmp_path.iterdir()) == []  # neither the file, its card nor a staged part


def runs_of(steps: int) -> list[RunRecord]:
    return [
        RunRecord("r1", "t", "finished", steps // 2, 0.0, 0.0),
        RunRecord("r2", "t", "finished", steps - steps // 2, 0.0, 0.0),
    ]


def test_worker_count(tokenizer: Any) -> None:
    tok = Tokenized(tokenizer)
    big, small = runs_of(PARALLEL_MIN_STEPS), runs_of(PARALLEL_MIN_STEPS - 1)
    assert worker_count(tok, big, None) == cores()
    assert worker_count(tok, small, None) == 1  # starting workers would cost more
    assert worker_count(tok, small, 3) == 3 and worker_count(tok, big, 1) == 1
    assert worker_count(get_format("sharegpt"), big, 4) == 1  # counts what it drops, in-process
