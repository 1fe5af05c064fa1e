"""Calibration of a task family: a model's success unguided and with hints (95% Wilson CIs).

The two arms run alternately, one instance each, through the real CLI (`apollo eval` for the
unguided arm, `apollo collect --annotator simulated` for the guided one), so if it is stopped
both arms hold about as many episodes; both commands are resumable, so running this again
continues where it stopped and never repeats an episode. `--report-only` runs nothing and
reports what the store holds.

A calibration outlives its home: the results file is written after every pair of episodes and
committed, and a new home (another session or machine) continues after the seeds the file
holds (`--skip`), adding its episodes to the file's, as long as the file is of the same family
version, model and split. The home keeps its id, skips, threads and the commits it ran on in
HOME/calibration.json, and the file lists every home that added episodes with those. A home
whose seeds another home has run since is refused (go on in a new one).

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
import uuid
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
MARKER = "calibration.json"  # in the home: its id, skips, commits and threads


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
    path = RESULTS / f"calibration_{args.family}_{slug(args.model)}_{args.split}.json"
    digest = family.digest[:16]
    seeds = family.seeds(args.split)
    marker_file = home.path / MARKER
    known = marker_file.is_file()
    marker = json.loads(marker_file.read_text()) if known else new_marker(path, args, digest, seeds)
    skip: dict[str, int] = marker["skip"]
    for arm, k in skip.items():
        if args.n < k:
            raise SystemExit(
                f"--n {args.n} is below the {k} {arm} episodes already held; give --n {k} or more"
            )
    ran = home_rows(home, args, skip) if known else {arm: [] for arm in ARMS}
    if not args.report_only:
        if known:
            refuse_overtaken(held_rows(path, args, digest), ran, skip, seeds)
        if (now := commit()) not in marker["apollo_commits"]:
            marker["apollo_commits"].append(now)
        marker["threads"] = os.environ.get("APOLLO_THREADS", "from the load")
        marker_file.write_text(json.dumps(marker) + "\n")
    fixed = {
        "family": args.family,
        # The family's version (apollo/env/family.py digest): an edit makes new instances.
        "family_digest": digest,
        "model": models.canonical(args.model),
        "split": args.split,
        "n_per_arm": args.n,
        "success_score": family.task.spec.success_score,
    }

    def write() -> None:
        """The report of every episode so far: the results file's (read again: another home
        may have added to it) with this home's."""
        mine = home_rows(home, args, skip) if marker_file.is_file() else ran
        arms: dict[str, Any] = {}
        for arm, held in held_rows(path, args, digest).items():
            fresh = {r["seed"] for r in mine[arm]}
            rows = sorted([r for r in held if r["seed"] not in fresh] + mine[arm], key=seed_of)
            arms[arm] = arm_report(rows, args.n)
        homes = [h for h in held_homes(path) if h.get("id") != marker["id"]]
        if any(mine.values()):  # each home that added episodes, with what it ran on
            cmds = commands(args, skip, args.n)
            runs = {arm: "apollo " + " ".join(c[3:]) for arm, c in cmds.items()}
            homes.append({"home": args.home, **marker, "commands": runs})
        report(path.stem, fixed | arms | {"homes": homes})

    if not args.report_only:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        # From the first total an arm has not reached in this home (a resume skips the rest).
        first = min(skip[arm] + len(ran[arm]) for arm in ARMS) + 1
        for total in range(first, args.n + 1):
            for arm, cmd in commands(args, skip, total).items():
                done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
                last = (done.stdout.strip().splitlines() or [""])[-1]
                print(f"{arm} n={total}: exit {done.returncode} {last}", flush=True)
                if done.returncode not in (0, 1):  # 1: a run did not end for good (resumable)
                    raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
            write()  # after each pair: a stop loses nothing already ended
    write()


def seed_of(row: dict[str, Any]) -> int:
    return int(row["seed"])


def home_rows(
    home: Home, args: argparse.Namespace, skip: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    """Each arm's ended episodes in this home."""
    tags = {"unguided": eval_tag(args), "guided": guided_tag(args)}
    out = {}
    for arm, kind in zip(ARMS, ("eval", "collect"), strict=True):
        tag = tags[arm]
        out[arm] = arm_rows(home, arm_slots(home, args, kind, tag, skip[arm])) if tag else []
    return out


def commit() -> str:
    """The repository's commit (with `+dirty` when tracked files differ, results aside): the
    runtime the episodes ran on, which decides them as much as the family does."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    status = [
        *git,
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":!benchmarks/results",
    ]
    dirty = subprocess.run(status, capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


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


def held_rows(path: Path, args: argparse.Namespace, digest: str) -> dict[str, list[dict[str, Any]]]:
    """Each arm's episodes in the results file (none without one)."""
    held = held_results(path, args, digest)
    return {arm: list(held[arm]["per_episode"]) if held else [] for arm in ARMS}


def held_homes(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text()).get("homes", [])) if path.is_file() else []


def new_marker(
    path: Path, args: argparse.Namespace, digest: str, seeds: list[int]
) -> dict[str, Any]:
    """A new home's record: an id, and how many of the split's first seeds each arm skips:
    those the results file holds without a gap (a seed after a gap runs again here, and this
    home's episode replaces the file's)."""
    skip = {}
    for arm, rows in held_rows(path, args, digest).items():
        held = {seed_of(r) for r in rows}
        skip[arm] = next((i for i, s in enumerate(seeds) if s not in held), len(seeds))
    return {"id": uuid.uuid4().hex[:12], "skip": skip, "apollo_commits": []}


def refuse_overtaken(
    held: dict[str, list[dict[str, Any]]],
    ran: dict[str, list[dict[str, Any]]],
    skip: dict[str, int],
    seeds: list[int],
) -> None:
    """Refuse to go on in a home whose seeds another home has run since (going on would
    repeat their episodes): a new home continues after them."""
    for arm in ARMS:
        mine = {r["run_id"] for r in ran[arm]}
        skipped = set(seeds[: skip[arm]])
        theirs = [r for r in held[arm] if r["run_id"] not in mine and seed_of(r) not in skipped]
        if theirs:
            raise SystemExit(
                f"the results file holds {arm} episodes this home's seeds include that another "
                f"home ran (seed {seed_of(theirs[0])} on); continue with a new --home"
            )


if __name__ == "__main__":
    main()
