"""`apollo experiment SPEC.yaml`: the method's ablation as one command (docs/experiment.md).
`--plan` checks the spec and prints the phases, sizes and power; without it the driver runs
every phase (collections, supervision, exports, trainings, evaluations, the report),
resumably.

`add_commands(sub, add)` registers it; `add` is the helper of `apollo.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from apollo.rollout.cli import AddFn
from apollo.rollout.home import Home
from apollo.terminal import safe


def cmd_experiment(args: argparse.Namespace, home: Home) -> int:
    """Print an experiment's plan, or run its phases."""
    from apollo.experiment.driver import Driver
    from apollo.experiment.plan import make_plan
    from apollo.experiment.report import REPORT
    from apollo.experiment.spec import load_experiment
    from apollo.rollout.batch_view import ProgressView

    experiment = load_experiment(args.spec, args.profile)
    if args.plan:
        for line in make_plan(experiment).lines():
            print(safe(line))
        return 0
    driver = Driver(
        home,
        experiment,
        say=lambda line: print(safe(line), flush=True),
        view=ProgressView,
        concurrency=args.concurrency,
    )
    try:
        asyncio.run(driver.run())
    except KeyboardInterrupt:
        print(
            "apollo: interrupted; run the same command again to continue the experiment "
            "(nothing that finished is redone)",
            file=sys.stderr,
        )
        return 130
    print(safe(f"experiment {experiment.name} done: {experiment.report_dir / REPORT}"))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: AddFn) -> None:
    """Register `experiment` (`add` is apollo.cli's helper)."""
    p = add(
        "experiment",
        cmd_experiment,
        "the method's ablation (untrained / no-human / no-mask / apollo / apollo-stripped / "
        "apollo-llm) "
        "from a spec: --plan checks it and prints the phases, sizes and power",
    )
    p.add_argument("spec", metavar="SPEC", help="the experiment's spec (YAML)")
    p.add_argument("--profile", help="apply one of the spec's profiles (e.g. smoke)")
    p.add_argument("--plan", action="store_true", help="print the plan; run nothing")
    p.add_argument(
        "--concurrency", type=int, default=1, metavar="K", help="runs driven at once (default 1)"
    )
