"""Calibration of a task family: a model's success on the family's test instances, unguided and
with the simulated annotator's hints, with 95% Wilson intervals.

The two arms run alternately, one instance each, through the real CLI (`apollo eval` for the
unguided arm, `apollo collect --annotator simulated` for the guided one), so if it is stopped
both arms hold about as many episodes; both commands are resumable, so running this again
continues where it stopped and never repeats an episode. `--report-only` runs nothing and
reports what the store holds.

A calibration outlives its home: the results file is written after every pair of episodes and
committed, and a new home (another session or machine) continues after the seeds the file
holds (`--skip`), adding its episodes to the file's, as long as the file is of the same family
version, model and split.

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

from _common import RESULTS, ROOT, report

from apollo.env.family import resolve_family
from apollo.eval.stats import wilson
from apollo.llm import models
from apollo.log.actions import fold_actions
from apollo.rollout.batch import Batch, BatchPlan, Slot
from apollo.rollout.home import Home
from apollo.rollout.runner import RunOptions

ARMS = ("unguided", "guided")


def commands(args: argparse.Namespace, skip: dict[str, int], total: int) -> dict[str, list[str]]:
    """The commands that bring each arm to `total` instances: each arm's batch in this home
    starts after the `skip[arm]` seeds earlier homes ran. An arm already there is left out."""
    apollo = [sys.executable, "-m", "apollo.cli"]
    unguided = ["eval", args.model, "--family", args.family, "--out", unguided_out(args)]
    guided = ["collect", args.family, "--annotator", "simulated", "--model", args.model]
    guided += ["--tag", guided_tag(args)]
    out = {}
    for arm, cmd in zip(ARMS, (unguided, guided), strict=True):
        if total > skip[arm]:
            common = ["--split", args.split, "--n", str(total - skip[arm]), "--home", args.home]
            out[arm] = [*apollo, *cmd, *common, "--skip", str(skip[arm])]
    return out


def unguided_out(args: argparse.Namespace) -> str:
    return str(args.unguided_out or Path(args.home) / f"eval-{args.family}-{slug(args.model)}")


def guided_tag(args: argparse.Namespace) -> str:
    return str(args.guided_tag or f"calib-{args.family}-{slug(args.model)}-guided")


def slug(model: str) -> str:
    return models.canonical(model).replace("embedded:", "").replace("/", "_").replace(":", "_")


def arm_slots(home: Home, args: argparse.Namespace, kind: str, tag: str, skip: int) -> list[Slot]:
    """The arm's slots in this home as its batch sees them (run and episode where it has
    them)."""
    if skip >= args.n:
        return []
    plan = BatchPlan(
        kind=kind,
        tag=tag,
        families=(args.family,),
        split=args.split,
        n=args.n - skip,
        skip=skip,
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


def arm_rows(home: Home, slots: list[Slot]) -> list[dict[str, Any]]:
    """What each ended episode of the arm's slots did."""
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
    return rows


def arm_report(rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Success with its Wilson interval, and what the episodes did, for one arm."""
    out: dict[str, Any] = {"episodes": len(rows), "open_slots": n - len(rows)}
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
    family = resolve_family(args.family)  # an unknown family fails here, before any run
    # The commands run from the repository root: paths given relative to here are made whole.
    args.home = str(Path(args.home).resolve())
    if args.unguided_out:
        args.unguided_out = str(Path(args.unguided_out).resolve())
    home = Home(args.home)
    name = f"calibration_{args.family}_{slug(args.model)}_{args.split}"
    held = held_results(RESULTS / f"{name}.json", args, family.digest[:16])
    earlier = {arm: list(held[arm]["per_episode"]) if held else [] for arm in ARMS}
    marker = home_marker(home, earlier, family.seeds(args.split))
    skip: dict[str, int] = marker["skip"]
    cmds = commands(args, skip, args.n)
    # Each home that added episodes, with what it ran: the file's provenance.
    here: dict[str, Any] = {"home": args.home, **marker}
    here["commands"] = {arm: "apollo " + " ".join(c[3:]) for arm, c in cmds.items()}
    homes = [h for h in (held or {}).get("homes", []) if h["home"] != args.home] + [here]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fixed = {
        "family": args.family,
        # The family's version (apollo/env/family.py digest): an edit makes new instances.
        "family_digest": family.digest[:16],
        "model": models.canonical(args.model),
        "split": args.split,
        "n_per_arm": args.n,
        "success_score": family.task.spec.success_score,
        "threads": os.environ.get("APOLLO_THREADS", "from the load"),
    }

    def write() -> None:
        """The report of every episode so far, earlier homes' and this one's."""
        arms: dict[str, Any] = {}
        tags = {"unguided": eval_tag(args), "guided": guided_tag(args)}
        for arm, kind in zip(ARMS, ("eval", "collect"), strict=True):
            tag = tags[arm]
            ran = arm_rows(home, arm_slots(home, args, kind, tag, skip[arm])) if tag else []
            seeds = {r["seed"] for r in ran}
            rows = [r for r in earlier[arm] if r["seed"] not in seeds] + ran
            arms[arm] = arm_report(sorted(rows, key=lambda r: int(r["seed"])), args.n)
        report(name, fixed | arms | {"homes": homes})

    if not args.report_only:
        for total in range(min(skip.values()) + 1, args.n + 1):
            for arm, cmd in commands(args, skip, total).items():
                done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
                last = (done.stdout.strip().splitlines() or [""])[-1]
                print(f"{arm} n={total}: exit {done.returncode} {last}", flush=True)
                if done.returncode not in (0, 1):  # 1: a run did not end for good (resumable)
                    raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
            write()  # after each pair: a stop loses nothing already ended
    write()


def commit() -> str:
    """The repository's commit (with `+dirty` when the work tree differs): the runtime the
    episodes ran on, which decides them as much as the family does."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return (
        head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
        if head.returncode == 0
        else "unknown"
    )


def eval_tag(args: argparse.Namespace) -> str | None:
    """The unguided arm's batch tag in this home (None before its first episode)."""
    batch_file = Path(unguided_out(args)) / "batch.json"
    return str(json.loads(batch_file.read_text())["tag"]) if batch_file.is_file() else None


def held_results(path: Path, args: argparse.Namespace, digest: str) -> dict[str, Any] | None:
    """The results file (earlier homes' episodes, committed) when it holds this family
    version, model and split; refuses to drop a file that holds another."""
    if not path.is_file():
        return None
    held: dict[str, Any] = json.loads(path.read_text())
    mine = (digest, models.canonical(args.model), args.split)
    theirs = (held.get("family_digest"), held.get("model"), held.get("split"))
    if mine != theirs:
        raise SystemExit(
            f"{path} holds episodes of family digest {theirs[0]}, model {theirs[1]}, split "
            f"{theirs[2]}; this is {mine[0]}, {mine[1]}, {mine[2]}: move the file aside (or "
            "commit it under another name) to start a new calibration"
        )
    return held


def home_marker(
    home: Home, earlier: dict[str, list[dict[str, Any]]], seeds: list[int]
) -> dict[str, Any]:
    """What this home's batches run: how many of the split's first seeds each arm skips (what
    the results file held when the home was first used) and the commit they run on. Kept in
    the home, so a rerun here neither repeats nor double counts an episode."""
    marker = home.path / "calibration.json"
    if marker.is_file():
        held: dict[str, Any] = json.loads(marker.read_text())
        return held
    skip = {}
    for arm, rows in earlier.items():
        if [r["seed"] for r in rows] != seeds[: len(rows)]:
            raise SystemExit(f"the results file's {arm} episodes are not the split's first seeds")
        skip[arm] = len(rows)
    made = {"skip": skip, "apollo_commit": commit()}
    marker.write_text(json.dumps(made) + "\n")
    return made


if __name__ == "__main__":
    main()
