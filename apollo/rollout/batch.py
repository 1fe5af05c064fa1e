"""Batch rollouts: many runs of task-family instances, driven K at a time in one asyncio loop;
the one mechanism under `apollo collect` and `apollo eval`.

A batch is named by a tag. Each of its runs is an ordinary run whose config says which slot it
fills (`batch: {tag, kind, seed, repeat}`, beside the `family`, `split` and `seed` every
instance run records), so the store itself is the batch's state: driving a batch again finds
its runs by tag, never repeats a slot whose run ended for good, and resumes from its log a run
that did not (a crash, a kill, Ctrl-C, a failed model). A lock file per tag keeps two
processes from driving one batch at once.

An episode is what an ended run of a batch amounts to (`Episode`): its score (the final
evaluation's), whether it succeeded (score >= the family's `success_score`), steps, working
time, tokens and interventions, read from its log.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Protocol

from apollo.env.family import Family, resolve_family
from apollo.env.sandbox import SandboxUnavailable
from apollo.llm.models import EmbeddedError
from apollo.log import schema
from apollo.log.actions import fold_actions
from apollo.log.events import Event, Kind, RunRecord
from apollo.log.store import FINAL_STATUSES, Store, StoreBusy
from apollo.rollout.home import Home, RunLocked, try_lock
from apollo.rollout.progress import clip
from apollo.rollout.runner import Runner, RunOptions, check_settings

KINDS = ("collect", "eval")
# What one intervention is taken to cost a person: noticing the drift, reading the steps since
# it and writing a hint. An assumed cost, not a measurement (the simulated annotator costs
# nothing); `annotator_minutes` is interventions times this. Time a person spent watching in
# the console is measured (presence events) and reported apart, as `presence_minutes`.
MINUTES_PER_INTERVENTION = 2.0
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$"


class BatchLocked(RunLocked):
    """Another live process drives this batch."""


@dataclass(frozen=True)
class BatchPlan:
    """What a batch runs: `n` seeds (all the rest when None) of `split` of each family, after
    its first `skip` (a split sharded across homes or sessions), each `repeats` times, with
    `options`."""

    kind: str  # collect or eval
    tag: str
    families: tuple[str, ...]  # built-in family ids or family folders
    split: str
    n: int | None
    repeats: int
    options: RunOptions
    skip: int = 0


@dataclass
class Slot:
    """One (family, seed, repeat) of a batch, and its run once it has one."""

    family: Family
    seed: int
    repeat: int
    run_id: str | None = None
    episode: Episode | None = None  # once its run has ended for good

    @property
    def name(self) -> str:
        return f"{self.family.id}@{self.seed}" + (f" #{self.repeat}" if self.repeat else "")


@dataclass(frozen=True)
class Episode:
    """An ended run of a batch, as the reports read it."""

    family: str
    seed: int
    split: str
    repeat: int
    run_id: str
    model: str
    status: str
    score: float | None  # the final evaluation's; None when the run ended without one
    success: bool
    success_score: float
    score_floor: float  # the low end of the evaluator's score range
    steps: int
    working_time_s: float
    tokens: int  # prompt + completion, every model call
    completion_tokens: int
    interventions: int  # guidance events, by anyone
    presence_s: float  # console watching time, measured
    model_s: float  # time inside model calls (client-side, request to parsed reply)
    tool_s: float  # time inside tool calls
    wall_s: float  # from the run's first event to its last
    # (working time, score) of every scored evaluation, in order: the best-so-far curve.
    submissions: tuple[tuple[float, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["submissions"] = [list(s) for s in self.submissions]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Episode:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["submissions"] = tuple(tuple(s) for s in known.get("submissions", ()))
        return cls(**known)


def read_episode(store: Store, record: RunRecord, family: Family) -> Episode | None:
    """The episode a batch run of `family` amounts to, or None while it has not ended for
    good (a failed run may still be resumed)."""
    success_score = family.task.spec.success_score
    assert success_score is not None, "a Batch refuses a family without success_score"
    events = store.events(record.id)
    fold = fold_actions(events)
    outcome = fold.outcome
    if outcome is None or outcome["status"] not in FINAL_STATUSES:
        return None
    finals = [s for s in fold.submissions if s["final"]]
    score = finals[-1]["score"] if finals else None
    tokens = completion = 0
    model_ms = tool_ms = presence = 0.0
    for ev in events:
        if (call := schema.MODEL_CALL.of(ev)) is not None:
            used, done = schema.call_tokens(call)
            tokens += used
            completion += done
            model_ms += call.get("latency_ms", 0.0)
        elif (obs := schema.OBSERVATION.of(ev)) is not None:
            tool_ms += obs.get("duration_ms", 0.0)
        elif (seen := schema.PRESENCE.of(ev)) is not None:
            presence += seen["seconds"]
    batch = record.config["batch"]
    return Episode(
        family=str(record.config.get("family")),
        seed=int(batch["seed"]),
        split=str(record.config.get("split")),
        repeat=int(batch["repeat"]),
        run_id=record.id,
        model=str(record.config.get("options", {}).get("model")),
        status=outcome["status"],
        score=score,
        success=score is not None and score >= success_score,
        success_score=success_score,
        score_floor=family.task.spec.evaluator.score_range[0],
        steps=fold.last_step,
        working_time_s=round(float(outcome.get("work_s", fold.work_s)), 3),
        tokens=tokens,
        completion_tokens=completion,
        interventions=sum(1 for ev in events if ev.kind == Kind.GUIDANCE),
        presence_s=round(presence, 3),
        model_s=round(model_ms / 1000, 3),
        tool_s=round(tool_ms / 1000, 3),
        wall_s=round(events[-1].ts - events[0].ts, 3) if events else 0.0,
        submissions=tuple(
            (round(float(s["work_s"]), 3), float(s["score"]))
            for s in fold.submissions
            if s["score"] is not None
        ),
    )


@dataclass(frozen=True)
class Summary:
    """What a batch's episodes add up to (the end of `apollo collect`, eval's report)."""

    episodes: int
    successes: int
    interventions: int
    tokens: int
    completion_tokens: int
    working_time_s: float
    presence_minutes: float

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.episodes if self.episodes else None

    @property
    def interventions_per_success(self) -> float | None:
        return self.interventions / self.successes if self.successes else None

    @property
    def annotator_minutes(self) -> float:
        """Interventions times MINUTES_PER_INTERVENTION (an assumed cost, see there)."""
        return self.interventions * MINUTES_PER_INTERVENTION

    @classmethod
    def of(cls, episodes: Sequence[Episode]) -> Summary:
        return cls(
            episodes=len(episodes),
            successes=sum(e.success for e in episodes),
            interventions=sum(e.interventions for e in episodes),
            tokens=sum(e.tokens for e in episodes),
            completion_tokens=sum(e.completion_tokens for e in episodes),
            working_time_s=round(sum(e.working_time_s for e in episodes), 3),
            presence_minutes=round(sum(e.presence_s for e in episodes) / 60, 3),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "success_rate": self.success_rate,
            "interventions_per_success": self.interventions_per_success,
            "annotator_minutes": self.annotator_minutes,
            "minutes_per_intervention": MINUTES_PER_INTERVENTION,
        }


@dataclass
class BatchResult:
    """How a drive of a batch went: every ended episode of the plan (earlier ones included),
    the runs driven this time, the slots still open, and the wall time."""

    slots: list[Slot]
    driven: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # runs another live process drives
    failed: dict[str, str] = field(default_factory=dict)  # run id -> why its drive stopped
    wall_s: float = 0.0

    @property
    def episodes(self) -> list[Episode]:
        return [s.episode for s in self.slots if s.episode is not None]

    @property
    def open(self) -> list[Slot]:
        """Slots whose run has not ended for good (not reached, failed, or left to another)."""
        return [s for s in self.slots if s.episode is None]


class BatchView(Protocol):
    """What a batch tells whoever shows its progress."""

    def start(self, slots: Sequence[Slot]) -> None: ...
    def event(self, ev: Event) -> None: ...
    def ended(self, slot: Slot, status: str) -> None: ...
    def stop(self) -> None: ...


def lock_batch(home: Home, tag: str) -> IO[str]:
    """Take the batch's lock for this process (the OS drops it when the process dies)."""
    handle = try_lock(home.path / "batches" / f"{tag}.lock")
    if handle is None:
        raise BatchLocked(
            f"batch {tag!r} is being driven by another live process; wait for it or stop it"
        )
    return handle


def _plain(value: Any) -> Any:
    """A value as the store gives it back (JSON), so settings compare equal across a resume."""
    return json.loads(json.dumps(value))


class Batch:
    """A planned batch: its families and seeds, checked; `drive` runs what is left of it."""

    def __init__(self, home: Home, plan: BatchPlan) -> None:
        if plan.kind not in KINDS:
            raise ValueError(f"unknown batch kind {plan.kind!r}; use {' or '.join(KINDS)}")
        if not re.fullmatch(TAG_PATTERN, plan.tag):
            raise ValueError(
                f"tag {plan.tag!r} is not allowed: use 1 to 100 letters, digits and . _ @ + - "
                "(starting with a letter or digit)"
            )
        if plan.n is not None and plan.n < 1:
            raise ValueError(f"--n is {plan.n}; give 1 or more instances")
        if plan.skip < 0:
            raise ValueError(f"--skip is {plan.skip}; give 0 or more seeds to skip")
        if plan.repeats < 1:
            raise ValueError(f"--repeats is {plan.repeats}; give 1 or more")
        if not plan.families:
            raise ValueError("give at least one family (see `apollo tasks`)")
        self.home = home
        self.plan = plan
        self.families = [resolve_family(name) for name in plan.families]
        ids = [f.id for f in self.families]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a family is named twice ({', '.join(ids)}); name each once")
        self.seeds: dict[str, list[int]] = {}
        for family in self.families:
            seeds = family.seeds(plan.split)  # a ValueError names the splits there are
            held = f"split {plan.split!r} of family {family.id} holds ({len(seeds)} seeds)"
            left = len(seeds) - plan.skip
            if left < 1:
                raise ValueError(
                    f"--skip {plan.skip} leaves no seed: {held}; skip at most {len(seeds) - 1}"
                )
            if plan.n is not None and plan.n > left:
                after = f" after --skip {plan.skip}" if plan.skip else ""
                raise ValueError(
                    f"--n {plan.n}{after} is more than {held}; give at most {left}"
                    + (" or a smaller --skip" if plan.skip else "")
                )
            if family.task.spec.success_score is None:
                raise ValueError(
                    f"family {family.id} has no success_score in its task.yaml; add the score "
                    "at or above which a run counts as a success (collect and eval count them)"
                )
            end = plan.skip + plan.n if plan.n is not None else len(seeds)
            self.seeds[family.id] = seeds[plan.skip : end]

    def check(self) -> None:
        """Refuse settings no run of the batch could use, a tag that names another batch, and
        a store that cannot be read, before any run (or eval folder) exists."""
        for family in self.families:
            check_settings(self.home, family.task, self.plan.options)
        store = self.home.open_store()
        try:
            self._existing(store)
        finally:
            store.close()

    def _existing(self, store: Store) -> dict[tuple[str, int, int], RunRecord]:
        """The batch's runs in the store, by slot; refuses a tag used by another kind of batch
        or with other settings (continuing it would mix them)."""
        wanted = _plain(asdict(self.plan.options))
        found: dict[tuple[str, int, int], RunRecord] = {}
        for record in reversed(store.list_runs(limit=10**9)):  # oldest first
            batch = record.config.get("batch")
            if not isinstance(batch, dict) or batch.get("tag") != self.plan.tag:
                continue
            if batch.get("kind") != self.plan.kind:
                raise ValueError(
                    f"tag {self.plan.tag!r} names a batch of `apollo {batch.get('kind')}`; "
                    f"give this {self.plan.kind} another tag"
                )
            # Read as a resume would: a setting an older run lacks has its default.
            stored = _plain(asdict(RunOptions.from_config(record.config)))
            differs = sorted(k for k in wanted if stored.get(k) != wanted[k])
            if differs:
                was = ", ".join(f"{k} {stored.get(k)!r}" for k in differs)
                raise ValueError(
                    f"batch {self.plan.tag!r} was started with other settings ({was}); "
                    "continue it with the same settings, or give a new --tag"
                )
            key = (str(record.config.get("family")), int(batch["seed"]), int(batch["repeat"]))
            found.setdefault(key, record)
        return found

    def slots(self, store: Store) -> list[Slot]:
        """Every slot of the plan in driving order (repeat, then seed, then family), with the
        run it already has and that run's episode once it has ended for good."""
        existing = self._existing(store)
        out: list[Slot] = []
        longest = max(len(s) for s in self.seeds.values())
        for repeat in range(self.plan.repeats):
            for i in range(longest):
                for family in self.families:
                    seeds = self.seeds[family.id]
                    if i >= len(seeds):
                        continue
                    slot = Slot(family, seeds[i], repeat)
                    record = existing.get((family.id, slot.seed, repeat))
                    if record is not None:
                        slot.run_id = record.id
                        slot.episode = read_episode(store, record, family)
                    out.append(slot)
        return out

    async def drive(
        self,
        concurrency: int = 1,
        view: BatchView | None = None,
        runner: Runner | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> BatchResult:
        """Drive every open slot, up to `concurrency` at once, each once; `stop` is asked
        before each new slot starts (None: go on). Cancellation (Ctrl-C) leaves the runs in
        flight where a crash would, for the next drive to resume."""
        if concurrency < 1:
            raise ValueError(f"--concurrency is {concurrency}; give 1 or more")
        self.check()
        started = time.monotonic()
        lock = lock_batch(self.home, self.plan.tag)
        own = runner is None
        runner = runner or Runner(self.home)
        result = BatchResult([])
        try:
            result.slots = self.slots(runner.store)
            if view is not None:
                view.start(result.slots)
            pending: Iterator[Slot] = iter([s for s in result.slots if s.episode is None])

            async def worker() -> None:
                assert runner is not None
                for slot in pending:  # shared by the workers: each slot is taken once
                    if stop is not None and stop():
                        return
                    await self._drive_slot(slot, runner, view, result)

            workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
            try:
                await asyncio.gather(*workers)
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
        finally:
            if own:
                await runner.aclose()
            lock.close()
            result.wall_s = round(time.monotonic() - started, 3)
            if view is not None:
                view.stop()
        return result

    async def _drive_slot(
        self, slot: Slot, runner: Runner, view: BatchView | None, result: BatchResult
    ) -> None:
        if slot.run_id is None:
            task = await asyncio.to_thread(
                slot.family.materialize, slot.seed, self.home.instances_dir
            )
            batch: dict[str, Any] = {"tag": self.plan.tag, "kind": self.plan.kind}
            batch |= {"seed": slot.seed, "repeat": slot.repeat}
            slot.run_id = runner.create(task, self.plan.options, batch=batch)
        try:
            status = await runner.drive(slot.run_id, view.event if view is not None else None)
        except RunLocked:
            result.skipped.append(slot.run_id)
            status = "driven elsewhere"
        except (EmbeddedError, StoreBusy, SandboxUnavailable) as exc:
            # This run stopped where a crash would have left it; the others go on, and the
            # same command resumes it.
            result.failed[slot.run_id] = str(exc)
            status = f"stopped: {clip(str(exc), 200)}"
        else:
            result.driven.append(slot.run_id)
            record = runner.store.get_run(slot.run_id)
            assert record is not None
            slot.episode = read_episode(runner.store, record, slot.family)
        if view is not None:
            view.ended(slot, status)
