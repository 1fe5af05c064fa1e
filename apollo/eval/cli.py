"""`apollo eval`: a model on families' test instances, without guidance, resumable, into an
evaluation folder (apollo.eval.report); `apollo eval --compare A B` compares two such folders.

The folder's batch.json names the batch (its tag) and the model, so running the same command
again continues the same batch: runs that ended are not repeated.

`add_commands(sub, add)` registers it; `add` is the helper of `apollo.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from apollo.llm import models
from apollo.rollout.cli import (
    MODEL_HELP,
    AddFn,
    add_batch_options,
    drive,
    open_line,
    report_end,
    run_options,
)
from apollo.rollout.home import Home
from apollo.rollout.progress import duration
from apollo.terminal import safe

BATCH_FILE = "batch.json"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80] or "model"


def default_out(home: Home, model: str, families: list[str], split: str, skip: int) -> Path:
    """Where an evaluation goes without --out: HOME/evals/MODEL-SPLIT-FAMILIES (with
    `-skipK` for a shard that skips seeds, so shards in one home keep their own reports)."""
    names = "+".join(Path(f).name for f in families)
    shard = f"-skip{skip}" if skip else ""
    return home.path / "evals" / _slug(f"{model}-{split}-{names}{shard}")


def batch_tag(out: Path, model: str) -> tuple[str, bool]:
    """The tag of the evaluation in `out`: the one its batch.json names (the folder must be
    of the same model), or a new one (True: to be written there by `keep_tag`)."""
    path = out / BATCH_FILE
    if path.is_file():
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
            tag, was = str(known["tag"]), str(known["model"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not an evaluation's batch file ({exc})") from exc
        if was != model:
            raise ValueError(f"{out} holds an evaluation of {was}, not {model}; give another --out")
        return tag, False
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    return f"eval-{uuid.uuid4().hex[:10]}", True


def keep_tag(out: Path, tag: str, model: str) -> None:
    """Write the folder's batch.json, so the same --out continues this batch."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"tag": tag, "model": model}) + "\n"
    (out / BATCH_FILE).write_text(text, encoding="utf-8")


def cmd_eval(args: argparse.Namespace, home: Home) -> int:
    """Evaluate a model, or compare two evaluations."""
    from apollo.eval import report
    from apollo.rollout.batch import Batch, BatchPlan

    if args.compare:
        if args.model or args.family:
            raise ValueError("--compare A B takes two evaluation folders and no MODEL or --family")
        return _compare(Path(args.compare[0]), Path(args.compare[1]))
    if not args.model or not args.family:
        raise ValueError("give MODEL and at least one --family F (or --compare A B)")
    model = models.canonical(args.model)
    options = run_options(args, model, annotator="none")
    out = (
        Path(args.out) if args.out else default_out(home, model, args.family, args.split, args.skip)
    )
    tag, new = batch_tag(out, model)
    plan = BatchPlan(
        kind="eval",
        tag=tag,
        families=tuple(args.family),
        split=args.split,
        n=args.n,
        repeats=args.repeats,
        options=options,
        skip=args.skip,
    )
    batch = Batch(home, plan)  # refuses bad families, splits and counts before DIR is made
    batch.check()
    if new:
        keep_tag(out, tag, model)
    result = drive(batch, args.concurrency, f"eval {model}")
    if result is None:
        return 130
    episodes = result.episodes
    if not episodes:
        raise ValueError(f"no episode ended, so {out} has no report; {open_line(result)}")
    meta: dict[str, Any] = {
        "model": model,
        "split": args.split,
        "families_asked": list(args.family),
        "n": args.n,
        "skip": args.skip,
        "repeats": args.repeats,
        "tag": plan.tag,
        "options": {k: v for k, v in asdict(options).items() if k != "annotator"},
        "open_slots": len(result.open),
    }
    made = report.write(out, episodes, meta)
    overall = made["overall"]
    rate, score = overall["success_rate"], overall["mean_score"]
    lines = [
        f"eval {model}: {overall['episodes']} episodes on {overall['instances']} instances "
        f"({len(result.driven)} run(s) driven this time, wall time {duration(result.wall_s)})",
        f"success rate {rate['value']:.1%} [95% CI {rate['lo']:.1%}, {rate['hi']:.1%}] · "
        f"mean score {score['value']:.1f} [{score['lo']:.1f}, {score['hi']:.1f}]",
        *(
            f"pass@{k}: {v['value']:.1%} [{v['lo']:.1%}, {v['hi']:.1%}]"
            for k, v in overall["pass_at_k"].items()
        ),
        f"wrote {out / report.EPISODES}, {report.REPORT_MD}, {report.REPORT_JSON}, {report.PLOT}",
    ]
    return report_end(lines, result)


def _compare(a: Path, b: Path) -> int:
    from apollo.eval import report

    result = report.compare(report.load(a), report.load(b))
    print(
        safe(
            f"compare B={b} against A={a}: {result['shared']} shared instances "
            f"(A alone {result['a_only']}, B alone {result['b_only']}); "
            "B - A with 95% paired bootstrap CI"
        )
    )
    for name in ["overall", *result["families"]]:
        block = result[name]
        parts = []
        for what, fmt in (("success_rate", ".1%"), ("mean_score", ".1f")):
            d = block[what]["b_minus_a"]
            parts.append(
                f"{what.replace('_', ' ')} {block[what]['a']:{fmt}} -> {block[what]['b']:{fmt}}"
                f" (B - A {d['value']:+{fmt}} [{d['lo']:+{fmt}}, {d['hi']:+{fmt}}])"
            )
        print(safe(f"{name} ({block['instances']} instances): " + "; ".join(parts)))
    print(json.dumps(result))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: AddFn) -> None:
    """Register `eval` (`add` is apollo.cli's helper)."""
    p = add(
        "eval",
        cmd_eval,
        "evaluate a model on families' instances without guidance (resumable): episodes.jsonl, "
        "report with bootstrap CIs and pass@k, best-score plot; or --compare two evaluations",
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help=MODEL_HELP)
    p.add_argument(
        "--family",
        action="append",
        metavar="F",
        help="a built-in family or a family folder (repeatable)",
    )
    p.add_argument("--split", default="test", help="the families' split (default test)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="the evaluation folder (default HOME/evals/MODEL-SPLIT-FAMILIES); the same DIR "
        "continues it",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="paired bootstrap difference B - A of two evaluation folders on shared instances",
    )
    add_batch_options(
        p, "instances per family: the first N seeds after --skip (default all)", False
    )
