"""`apollo experiment SPEC.yaml --plan`: the method's ablation as one command. So far it loads
and checks the spec and prints the plan (phases, sizes, power); the driver that runs the
phases is being built (docs/experiment.md).

`add_commands(sub, add)` registers it; `add` is the helper of `apollo.cli.build_parser`.
"""

from __future__ import annotations

import argparse

from apollo.rollout.cli import AddFn
from apollo.rollout.home import Home
from apollo.terminal import safe


def cmd_experiment(args: argparse.Namespace, home: Home) -> int:
    """Print an experiment's plan."""
    from apollo.experiment.plan import make_plan
    from apollo.experiment.spec import load_experiment

    experiment = load_experiment(args.spec, args.profile)
    plan = make_plan(experiment)
    if not args.plan:
        raise ValueError(
            "only --plan works so far: it checks the spec and prints what the experiment "
            "will run; running the phases is not built yet (docs/experiment.md)"
        )
    for line in plan.lines():
        print(safe(line))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: AddFn) -> None:
    """Register `experiment` (`add` is apollo.cli's helper)."""
    p = add(
        "experiment",
        cmd_experiment,
        "the method's ablation (untrained / no-human / no-mask / apollo / apollo-stripped) "
        "from a spec: --plan checks it and prints the phases, sizes and power",
    )
    p.add_argument("spec", metavar="SPEC", help="the experiment's spec (YAML)")
    p.add_argument("--profile", help="apply one of the spec's profiles (e.g. smoke)")
    p.add_argument("--plan", action="store_true", help="print the plan; run nothing")
