"""`apollo export`: stream samples from the log into a training format, with a card; or
`--inspect` one sample with its trained and masked spans.

`add_commands(sub, add)` registers it; `add` is the helper of `apollo.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from apollo.export.formats import NAMES, Format, get_format
from apollo.export.formats.tokenized import AUTO, PACKAGED, Tokenized, load_tokenizer
from apollo.export.inspect import record_json, render_sample, render_tokens
from apollo.export.output import check_target
from apollo.export.pipeline import RunFilter, export, samples, select_runs
from apollo.export.windows import WindowOptions
from apollo.llm import models
from apollo.rollout.home import Home
from apollo.supervise.cli import add_policy_options
from apollo.supervise.policy import Policy
from apollo.terminal import safe

Command = Callable[[argparse.Namespace, Home], int]
AddFn = Callable[[str, Command, str], argparse.ArgumentParser]


def _date(text: str) -> float:
    """YYYY-MM-DD (UTC) or an ISO date-time, as epoch seconds."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _filter(args: argparse.Namespace) -> RunFilter:
    return RunFilter(
        runs=tuple(args.run or ()),
        tasks=tuple(args.task or ()),
        statuses=tuple(args.status or ()),
        min_score=args.min_score,
        max_score=args.max_score,
        annotator=args.annotator,
        since=args.since,
        until=args.until,
        tags=tuple(args.tag or ()),
    )


def _format(args: argparse.Namespace, home: Home) -> Format:
    if args.format == "tokenized":
        return Tokenized(
            load_tokenizer(_tokenizer_source(args.tokenizer, home)), args.chat_template
        )
    return get_format(args.format)


def _tokenizer_source(choice: str, home: Home) -> str:
    """`--tokenizer` as load_tokenizer takes it: an embedded model (`embedded:NAME`, the
    tokenizer its training base has) becomes its checked GGUF in the home's model cache."""
    spec = models.parse(choice) if choice.startswith(models.EMBEDDED) else None
    if spec is None:
        return choice
    if spec.trained is not None:
        raise ValueError(
            f"--tokenizer {choice}: give the base, embedded:{spec.name}; a trained model "
            "keeps its base's tokenizer"
        )
    return str(models.ensure(spec, models.cache_dir(home.path)))


def cmd_export(args: argparse.Namespace, home: Home) -> int:
    """Export samples (or inspect one)."""
    store = home.open_store()
    policy = Policy.parse(args.policy, args.precedence)
    options = WindowOptions(summaries=args.summaries, guidance=not args.no_guidance)
    flt = _filter(args)
    if args.inspect:
        return _inspect(args, home, policy, options, flt)
    if not args.out:
        raise ValueError("--out PATH is required (or use --inspect)")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers}: give 1 or more processes")
    command = "apollo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = Path(args.out)
    check_target(out, args.force)  # before loading a tokenizer or reading any run
    fmt = _format(args, home)
    result = export(
        store, out, fmt, policy, flt, options, command, force=args.force, workers=args.workers
    )
    s = result.stats
    print(
        safe(
            f"exported {s.samples} samples from {len(s.runs)} runs to {result.path} "
            f"({s.turns_trained} turns trained, {s.turns_masked} masked); card: {result.card}"
        )
    )
    return 0


def _inspect(
    args: argparse.Namespace, home: Home, policy: Policy, options: WindowOptions, flt: RunFilter
) -> int:
    store = home.open_store()
    color = sys.stdout.isatty() and not args.no_color
    fmt = _format(args, home)
    for n, sample in enumerate(samples(store, select_runs(store, flt), policy, options)):
        if n < args.sample:
            continue
        print(render_sample(sample, color))
        record = fmt.encode(sample)
        print(f"\n--- as {fmt.name} ---")
        if isinstance(fmt, Tokenized):
            print(render_tokens(record, fmt.tokenizer, color))
        else:
            print(record_json(record))
        return 0
    print(f"no sample {args.sample}: the selected runs have fewer samples", file=sys.stderr)
    return 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: AddFn) -> None:
    """Register `export` (`add` is apollo.cli's helper)."""
    p = add("export", cmd_export, "export runs as SFT data (context windows, masked actions)")
    p.add_argument("--format", choices=NAMES, default="openai")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="JSONL file to write (a new path); the card goes beside it as NAME.card.md",
    )
    p.add_argument(
        "--force", action="store_true", help="replace --out and its card if they are files"
    )
    p.add_argument("--summaries", action="store_true", help="also export summary calls")
    p.add_argument(
        "--no-guidance", action="store_true", help="drop <real_user> guidance turns from samples"
    )
    p.add_argument("--run", action="append", metavar="RUN", help="only these runs (repeatable)")
    p.add_argument("--task", action="append", help="only runs of this task (repeatable)")
    p.add_argument(
        "--tag", action="append", help="only runs of this batch (`apollo collect`; repeatable)"
    )
    p.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    p.add_argument("--min-score", type=float, help="only runs whose last score is at least this")
    p.add_argument("--max-score", type=float, help="only runs whose last score is at most this")
    p.add_argument("--annotator", help="only runs this person guided or labelled")
    p.add_argument("--since", type=_date, help="only runs created on or after (YYYY-MM-DD)")
    p.add_argument("--until", type=_date, help="only runs created before (YYYY-MM-DD)")
    add_policy_options(p)
    p.add_argument(
        "--tokenizer",
        default=PACKAGED,
        help="tokenized format: 'smollm2' (packaged), 'embedded:NAME' (an embedded model's, "
        "what `apollo train --base embedded:NAME` needs), a local folder or a .gguf file",
    )
    p.add_argument(
        "--chat-template",
        default=AUTO,
        help="tokenized format: 'auto', 'apollo' (ChatML with tool calls) or a Jinja file",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="tokenized format: processes that encode samples (default: one per core when the "
        "runs hold 2,000 steps or more, else 1)",
    )
    p.add_argument(
        "--inspect", action="store_true", help="print one sample's trained and masked spans"
    )
    p.add_argument("--sample", type=int, default=0, help="with --inspect: which sample (from 0)")
    p.add_argument("--no-color", action="store_true", help="with --inspect: no ANSI colours")
