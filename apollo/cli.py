"""The `apollo` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence

from apollo.env.family import builtin_families, resolve
from apollo.env.sandbox import SandboxUnavailable
from apollo.env.task import TaskSpecError, builtin_tasks
from apollo.eval.cli import add_commands as add_eval_commands
from apollo.experiment.cli import add_commands as add_experiment_commands
from apollo.export.cli import add_commands as add_export_commands
from apollo.export.windows import ExportError
from apollo.llm import models, sampling
from apollo.llm.base import CallLimits, ModelError
from apollo.llm.cli import add_commands as add_models_commands
from apollo.llm.embedded import EmbeddedError
from apollo.log import migrations, schema
from apollo.log.events import Kind, Role, check_annotator_name
from apollo.log.store import StoreError
from apollo.log.stores import STORE_ENV
from apollo.log.writes import GUIDANCE_KINDS, post_control, post_guidance
from apollo.rollout.cli import add_annotator_options, annotator_settings
from apollo.rollout.cli import add_commands as add_collect_commands
from apollo.rollout.home import Home, RunLocked
from apollo.rollout.progress import clip, printer, retry_summary
from apollo.server.defaults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEMO_MODEL,
    DEMO_STEPS,
    LOGIN_FAILURES,
    LOGIN_WINDOW_S,
    MAX_QUEUED_PER_ANNOTATOR,
    MAX_RUNNING,
    MAX_RUNNING_PER_ANNOTATOR,
)
from apollo.supervise.cli import add_commands as add_supervise_commands
from apollo.terminal import safe
from apollo.train.cli import add_commands as add_train_commands

CLI_AUTHOR = "cli"
MODEL_HELP = (
    f"'embedded' (the default embedded model, {models.DEFAULT.name}), 'embedded:NAME' "
    "(see `apollo models`) or an OpenAI-compatible base URL (…/v1)"
)
# `apollo run` flags that set the model's CallLimits (apollo/llm/base.py), by field name.
LIMIT_FLAGS = {
    "connect_s": ("--connect-timeout", float, "seconds to open a connection"),
    "first_byte_s": ("--first-byte-timeout", float, "seconds until the answer's first byte"),
    "total_s": ("--total-timeout", float, "seconds one attempt may take in all"),
    "retry_window_s": ("--retry-window", float, "seconds a failing model call is retried"),
    "max_attempts": ("--max-attempts", int, "also give up after this many attempts"),
}


def _model_limits(args: argparse.Namespace) -> dict[str, float | int]:
    """The CallLimits fields set on the command line, each checked (errors name the flag)."""
    limits = {name: getattr(args, name) for name in LIMIT_FLAGS if getattr(args, name) is not None}
    for name, value in limits.items():
        try:
            CallLimits().updated({name: value})
        except ValueError as exc:
            raise ValueError(f"{LIMIT_FLAGS[name][0]}: {exc}") from exc
    return limits


async def _drive(home: Home, run_id: str, quiet: bool) -> str:
    from apollo.rollout.runner import Runner  # heavy imports only for commands that run

    runner = Runner(home)
    try:
        return await runner.drive(run_id, None if quiet else printer(runner.store))
    finally:
        await runner.aclose()


def _ended(home: Home, run_id: str, status: str) -> int:
    """The run's last line. Success (0) is a run that ended with a result: finished or out of
    budget, and scored unless its evaluator failed."""
    ends = home.open_store().events(run_id, kinds=[Kind.RUN_FINISHED])
    failed = schema.RUN_FINISHED.payload(ends[-1]).get("evaluator_error") if ends else None
    line = f"run {run_id} ended: {status}"
    if failed:
        # Its first line says how it failed; a traceback's last line says why.
        lines = str(failed).strip().splitlines() or [""]
        why = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
        line += f"; the evaluator failed, so there is no final score: {clip(why, 240)}"
    print(safe(line), flush=True)
    return 0 if status in ("finished", "timeout") and not failed else 1


def cmd_run(args: argparse.Namespace, home: Home) -> int:
    from apollo.rollout.runner import Runner, RunOptions

    task = resolve(args.task, home.instances_dir)
    options = RunOptions(
        model=models.canonical(args.model),
        model_name=args.model_name,
        api_key_env=args.api_key_env,
        **annotator_settings(args),
        unsafe_no_sandbox=args.unsafe_no_sandbox,
        summary_threshold_tokens=args.summary_threshold,
        constrain=args.constrain,
        max_steps=args.max_steps,
        min_steps=args.min_steps,
        params=sampling.params(args),
        model_limits=_model_limits(args),
    )
    if args.queue:
        run_id = Runner(home).create(task, options, queued=True, started_by=CLI_AUTHOR)
        print(safe(f"run {run_id} queued: a running `apollo serve` on home {home.path} drives it"))
        return 0
    run_id = Runner(home).create(task, options)
    print(
        safe(f"run {run_id}  task {task.id}  model {options.model}  home {home.path}"), flush=True
    )
    status = asyncio.run(_drive(home, run_id, args.quiet))
    return _ended(home, run_id, status)


def cmd_serve(args: argparse.Namespace, home: Home) -> int:
    from apollo.server.auth import LoginLimit
    from apollo.server.scheduler import RunLimits
    from apollo.server.serve import serve

    limits = RunLimits(
        max_running=args.max_running,
        max_running_per_annotator=args.max_running_per_annotator,
        max_queued_per_annotator=args.max_queued_per_annotator,
    )
    login_limit = LoginLimit(failures=args.login_failures, window_s=args.login_window)
    printer_ = None if args.quiet else printer(home.open_store())
    asyncio.run(
        serve(
            home,
            args.host,
            args.port,
            limits=limits,
            login_limit=login_limit,
            on_event=printer_,
            embedded=_embedded_choice(args.model),
        )
    )
    return 0


def _embedded_choice(model: str) -> str:
    """`model` as the embedded model console runs get; a ValueError for anything else."""
    if models.parse(model) is None:
        raise ValueError(
            f"--model {model!r}: give 'embedded' or 'embedded:NAME' (see `apollo models`); "
            "console runs use other models through `apollo endpoints add`"
        )
    return models.canonical(model)


def cmd_demo(args: argparse.Namespace, home: Home) -> int:
    from apollo.server.serve import demo

    store = home.open_store()
    printer_ = None if args.quiet else printer(store)
    asyncio.run(
        demo(
            home,
            args.host,
            args.port,
            steps=args.steps,
            model=models.canonical(args.model),
            params=sampling.params(args),
            max_running=args.max_running,
            on_event=printer_,
        )
    )
    return 0


def cmd_resume(args: argparse.Namespace, home: Home) -> int:
    print(safe(f"run {args.run}  resuming"), flush=True)
    status = asyncio.run(_drive(home, args.run, args.quiet))
    return _ended(home, args.run, status)


def _running_sessions(home: Home, run_id: str) -> list[str]:
    if not (home.run_dir(run_id) / "sessions").is_dir():
        return []
    return [st.id for st in home.sessions(run_id).statuses() if st.running]


def cmd_runs(args: argparse.Namespace, home: Home) -> int:
    store = home.open_store()
    rows = store.list_runs(limit=args.limit)
    head = f"{'id':<30} {'task':<24} {'status':<9} {'step':>6} {'score':>7} {'guid':>5}"
    print(f"{head}  sessions")
    orphans = 0
    for r in rows:
        score = "" if r.last_score is None else f"{r.last_score:g}"
        row = f"{r.id:<30} {r.task:<24} {r.status:<9} {r.step:>6} {score:>7}"
        line = safe(f"{row} {r.guidance_count:>5}")
        running = _running_sessions(home, r.id)
        sessions = str(len(running)) if running else ""
        if running and not home.runner_alive(r.id):
            sessions += " running, runner gone"
            orphans += 1
        print(f"{line}  {sessions}")
    if orphans:
        print(
            f"{orphans} run(s) have sessions still running with no runner: "
            "`apollo resume RUN` picks them up, `apollo reap` ends them"
        )
    return 0


def cmd_reap(args: argparse.Namespace, home: Home) -> int:
    store = home.open_store()
    run_ids = args.runs or [r.id for r in store.list_runs(limit=1_000_000)]
    for run_id in args.runs:
        if store.get_run(run_id) is None and not home.run_dir(run_id).is_dir():
            raise StoreError(f"no run {run_id!r} (see `apollo runs`)")
    reaped = 0
    for run_id in run_ids:
        running = _running_sessions(home, run_id)
        if not running:
            continue
        if home.runner_alive(run_id):
            print(f"run {run_id}: a live runner drives it; stop the run instead (`apollo stop`)")
            continue
        killed = asyncio.run(home.sessions(run_id).kill_all())
        reaped += len(killed)
        print(f"run {run_id}: ended session(s) {', '.join(killed)}")
    print(f"{reaped} session(s) ended")
    return 0


def cmd_show(args: argparse.Namespace, home: Home) -> int:
    store = home.open_store()
    run = store.get_run(args.run)
    if run is None:
        raise StoreError(f"no run {args.run!r} (see `apollo runs`)")
    print(safe(f"run {run.id}  task {run.task}  status {run.status}  step {run.step}"))
    if args.json:
        for ev in store.events(run.id):
            print(
                json.dumps(
                    {
                        "seq": ev.seq,
                        "ts": ev.ts,
                        "kind": ev.kind,
                        "actor": ev.actor,
                        "step": ev.step,
                        "payload": ev.payload,
                    }
                )
            )
        return 0
    show = printer(store, prefix=False)
    events = store.events(run.id)
    for ev in events:
        show(ev)
    print(retry_summary(events))
    return 0


def cmd_guide(args: argparse.Namespace, home: Home) -> int:
    store = home.open_store()
    ev = post_guidance(
        store,
        args.run,
        args.author,
        args.text,
        kind=args.kind,
        drift_from_step=args.drift_from,
        urgent=args.urgent,
    )
    print(
        safe(
            f"guidance {schema.GUIDANCE.payload(ev)['id']} queued for run {args.run} "
            f"(seq {ev.seq}); it is delivered at the agent's next step"
        )
    )
    return 0


def cmd_control(args: argparse.Namespace, home: Home) -> int:
    post_control(home.open_store(), args.run, args.author, args.control)
    print(safe(f"{args.control} requested for run {args.run}; it takes effect at the next step"))
    return 0


def cmd_db(args: argparse.Namespace, home: Home) -> int:
    with home.open_store(migrate=True) as store:
        done, where = store.migrated, store.where
    version = migrations.latest()
    if done:
        steps = "; ".join(f"{m.version}: {m.what}" for m in done)
        print(safe(f"migrated {where} to schema version {version} ({steps})"))
    else:
        print(safe(f"{where} is at schema version {version}; nothing to migrate"))
    return 0


def cmd_backup(args: argparse.Namespace, home: Home) -> int:
    store = home.open_for_backup()
    dest = store.backup(args.dest, overwrite=args.force)
    size = dest.stat().st_size / 2**20
    print(f"backed up {store.path} to {dest} ({size:.1f} MiB, consistent as of now)")
    return 0


def cmd_tasks(args: argparse.Namespace, home: Home) -> int:
    for task in builtin_tasks():
        budget = task.spec.budget
        print(
            safe(
                f"{task.id}\t{task.spec.title}\t{budget.steps} steps\t"
                f"{budget.working_time / 60:g} min\t{len(task.spec.hints)} hints"
            )
        )
    for family in builtin_families():
        budget = family.task.spec.budget
        splits = ", ".join(f"{name} {n}" for name, n in family.splits.items())
        print(
            safe(
                f"{family.id}\t{family.title}\t{budget.steps} steps\t"
                f"{budget.working_time / 60:g} min\t{len(family.task.spec.hints)} hints\t"
                f"family ({family.id}@SEED): {splits} seeds"
            )
        )
    return 0


def cmd_annotators(args: argparse.Namespace, home: Home) -> int:
    store = home.open_store()
    if args.action == "add":
        ann, token = store.add_annotator(check_annotator_name(args.name), args.role)
        print(f"annotator {ann.name} ({ann.role}) added; token (shown once): {token}")
    elif args.action == "revoke":
        ann = store.revoke_annotator(args.name)
        print(safe(f"annotator {ann.name} revoked"))
    else:
        for a in store.list_annotators():  # names made before the rule may hold anything
            print(safe(f"{a.name}\t{a.role}\t{'revoked' if a.revoked else 'active'}"))
    return 0


def cmd_endpoints(args: argparse.Namespace, home: Home) -> int:
    from apollo.server.endpoints import Endpoint, Endpoints

    endpoints = Endpoints(home.path)
    if args.action == "add":
        if not args.url or not args.model_name:
            raise ValueError("endpoints add needs NAME URL and --model-name")
        e = endpoints.put(Endpoint(args.name, args.url, args.model_name, args.api_key_env))
        print(f"endpoint {e.name} -> {e.url} (model {e.model_name}); runs may name it")
    elif args.action == "remove":
        e = endpoints.remove(args.name)
        print(f"endpoint {e.name} removed; runs started on it keep their settings")
    else:
        for e in endpoints.all().values():
            print(f"{e.name}\t{e.url}\t{e.model_name}\t{e.api_key_env or '-'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        help="data directory for the store and workspaces (default: $APOLLO_HOME or ~/.apollo)",
    )
    common.add_argument(
        "--store",
        metavar="URL",
        help="the store, when not the home's apollo.db: sqlite:///ABSOLUTE/PATH.db or "
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
        f"(default: ${STORE_ENV})",
    )
    parser = argparse.ArgumentParser(
        prog="apollo",
        description="Asynchronous human-agent rollouts for long-horizon agent training.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, fn: Callable[[argparse.Namespace, Home], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    p = add("run", cmd_run, "run a task end to end, with live progress")
    p.add_argument(
        "task",
        help="a built-in task id (see `apollo tasks`), FAMILY@SEED for an instance of a family, "
        "or a task folder",
    )
    p.add_argument("--model", default=models.EMBEDDED, help=MODEL_HELP)
    p.add_argument("--model-name", default="default", help="model name sent to the endpoint")
    p.add_argument("--api-key-env", help="environment variable that holds the endpoint's API key")
    add_annotator_options(
        p,
        "none",
        "follow the run with the rule-based simulated annotator, or an LLM annotator "
        "(--annotator-model)",
    )
    p.add_argument("--summary-threshold", type=int, help="summarize above this many tokens")
    p.add_argument(
        "--constrain",
        choices=["json_object", "json_schema"],
        help="constrained decoding of tool calls (the embedded model always uses it)",
    )
    p.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run agent commands without bubblewrap (only where you trust the model)",
    )
    p.add_argument("--max-steps", type=int, help="stop after this many steps (below the task's)")
    p.add_argument("--min-steps", type=int, default=0, help="refuse `finish` before this step")
    sampling.add_options(p)
    defaults = CallLimits()
    for dest, (flag, kind, help_) in LIMIT_FLAGS.items():
        default = getattr(defaults, dest)
        shown = "none" if default is None else f"{default:g}"
        p.add_argument(flag, dest=dest, type=kind, metavar="N", help=f"{help_} (default {shown})")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.add_argument(
        "--queue", action="store_true", help="only queue the run for a running `apollo serve`"
    )

    p = add("serve", cmd_serve, "serve the console and drive runs (loopback unless told)")
    p.add_argument(
        "--model",
        default=models.EMBEDDED,
        help="the embedded model runs started from the console on 'embedded' get: "
        f"'embedded' ({models.DEFAULT.name}) or 'embedded:NAME' (see `apollo models`)",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="interface to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument(
        "--max-running", type=int, default=MAX_RUNNING, help="runs driven at once (others wait)"
    )
    p.add_argument(
        "--max-running-per-annotator", type=int, default=MAX_RUNNING_PER_ANNOTATOR, metavar="N"
    )
    p.add_argument(
        "--max-queued-per-annotator",
        type=int,
        default=MAX_QUEUED_PER_ANNOTATOR,
        metavar="N",
        help="runs of one annotator waiting for a slot; beyond it starting a run is refused",
    )
    p.add_argument(
        "--login-failures",
        type=int,
        default=LOGIN_FAILURES,
        help="failed logins allowed per window",
    )
    p.add_argument(
        "--login-window",
        type=float,
        default=LOGIN_WINDOW_S,
        metavar="SECONDS",
        help="window of --login-failures, per client address and per name",
    )
    p.add_argument("--quiet", action="store_true", help="no live progress in the terminal")

    p = add(
        "demo",
        cmd_demo,
        "start the console with instances of task families running on an embedded model, "
        "the simulated annotator following them; prints how to sign in",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="interface to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--steps", type=int, default=DEMO_STEPS, help="steps each demo run takes")
    p.add_argument(
        "--model",
        default=DEMO_MODEL,
        help=f"{MODEL_HELP} (default {DEMO_MODEL}, the embedded model that makes progress on "
        "the families; embedded:qwen2.5-coder-0.5b is about three times faster and makes none)",
    )
    p.add_argument(
        "--max-running",
        type=int,
        metavar="N",
        help="demo runs driven at once, the rest waiting (default: one per two cores on an "
        "embedded model)",
    )
    sampling.add_options(p)
    p.add_argument("--quiet", action="store_true", help="no live progress in the terminal")

    p = add(
        "resume", cmd_resume, "continue a run from its log (after a crash or a stop of the runner)"
    )
    p.add_argument("run")
    p.add_argument("--quiet", action="store_true", help="no live progress")

    p = add("runs", cmd_runs, "list runs: id, task, status, step")
    p.add_argument("--limit", type=int, default=50)
    p = add(
        "reap",
        cmd_reap,
        "end the sessions of runs no live runner drives (all runs, or the ones named)",
    )
    p.add_argument("runs", nargs="*", metavar="RUN")

    p = add("show", cmd_show, "show a run's timeline")
    p.add_argument("run")
    p.add_argument("--json", action="store_true", help="raw events as JSON lines")

    p = add("guide", cmd_guide, "send guidance to a running agent (delivered at its next step)")
    p.add_argument("run")
    p.add_argument("text")
    p.add_argument("--kind", choices=GUIDANCE_KINDS, default="hint")
    p.add_argument(
        "--drift-from",
        type=int,
        metavar="STEP",
        help="the run drifted from this step on (its actions there get masked)",
    )
    p.add_argument("--urgent", action="store_true")
    p.add_argument("--author", default=CLI_AUTHOR)

    for name, action in (("pause", "pause"), ("unpause", "resume"), ("stop", "stop")):
        p = add(name, cmd_control, f"{name} a run at its next step boundary")
        p.add_argument("run")
        p.add_argument("--author", default=CLI_AUTHOR)
        p.set_defaults(control=action)

    p = add(
        "backup",
        cmd_backup,
        "copy the store (apollo.db) to DEST consistently, even while runs are writing",
    )
    p.add_argument("dest", metavar="DEST", help="path of the copy (a new file)")
    p.add_argument("--force", action="store_true", help="replace DEST if it is an existing file")

    p = add("db", cmd_db, "the store's schema: `migrate` applies the migrations it is behind")
    p.add_argument("action", choices=["migrate"])

    add("tasks", cmd_tasks, "list built-in tasks, then families with their splits (id first)")
    add_supervise_commands(sub, add)
    add_export_commands(sub, add)
    add_models_commands(sub, add)
    add_collect_commands(sub, add)
    add_eval_commands(sub, add)
    add_experiment_commands(sub, add)
    add_train_commands(sub, add)

    p = add(
        "endpoints",
        cmd_endpoints,
        "manage the model endpoints runs started from the console may use",
    )
    p.add_argument("action", choices=["add", "list", "remove"])
    p.add_argument("name", nargs="?")
    p.add_argument("url", nargs="?", help="OpenAI-compatible base URL (add)")
    p.add_argument("--model-name", help="model name sent to the endpoint (add)")
    p.add_argument("--api-key-env", help="environment variable that holds its API key (add)")

    p = add("annotators", cmd_annotators, "manage annotator accounts")
    p.add_argument("action", choices=["add", "list", "revoke"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=[r.value for r in Role], default=Role.ANNOTATOR.value)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `apollo` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("annotators", "endpoints") and args.action != "list" and not args.name:
        parser.error(f"{args.command} {args.action} needs a NAME")
    try:
        if args.store:  # so that the runs this command starts in other processes use it too
            os.environ[STORE_ENV] = args.store
        code = int(args.fn(args, Home(args.home, args.store)))
        sys.stdout.flush()  # here, so a reader that went away is caught below, not at exit
        return code
    except (
        TaskSpecError,
        StoreError,
        RunLocked,
        SandboxUnavailable,
        ModelError,
        EmbeddedError,
        ExportError,
        ValueError,
    ) as exc:
        print(safe(f"apollo: error: {exc}", lines=True), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("apollo: interrupted; the run can continue with `apollo resume RUN`", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`apollo runs | head`): not an error of ours. Python would
        # report the pipe again when it flushes stdout at exit, so stdout goes nowhere now.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
