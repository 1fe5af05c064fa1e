"""Calibration of a task family: a model's success on the family's test instances, unguided and
with the simulated annotator's hints, with 95% Wilson intervals.

The two arms run alternately, one instance each, through the real CLI (`apollo eval` for the
unguided arm, `apollo collect --annotator simulated` for the guided one), so if it is stopped
both arms hold about as many episodes; both commands are resumable, so running this again
continues where it stopped and never repeats an episode. `--report-only` runs nothing and
reports what the store holds.

    APOLLO_THREADS=2 python benchmarks/calibrate_family.py noise-filter \\
        --model embedded:qwen2.5-coder-1.5b --n 50 --home calib/home

Run it on a quiet machine, nothing else beside it: the model server's speed decides how many
steps fit in a family's working time. Writes
benchmarks/results/calibration_FAMILY_MODEL_SPLIT.json (with the commands that made it) and
prints it as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import ROOT, report

from apollo.env.family import resolve_family
from apollo.eval.stats import wilson
from apollo.llm import models
from apollo.log.actions import fold_actions
from apollo.rollout.batch import Batch, BatchPlan, Slot
from apollo.rollout.home import Home
from apollo.rollout.runner import RunOptions


def commands(args: argparse.Namespace, n: int) -> dict[str, list[str]]:
    """The two arms' commands for the first `n` instances."""
    apollo = [sys.executable, "-m", "apollo.cli"]
    common = ["--split", args.split, "--n", str(n), "--home", args.home]
    unguided = ["eval", args.model, "--family", args.family, "--out", unguided_out(args)]
    guided = ["collect", args.family, "--annotator", "simulated", "--model", args.model]
    guided += ["--tag", guided_tag(args)]
    return {"unguided": [*apollo, *unguided, *common], "guided": [*apollo, *guided, *common]}


def unguided_out(args: argparse.Namespace) -> str:
    return str(args.unguided_out or Path(args.home) / f"eval-{args.family}-{slug(args.model)}")


def guided_tag(args: argparse.Namespace) -> str:
    return str(args.guided_tag or f"calib-{args.family}-{slug(args.model)}-guided")


def slug(model: str) -> str:
    return models.canonical(model).replace("embedded:", "").replace("/", "_").replace(":", "_")


def arm_slots(home: Home, args: argparse.Namespace, kind: str, tag: str) -> list[Slot]:
    """The arm's slots as its batch sees them (run and episode where it has them)."""
    plan = BatchPlan(
        kind=kind,
        tag=tag,
        families=(args.family,),
        split=args.split,
        n=args.n,
        repeats=1,
        options=RunOptions(
            model=models.canonical(args.model),
            annotator="simulated" if kind == "collect" else "none",
        ),
    )
    store = home.open_store()
    try:
        return Batch(home, plan).slots(store)
    finally:
        store.close()


def arm_report(home: Home, slots: list[Slot]) -> dict[str, Any]:
    """Success with its Wilson interval, and what the episodes did, for one arm."""
    ended = [s for s in slots if s.episode is not None]
    store = home.open_store()
    try:
        rows = []
        for slot in ended:
            ep = slot.episode
            assert ep is not None
            fold = fold_actions(store.events(ep.run_id))
            hints = sorted({g.hint_id for g in fold.guidance.values() if g.hint_id})
            rows.append(
                {
                    "seed": ep.seed,
                    "run_id": ep.run_id,
                    "status": ep.status,
                    "score": ep.score,
                    "success": ep.success,
                    "steps": ep.steps,
                    "working_time_s": round(ep.working_time_s, 1),
                    "submissions": sum(1 for sub in fold.submissions if not sub["final"]),
                    "malformed_replies": sum(1 for r in fold.results if r.malformed),
                    "hints": hints,
                }
            )
    finally:
        store.close()
    out: dict[str, Any] = {"episodes": len(rows), "open_slots": len(slots) - len(rows)}
    if rows:
        wins = sum(r["success"] for r in rows)
        rate = wilson(wins, len(rows))
        out |= {
            "successes": wins,
            "success_rate": round(rate.value, 4),
            "wilson_95": [round(rate.lo, 4), round(rate.hi, 4)],
            "mean_score": round(statistics.fmean(float(r["score"] or 0) for r in rows), 2),
            "median_steps": statistics.median(r["steps"] for r in rows),
            "median_working_time_s": statistics.median(r["working_time_s"] for r in rows),
            "episodes_with_a_submission": sum(1 for r in rows if r["submissions"]),
            "hints_delivered": sum(len(r["hints"]) for r in rows),
        }
    return out | {"per_episode": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--model", default=models.EMBEDDED)
    parser.add_argument(
        "--split",
        default="test",
        help="whose first N seeds (test: what the calibration states; train: to iterate on a "
        "design without tuning it on the test split)",
    )
    parser.add_argument("--n", type=int, default=50, help="instances per arm")
    parser.add_argument("--home", required=True, help="the Apollo home the runs go into")
    parser.add_argument("--unguided-out", help="eval folder of the unguided arm")
    parser.add_argument("--guided-tag", help="batch tag of the guided arm")
    parser.add_argument("--report-only", action="store_true", help="run nothing, report")
    args = parser.parse_args()
    resolve_family(args.family)  # an unknown family fails here, before any run
    # The commands run from the repository root: paths given relative to here are made whole.
    args.home = str(Path(args.home).resolve())
    if args.unguided_out:
        args.unguided_out = str(Path(args.unguided_out).resolve())
    home = Home(args.home)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not args.report_only:
        for n in range(1, args.n + 1):
            for arm, cmd in commands(args, n).items():
                done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
                last = (done.stdout.strip().splitlines() or [""])[-1]
                print(f"{arm} n={n}: exit {done.returncode} {last}", flush=True)
                if done.returncode not in (0, 1):  # 1: a run did not end for good (resumable)
                    raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    batch_file = Path(unguided_out(args)) / "batch.json"
    if not batch_file.is_file():
        raise SystemExit(f"{batch_file} is missing: no unguided episode ran (drop --report-only)")
    tag = json.loads(batch_file.read_text())["tag"]
    result = {
        "family": args.family,
        # The family's version (apollo/env/family.py digest): an edit makes new instances.
        "family_digest": resolve_family(args.family).digest[:16],
        "model": models.canonical(args.model),
        "split": args.split,
        "n_per_arm": args.n,
        "success_score": resolve_family(args.family).task.spec.success_score,
        "threads": os.environ.get("APOLLO_THREADS", "from the load"),
        "unguided": arm_report(home, arm_slots(home, args, "eval", tag)),
        "guided": arm_report(home, arm_slots(home, args, "collect", guided_tag(args))),
        "commands": {arm: "apollo " + " ".join(c[3:]) for arm, c in commands(args, args.n).items()},
    }
    report(f"calibration_{args.family}_{slug(args.model)}_{args.split}", result)


if __name__ == "__main__":
    main()
