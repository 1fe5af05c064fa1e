"""Select runs, stream their samples through a format into a JSONL file, write the card."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from apollo.export.card import CardStats, card_path, render_card
from apollo.export.formats import Format
from apollo.export.formats.sharegpt import ShareGPT
from apollo.export.output import Staged, check_target
from apollo.export.parallel import Encoded, encoded, worker_count
from apollo.export.windows import EXPORT_KINDS, ExportError, Sample, WindowOptions, run_samples
from apollo.log.events import Kind, RunRecord
from apollo.log.store import Store, StoreError
from apollo.supervise.policy import Policy

ALL_RUNS = 10**9


@dataclass(frozen=True)
class RunFilter:
    """Which runs to export (every given condition must hold)."""

    runs: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    min_score: float | None = None
    max_score: float | None = None
    annotator: str | None = None  # runs where this person gave guidance or labels
    since: float | None = None  # created at or after (epoch seconds)
    until: float | None = None  # created before
    tags: tuple[str, ...] = ()  # runs of these batches (`apollo collect --tag`)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, ())}


def select_runs(store: Store, flt: RunFilter) -> list[RunRecord]:
    """Runs matching the filter, oldest first. A run asked for by id must exist: a typo would
    otherwise export nothing without a word."""
    for run_id in flt.runs:
        if store.get_run(run_id) is None:
            raise StoreError(f"no run {run_id!r} (see `apollo runs`)")
    out = []
    for run in reversed(store.list_runs(limit=ALL_RUNS)):
        if flt.runs and run.id not in flt.runs:
            continue
        if flt.tasks and run.task not in flt.tasks:
            continue
        if flt.statuses and run.status not in flt.statuses:
            continue
        if flt.tags and (run.config.get("batch") or {}).get("tag") not in flt.tags:
            continue
        if flt.min_score is not None and (run.last_score is None or run.last_score < flt.min_score):
            continue
        if flt.max_score is not None and (run.last_score is None or run.last_score > flt.max_score):
            continue
        if flt.since is not None and run.created < flt.since:
            continue
        if flt.until is not None and run.created >= flt.until:
            continue
        if flt.annotator is not None:
            acts = store.events(run.id, kinds=[Kind.GUIDANCE, Kind.LABEL])
            if not any(ev.actor == flt.annotator for ev in acts):
                continue
        out.append(run)
    return out


def samples(
    store: Store,
    runs: list[RunRecord],
    policy: Policy,
    options: WindowOptions,
    stats: CardStats | None = None,
) -> Iterator[Sample]:
    """Every sample of the runs, one run and one window at a time."""
    for run in runs:
        events = store.events(run.id, kinds=EXPORT_KINDS)
        if stats is not None:
            stats.runs.append(run.id)
            if not any(ev.kind == Kind.LABEL for ev in events):
                stats.unlabelled_runs += 1
        yield from run_samples(store, run, policy, options, events)


@dataclass
class ExportResult:
    path: Path
    card: Path
    stats: CardStats = field(repr=False)


def export(
    store: Store,
    out: Path,
    fmt: Format,
    policy: Policy,
    flt: RunFilter,
    options: WindowOptions,
    command: str,
    force: bool = False,
    workers: int | None = None,
) -> ExportResult:
    """Write one JSON line per sample to `out` and the dataset card beside it. Each must be a
    new path, or a regular file when `force` is set (see `apollo.export.output`); both are
    replaced only once everything is written. A tokenized export is encoded in `workers`
    processes (None: one per core when it is large; see `apollo.export.parallel`)."""
    stats = CardStats(fmt.name, policy.to_json(), command, flt.to_json(), fmt.token_source)
    stats.filters.update(summaries=options.summaries, guidance=options.guidance)
    card = card_path(out)
    for target in (out, card):  # refused before any work is done
        check_target(target, force)
    runs = select_runs(store, flt)
    staged = Staged(force)
    try:
        with staged.open(out) as fh:
            stream = samples(store, runs, policy, options, stats)
            # Closed at once when writing fails, so that the workers stop with it.
            with closing(encoded(fmt, stream, worker_count(fmt, runs, workers))) as lines:
                for sample, done in lines:
                    fh.write(done.line)
                    fh.write("\n")
                    _count(stats, sample, done)
        if isinstance(fmt, ShareGPT) and fmt.dropped_text:
            stats.notes.append(
                f"{fmt.dropped_text} assistant turns had text beside a tool call, which "
                "ShareGPT's function_call cannot hold; it was dropped"
            )
        with staged.open(card) as fh:
            fh.write(render_card(out, stats))
        staged.commit()
    except OSError as exc:  # a full disk, a folder gone: nothing was replaced
        raise ExportError(
            f"writing {out} failed: {exc.strerror or exc}; nothing was replaced"
        ) from exc
    finally:
        staged.discard()
    return ExportResult(out, card, stats)


def _count(stats: CardStats, sample: Sample, done: Encoded) -> None:
    stats.samples += 1
    if sample.kind == "summary":
        stats.summary_samples += 1
    stats.tokens_trained += done.trained
    stats.tokens_masked += done.masked
    stats.turns_trained += len(sample.trained())
    stats.guidance_turns += sample.guidance
    stats.guidance_dropped += sample.guidance_dropped
    for d in sample.decisions.values():
        if d.verdict == "mask":
            stats.turns_masked += 1
            stats.mask_reasons[d.key()] += 1
