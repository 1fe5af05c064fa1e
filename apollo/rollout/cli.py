"""`apollo collect`, and what it shares with `apollo eval`: the run flags of a batch, driving
one with live progress, and how an interrupted one says it continues.

`add_commands(sub, add)` registers it; `add` is the helper of `apollo.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

from apollo.llm import models, sampling
from apollo.rollout.annotator import ANNOTATORS, LLM_ANNOTATOR_MODEL
from apollo.rollout.home import Home
from apollo.rollout.progress import duration
from apollo.terminal import safe

if TYPE_CHECKING:  # the batch machinery is imported by the commands that run (startup time)
    from apollo.rollout.batch import Batch, BatchResult, Summary
    from apollo.rollout.runner import RunOptions

Command = Callable[[argparse.Namespace, Home], int]
AddFn = Callable[[str, Command, str], argparse.ArgumentParser]
MODEL_HELP = (
    "'embedded' (the default embedded model), 'embedded:NAME' (see `apollo models`) or an "
    "OpenAI-compatible base URL (…/v1)"
)


def add_batch_options(p: argparse.ArgumentParser, n_help: str, n_required: bool) -> None:
    """The flags every batch command takes: which seeds, how many at once, how runs run."""
    p.add_argument("--n", type=int, metavar="N", required=n_required, help=n_help)
    p.add_argument(
        "--skip",
        type=int,
        default=0,
        metavar="K",
        help="start after the split's first K seeds (to shard a split across homes)",
    )
    p.add_argument("--repeats", type=int, default=1, metavar="K", help="runs per instance")
    p.add_argument(
        "--concurrency", type=int, default=1, metavar="K", help="runs driven at once (default 1)"
    )
    p.add_argument("--model-name", default="default", help="model name sent to an endpoint")
    p.add_argument("--api-key-env", help="environment variable that holds the endpoint's API key")
    p.add_argument(
        "--constrain",
        choices=["json_object", "json_schema"],
        help="constrained decoding of tool calls at an endpoint (embedded models always use it)",
    )
    p.add_argument("--max-steps", type=int, help="stop each run after this many steps")
    sampling.add_options(p)


def add_annotator_options(p: argparse.ArgumentParser, default: str, help_: str) -> None:
    """--annotator and the LLM annotator's model flags (`run` and `collect`)."""
    p.add_argument("--annotator", choices=ANNOTATORS, default=default, help=help_)
    p.add_argument(
        "--annotator-model",
        default=LLM_ANNOTATOR_MODEL,
        metavar="MODEL",
        help=f"the model of `--annotator llm`: {MODEL_HELP} (default {LLM_ANNOTATOR_MODEL})",
    )
    p.add_argument(
        "--annotator-model-name", default="default", help="model name sent to its endpoint"
    )
    p.add_argument(
        "--annotator-api-key-env", metavar="VAR", help="environment variable with its API key"
    )


class AnnotatorSettings(TypedDict):
    """The RunOptions fields the annotator flags set."""

    annotator: str
    annotator_model: str
    annotator_model_name: str
    annotator_api_key_env: str | None


def annotator_settings(args: argparse.Namespace, annotator: str | None = None) -> AnnotatorSettings:
    """The RunOptions fields of the annotator flags (`annotator` instead of --annotator)."""
    return {
        "annotator": annotator or args.annotator,
        "annotator_model": models.canonical(args.annotator_model),
        "annotator_model_name": args.annotator_model_name,
        "annotator_api_key_env": args.annotator_api_key_env,
    }


def run_options(args: argparse.Namespace, model: str, annotator: str) -> RunOptions:
    """The RunOptions of a batch command's runs (stored with each run)."""
    from apollo.rollout.runner import RunOptions

    options = RunOptions(
        model=models.canonical(model),
        model_name=args.model_name,
        api_key_env=args.api_key_env,
        annotator=annotator,
        constrain=args.constrain,
        max_steps=args.max_steps,
        params=sampling.params(args),
    )
    if hasattr(args, "annotator_model"):  # collect has the annotator flags, eval not
        options = dataclasses.replace(options, **annotator_settings(args, annotator))
    return options


def drive(batch: Batch, concurrency: int, title: str) -> BatchResult | None:
    """Drive a batch with live progress; None when Ctrl-C stopped it (having said how to
    continue)."""
    from apollo.rollout.batch_view import ProgressView

    plan = batch.plan
    view = ProgressView(title)
    try:
        return asyncio.run(batch.drive(concurrency, view))
    except KeyboardInterrupt:
        view.console.print(
            safe(
                f"apollo: interrupted; the runs in flight stopped where a crash would leave "
                f"them. Run the same command again (batch tag {plan.tag}) to continue: runs "
                "that ended are not repeated, the others resume from their logs"
            ),
            markup=False,
        )
        return None


def summary_lines(summary: Summary) -> list[str]:
    """What a batch's episodes add up to, in words."""
    from apollo.rollout.batch import MINUTES_PER_INTERVENTION
    from apollo.rollout.batch_view import count

    rate = summary.success_rate
    per = summary.interventions_per_success
    return [
        f"episodes: {summary.episodes} · successes: {summary.successes}"
        + (f" ({rate:.0%})" if rate is not None else ""),
        f"interventions: {summary.interventions}"
        + (f" ({per:.2g} per success)" if per is not None else " (no success to divide by)"),
        f"annotator-minutes: {summary.annotator_minutes:g} (estimated: "
        f"{MINUTES_PER_INTERVENTION:g} min per intervention; measured console watching: "
        f"{summary.presence_minutes:g} min)",
        f"model tokens: {count(summary.tokens)} ({count(summary.completion_tokens)} completion)"
        f" · working time: {duration(summary.working_time_s)}",
    ]


def open_line(result: BatchResult) -> str | None:
    """A line on the slots left open, or None when every run ended for good."""
    if not result.open:
        return None
    line = (
        f"{len(result.open)} run(s) did not end for good (a failed model, or driven by "
        "another process); run the same command again to resume them"
    )
    if result.failed:
        run_id, why = next(iter(result.failed.items()))
        line += f"; {len(result.failed)} stopped on an error, the first ({run_id}): {why}"
    return line


def report_end(lines: list[str], result: BatchResult) -> int:
    """Print a batch command's closing lines, and the open slots' line if any; the exit code
    (1 while a run has not ended for good)."""
    if (line := open_line(result)) is not None:
        lines.append(line)
    for line in lines:
        print(safe(line), flush=True)
    return 1 if result.open else 0


def cmd_collect(args: argparse.Namespace, home: Home) -> int:
    """Collect runs of a family's split, guided or not, tagged for export."""
    from apollo.env.family import resolve_family
    from apollo.rollout.batch import Batch, BatchPlan, Summary

    family = resolve_family(args.family)
    tag = args.tag or f"collect-{family.id}-{args.split}-{args.annotator}"
    plan = BatchPlan(
        kind="collect",
        tag=tag,
        families=(args.family,),
        split=args.split,
        n=args.n,
        repeats=args.repeats,
        options=run_options(args, args.model, args.annotator),
        skip=args.skip,
    )
    result = drive(Batch(home, plan), args.concurrency, f"collect {tag}")
    if result is None:
        return 130
    lines = [
        f"collect {tag}: {len(result.driven)} run(s) driven this time, "
        f"wall time {duration(result.wall_s)}",
        *summary_lines(Summary.of(result.episodes)),
        f"export them: apollo export --tag {tag} --out FILE",
    ]
    return report_end(lines, result)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: AddFn) -> None:
    """Register `collect` (`add` is apollo.cli's helper)."""
    p = add(
        "collect",
        cmd_collect,
        "run the first N instances of a family's split, guided by the simulated annotator or "
        "not, K at a time; resumable, every run tagged (apollo export --tag)",
    )
    p.add_argument("family", help="a built-in family (see `apollo tasks`) or a family folder")
    p.add_argument("--split", default="train", help="the family's split (default train)")
    add_annotator_options(
        p,
        "simulated",
        "who guides the runs: the rule-based simulated annotator (default), an LLM annotator "
        "(--annotator-model) or none",
    )
    p.add_argument("--model", default=models.EMBEDDED, help=MODEL_HELP)
    p.add_argument(
        "--tag",
        help="the batch's name, in each run's config (default collect-FAMILY-SPLIT-ANNOTATOR); "
        "the same tag continues the batch",
    )
    add_batch_options(p, "instances: the split's first N seeds after --skip", n_required=True)
