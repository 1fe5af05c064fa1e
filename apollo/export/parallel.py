"""Encode samples in worker processes, in their order.

A tokenized export spends nearly all its time in the chat template and the tokenizer, on one
core; the samples are independent, so N worker processes encode about N times as fast. The
parent reads the store and writes the file; each worker holds a copy of the format (pickled
once, with its tokenizer) and encodes the samples it is sent. At most a few samples per worker
are in flight, so memory stays flat however large the export.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from apollo.export.formats import Format
from apollo.export.windows import ExportError, Sample
from apollo.log.events import RunRecord

IN_FLIGHT = 8  # samples queued per worker: enough to keep it busy, few enough to hold
# Below this many steps starting workers (about a second each: Python, transformers and the
# tokenizer) costs more than it saves.
PARALLEL_MIN_STEPS = 2000


@dataclass(frozen=True, slots=True)
class Encoded:
    """A sample's JSON line and its token counts (trained, and in masked assistant turns)."""

    line: str
    trained: int
    masked: int


def encode(fmt: Format, sample: Sample) -> Encoded:
    """The sample through the format, in this process."""
    line, record = fmt.encode_line(sample)
    trained, masked = fmt.tokens(sample, record)
    return Encoded(line, trained, masked)


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(fmt: Format, runs: list[RunRecord], asked: int | None) -> int:
    """Workers for an export: for a tokenized one, `asked`, or one per core when it holds
    enough steps; for any other format none, whatever was asked (they write faster than
    samples could be sent to a worker, and ShareGPT counts what it drops as it goes)."""
    if fmt.name != "tokenized":
        return 1
    if asked is not None:
        return max(1, asked)
    return cores() if sum(run.step for run in runs) >= PARALLEL_MIN_STEPS else 1


def encoded(
    fmt: Format, samples: Iterable[Sample], workers: int
) -> Generator[tuple[Sample, Encoded], None, None]:
    """Each sample with its encoding, in order: in this process for one worker, else in
    `workers` processes. An error a worker raises (an ExportError about a sample) is raised
    here as it was; a worker that dies is an ExportError."""
    if workers <= 1:
        for sample in samples:
            yield sample, encode(fmt, sample)
        return
    # spawn, not fork: forking a process whose tokenizer threads have run can deadlock.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_adopt,
        initargs=(pickle.dumps(fmt),),
    )
    pending: deque[tuple[Sample, Future[Encoded]]] = deque()
    try:
        for sample in samples:
            pending.append((sample, pool.submit(_encode, sample)))
            if len(pending) >= IN_FLIGHT * workers:
                yield _next(pending)
        while pending:
            yield _next(pending)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _next(pending: deque[tuple[Sample, Future[Encoded]]]) -> tuple[Sample, Encoded]:
    sample, future = pending.popleft()
    try:
        return sample, future.result()
    except BrokenProcessPool as exc:
        raise ExportError(
            f"an export worker process died or could not start (at run {sample.run_id} window "
            f"{sample.index}; out of memory, killed, or its format would not load); nothing was "
            "replaced: rerun, or pass --workers 1"
        ) from exc


_format: Format | None = None  # a worker's copy of the export's format


def _adopt(pickled: bytes) -> None:
    global _format
    # One thread per worker: the workers already fill the cores, and a tokenizer's own threads
    # beside them only contend (a few percent slower, measured on 2 cores).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _format = pickle.loads(pickled)


def _encode(sample: Sample) -> Encoded:
    assert _format is not None, "the pool's initializer sets the format"
    return encode(_format, sample)
