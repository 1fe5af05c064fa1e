"""The runner: drives many runs in one asyncio loop, each from its log.

A run's configuration lives in the store (runs.config), so a restarted runner, or
`apollo resume`, can pick any run up again from its log alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from apollo.agent.loop import Agent, AgentConfig
from apollo.env.sandbox import Sandbox
from apollo.env.task import Task, load_task
from apollo.env.workspace import Workspace
from apollo.llm import models
from apollo.llm.base import CallLimits, ChatModel
from apollo.llm.embedded import LIMITS as EMBEDDED_LIMITS
from apollo.llm.embedded import EmbeddedPool
from apollo.llm.openai_client import OpenAIChatModel
from apollo.log.events import Event
from apollo.log.store import Store, StoreBusy, StoreError
from apollo.rollout.annotator import ANNOTATORS, LLM_ANNOTATOR_MODEL, SimulatedAnnotator
from apollo.rollout.home import Home
from apollo.rollout.llm_annotator import LLMAnnotator

EMBEDDED = models.EMBEDDED


@dataclass
class RunOptions:
    """How to run a task; stored with the run so resume uses the same settings."""

    # "embedded:NAME" (`embedded` alone: the default, apollo/llm/models.py) or an
    # OpenAI-compatible base URL (…/v1)
    model: str = EMBEDDED
    model_name: str = "default"
    api_key_env: str | None = None  # name of the environment variable holding the key
    annotator: str = "none"  # ANNOTATORS: "simulated" (rules), "llm" or "none"
    # The LLM annotator's model (`annotator == "llm"`): embedded:NAME or an endpoint URL.
    annotator_model: str = LLM_ANNOTATOR_MODEL
    annotator_model_name: str = "default"
    annotator_api_key_env: str | None = None
    unsafe_no_sandbox: bool = False
    summary_threshold_tokens: int | None = None
    constrain: str | None = None  # constrained decoding for endpoints that support it
    max_steps: int | None = None  # cap below the task's step budget
    min_steps: int = 0  # refuse `finish` before this step
    params: dict[str, Any] = field(default_factory=dict)  # sampling: temperature, top_p, ...
    # Overrides of the model's CallLimits (timeouts, retry window), by field name.
    model_limits: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RunOptions:
        known = {
            k: v for k, v in config.get("options", {}).items() if k in cls.__dataclass_fields__
        }
        return cls(**known)


def check_steps(task: Task, options: RunOptions) -> None:
    """Refuse step settings no run can meet: a `min_steps` above the steps the run may take
    would refuse `finish` until the budget ran out."""
    budget = task.spec.budget.steps
    if options.max_steps is not None and options.max_steps < 1:
        raise ValueError(f"max_steps is {options.max_steps}; give 1 or more, or leave it out")
    allowed = min(budget, options.max_steps) if options.max_steps else budget
    if options.min_steps < 0:
        raise ValueError(f"min_steps is {options.min_steps}; give 0 or more")
    if options.min_steps > allowed:
        limit = (
            f"max_steps ({options.max_steps})"
            if options.max_steps and options.max_steps < budget
            else f"the step budget of task {task.id} ({budget})"
        )
        raise ValueError(
            f"min_steps ({options.min_steps}) is above {limit}: `finish` would never be allowed; "
            f"give a min_steps of at most {allowed}"
        )


def check_settings(home: Home, task: Task, options: RunOptions) -> None:
    """Refuse run settings no run of `task` can use (the model, the annotator, model limits,
    steps), and commands that could not be sandboxed (SandboxUnavailable). A family's own
    task stands for its instances here (batch commands check once, before any run)."""
    models.parse(options.model)  # refuses an unknown embedded model before anything is written
    if options.annotator not in ANNOTATORS:
        raise ValueError(
            f"unknown annotator {options.annotator!r}; use {', '.join(ANNOTATORS[:-1])} or "
            f"{ANNOTATORS[-1]}"
        )
    if options.annotator == "llm":
        models.parse(options.annotator_model)
    CallLimits().updated(options.model_limits)  # refuses unknown names and bad values
    check_steps(task, options)
    Sandbox.create(
        home.path,
        task.spec.limits,
        network=task.spec.network,
        allow_unsandboxed=options.unsafe_no_sandbox,
    )


def register_run(store: Store, home: Home, task: Task, options: RunOptions, **extra: Any) -> str:
    """Validate a run's settings and create it; nothing runs until a runner drives it.

    `extra` goes into the stored config too (the server marks runs `queued` and records who
    `started_by`; batch commands their `batch`). Raises SandboxUnavailable, before anything is
    written, when commands could not be sandboxed."""
    if task.spec.family is not None:
        raise ValueError(
            f"task {task.id} is a family of instances, not one task; run an instance of it as "
            f"{task.id}@SEED (seeds: {task.spec.family.describe_splits()})"
        )
    check_settings(home, task, options)
    config = {
        "task_path": str(task.path),
        "options": asdict(options),
        **task.instance_fields(),  # family, split, seed: what batch commands select by
        **extra,
    }
    return store.create_run(task.id, config).id


class Runner:
    """Creates runs and drives them; each run on an embedded model gets a server of its own
    while it is driven (`EmbeddedPool`), endpoint models are shared.

    `on_event` sees every event of every run this runner drives (live progress lines);
    `default_embedded` is the embedded model (`embedded:NAME`) runs started from the console
    on `embedded` get."""

    def __init__(
        self,
        home: Home,
        store: Store | None = None,
        on_event: Callable[[Event], None] | None = None,
        default_embedded: str = EMBEDDED,
    ) -> None:
        self.home = home
        self.default_embedded = models.canonical(default_embedded)
        self.store = store or home.open_store()
        self.on_event = on_event
        self._models: dict[str, ChatModel] = {}
        self.embedded = EmbeddedPool(models.cache_dir(home.path))

    def create(self, task: Task, options: RunOptions, **extra: Any) -> str:
        """Register a new run of `task` (see `register_run`)."""
        return register_run(self.store, self.home, task, options, **extra)

    @contextlib.asynccontextmanager
    async def model(self, options: RunOptions) -> AsyncIterator[ChatModel]:
        """The chat model for one run's options, for the block: an embedded server leased
        for the run alone, or an endpoint's client (made on first use, then shared)."""
        spec = models.parse(options.model)
        if spec is not None:
            async with self.embedded.lease(spec) as server:
                limits = EMBEDDED_LIMITS.updated(options.model_limits)
                async with server.chat_model(limits=limits) as model:
                    yield model
            return
        limits_key = sorted(options.model_limits.items())
        key = f"{options.model}|{options.model_name}|{options.constrain}|{limits_key}"
        if key not in self._models:
            self._models[key] = OpenAIChatModel(
                options.model,
                model=options.model_name,
                api_key_env=options.api_key_env,
                constrain=options.constrain,
                limits=CallLimits().updated(options.model_limits),
            )
        yield self._models[key]

    async def drive(self, run_id: str, on_event: Callable[[Event], None] | None = None) -> str:
        """Run or resume `run_id` until it ends; returns its final status."""
        record = self.store.get_run(run_id)
        if record is None:
            raise StoreError(f"no run {run_id!r} (see `apollo runs`)")
        options = RunOptions.from_config(record.config)
        task = load_task(record.config["task_path"])
        lock = self.home.lock_run(run_id)
        annotator_task: asyncio.Task[None] | None = None
        model_lease = contextlib.AsyncExitStack()
        try:
            run_dir = self.home.run_dir(run_id)
            opener = Workspace.open if (run_dir / "workspace").is_dir() else Workspace.create
            workspace = opener(task, run_dir, allow_unsandboxed=options.unsafe_no_sandbox)
            config = AgentConfig(
                params=dict(options.params),
                max_steps=options.max_steps,
                min_steps=options.min_steps,
            )
            if options.summary_threshold_tokens:
                config.summary_threshold_tokens = options.summary_threshold_tokens
            model = await model_lease.enter_async_context(self.model(options))
            events = on_event or self.on_event
            agent = Agent(self.store, run_id, task, workspace, model, config, events)
            if options.annotator == "simulated":
                annotator = SimulatedAnnotator(self.store, run_id, task, workspace.path)
                annotator_task = asyncio.create_task(annotator.follow())
            elif options.annotator == "llm":
                watcher = RunOptions(
                    model=options.annotator_model,
                    model_name=options.annotator_model_name,
                    api_key_env=options.annotator_api_key_env,
                )
                watching = await model_lease.enter_async_context(self.model(watcher))
                llm = LLMAnnotator(self.store, run_id, task, watching)
                annotator_task = asyncio.create_task(llm.follow())
            return await agent.run()
        except StoreBusy as exc:
            # The log ends where a crash would have left it, so the run resumes from there.
            raise StoreBusy(
                f"{exc}. Run {run_id} stopped where it was; continue it with "
                f"`apollo resume {run_id}` once the store is free"
            ) from exc
        finally:
            if annotator_task is not None:
                annotator_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await annotator_task
            await model_lease.aclose()
            lock.close()

    async def aclose(self) -> None:
        for model in self._models.values():
            await model.aclose()
        await self.embedded.aclose()
