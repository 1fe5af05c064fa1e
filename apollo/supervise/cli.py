"""`apollo supervise` and `apollo label`: the command-line side of supervision control.

`add_commands(sub, add)` registers them; `add` is the helper of `apollo.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable

from apollo.llm import models, sampling
from apollo.llm.base import ChatModel
from apollo.log.store import StoreError
from apollo.log.writes import LABEL_VERDICTS, post_label
from apollo.rollout.home import Home
from apollo.supervise.judge import Judge, JudgeConfig
from apollo.supervise.policy import DEFAULT_ORDER, MODES, Policy
from apollo.supervise.report import supervise_runs
from apollo.supervise.rules import RuleConfig
from apollo.terminal import safe

Command = Callable[[argparse.Namespace, Home], int]
AddFn = Callable[[str, Command, str], argparse.ArgumentParser]


def add_policy_options(p: argparse.ArgumentParser) -> None:
    """--policy and --precedence, shared with `apollo export`."""
    p.add_argument("--policy", choices=MODES, default="precedence", help="how labels decide")
    p.add_argument(
        "--precedence",
        default=",".join(DEFAULT_ORDER),
        help="label sources, strongest first (default: human,judge,rule)",
    )


async def _supervise(args: argparse.Namespace, home: Home, policy: Policy) -> int:
    store = home.open_store()
    for run_id in args.runs:
        if store.get_run(run_id) is None:
            raise StoreError(f"no run {run_id!r} (see `apollo runs`)")
    judge: Judge | None = None
    model: ChatModel | None = None
    embedded = None
    params = sampling.params(args, prefix="judge-")
    spec = models.parse(args.judge) if args.judge else None
    try:
        if spec is not None:
            from apollo.llm.embedded import EmbeddedModel

            embedded = EmbeddedModel(spec, cache=models.cache_dir(home.path))
            await embedded.start()
            model = embedded.chat_model(constrain=None)
        elif args.judge:
            from apollo.llm.openai_client import OpenAIChatModel

            model = OpenAIChatModel(
                args.judge, model=args.judge_model_name, api_key_env=args.api_key_env
            )
        if model is not None:
            config = JudgeConfig(
                context_tokens=args.judge_context,
                timeout_s=args.judge_timeout,
                params={**JudgeConfig().params, **params},  # the flags over the judge's own
            )
            judge = Judge(model, config)
        report = await supervise_runs(
            store,
            args.runs,
            policy,
            rules=not args.no_rules,
            rule_config=RuleConfig(undo_window=args.undo_window, poll_limit=args.poll_limit),
            judge=judge,
        )
    finally:
        if model is not None:
            await model.aclose()
        if embedded is not None:
            await embedded.stop()
    # Reasons come from people and the judge model: shown, never obeyed by the terminal.
    print(json.dumps(report.to_json()) if args.json else safe(report.render(), lines=True))
    return 1 if report.judge_problems else 0


def cmd_supervise(args: argparse.Namespace, home: Home) -> int:
    """Label runs with the rules (and the judge) and print what the policy decides."""
    policy = Policy.parse(args.policy, args.precedence)
    return asyncio.run(_supervise(args, home, policy))


def cmd_label(args: argparse.Namespace, home: Home) -> int:
    """A human keep / mask label on one action."""
    ev = post_label(
        home.open_store(), args.run, args.step, args.verdict, args.reason or "", args.author
    )
    print(
        safe(
            f"label {args.verdict} on run {args.run} step {args.step} by {args.author} "
            f"(seq {ev.seq})"
        )
    )
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: AddFn) -> None:
    """Register `supervise` and `label` (`add` is apollo.cli's helper)."""
    p = add(
        "supervise",
        cmd_supervise,
        "label runs' actions with the rules and an LLM judge, and report keep / mask decisions",
    )
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument(
        "--judge",
        metavar="MODEL",
        help="also ask an LLM judge: 'embedded', 'embedded:NAME' (see `apollo models`) or an "
        "OpenAI-compatible base URL (…/v1)",
    )
    sampling.add_options(p, prefix="judge-")
    p.add_argument("--judge-model-name", default="default", help="model name sent to the judge")
    p.add_argument("--api-key-env", help="environment variable holding the judge's API key")
    p.add_argument("--judge-context", type=int, default=32_000, help="judge window, tokens")
    p.add_argument("--judge-timeout", type=float, default=300.0, help="seconds per judge call")
    p.add_argument("--no-rules", action="store_true", help="do not apply (or update) rule labels")
    p.add_argument("--undo-window", type=int, default=RuleConfig.undo_window, metavar="STEPS")
    p.add_argument("--poll-limit", type=int, default=RuleConfig.poll_limit, metavar="POLLS")
    add_policy_options(p)
    p.add_argument("--json", action="store_true", help="the report as one JSON object")

    p = add("label", cmd_label, "keep or mask one action of a run, with a reason")
    p.add_argument("run")
    p.add_argument("step", type=int)
    p.add_argument("verdict", choices=LABEL_VERDICTS)
    p.add_argument("--reason", help="why (required for mask)")
    p.add_argument("--author", default="cli")
