"""Task specs: a folder with task.yaml, a description, workspace/ and a hidden eval/.

Every invalid spec fails with a TaskSpecError naming the file, the field and the fix.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from apollo import specfile

TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"

_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)


class TaskSpecError(ValueError):
    """A task folder or task.yaml that cannot be used; the message says where and how to fix."""


def duration_text(text: str) -> float | None:
    """Seconds in a text like '1h30m', '20m' or '90s', or None when it is not one (a bare
    number is not: it has no unit)."""
    m = _DURATION.match(text)
    if not m or not any(m.groups()):
        return None
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a text like '1h30m', '20m', '90s'."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '20m', '1h30m' or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        parsed = duration_text(str(value))
        if parsed is None:
            raise ValueError(
                f"{value!r} is not a duration; write e.g. '20m', '1h30m', '90s' or seconds"
            )
        seconds = parsed
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


Duration = Annotated[float, Field(description="seconds, or a text like '20m' / '1h30m'")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
    """What a run may spend. Working time excludes pauses and time the runner was down."""

    working_time: Duration = 1800.0
    steps: int = Field(200, ge=1, le=1_000_000)
    submissions: int = Field(3, ge=0, le=1000)

    @field_validator("working_time", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class Limits(_Strict):
    """Sandbox limits for every command the agent runs."""

    memory_mb: int = Field(2048, ge=64)
    processes: int = Field(256, ge=8)
    command_timeout: Duration = 120.0
    output_chars: int = Field(8000, ge=500)

    @field_validator("command_timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class Evaluator(_Strict):
    """The hidden evaluator: a command run from the task's eval/ folder.

    `{workspace}` in the command is replaced by the run's workspace path. The command must
    print a JSON object on its last line with at least a numeric `score`. The script it runs
    (see `evaluator_script`) must be in eval/: `load_task` checks it."""

    command: str
    timeout: Duration = 300.0
    score_range: tuple[float, float] = (0.0, 100.0)

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @model_validator(mode="after")
    def _range(self) -> Evaluator:
        lo, hi = self.score_range
        if lo >= hi:
            raise ValueError("score_range must be [low, high] with low < high")
        return self


TriggerKind = Literal[
    "no_progress",  # no file matching `pattern` in the workspace by step `step`
    "session_killed_early",  # a session was killed before it finished
    "repeated_failure",  # the same failing command `count` times in a row
    "no_submission",  # no submission by step `step`
    "low_score",  # a submission scored below `score`
    "step_reached",  # plainly: at step `step`
    "polling",  # `count` polls of a session in a row with no new output
]


class Trigger(_Strict):
    kind: TriggerKind
    step: int | None = Field(None, ge=1)
    count: int | None = Field(None, ge=1)
    pattern: str | None = None
    score: float | None = None

    @model_validator(mode="after")
    def _needs(self) -> Trigger:
        needs = {
            "no_progress": ("step", "pattern"),
            "no_submission": ("step",),
            "step_reached": ("step",),
            "repeated_failure": ("count",),
            "polling": ("count",),
            "low_score": ("score",),
        }.get(self.kind, ())
        missing = [n for n in needs if getattr(self, n) is None]
        if missing:
            raise ValueError(f"trigger kind {self.kind!r} needs {', '.join(missing)}")
        return self


class Hint(_Strict):
    """Guidance the simulated annotator posts when its trigger matches (once per run)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    trigger: Trigger
    kind: Literal["knowledge", "strategy", "correction", "hint", "other"] = "hint"
    text: str = Field(min_length=1, max_length=4000)


_SEEDS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
# More seeds than anyone runs; a typo of one digit too many would otherwise go unnoticed.
MAX_SPLIT_SEEDS = 1_000_000


def parse_seeds(value: Any) -> tuple[tuple[int, int], ...]:
    """Inclusive seed ranges from a seed (`7`), a range (`'1000-1299'`) or a list of them."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("a split needs seeds; write e.g. '1000-1299' or a list of such ranges")
    ranges = []
    for item in items:
        m = None if isinstance(item, bool) else _SEEDS.match(str(item))
        if m is None:
            raise ValueError(
                f"{item!r} is not a seed range; write e.g. '1000-1299', a seed like 7, "
                "or a list of those"
            )
        low = int(m.group(1))
        high = int(m.group(2)) if m.group(2) else low
        if high < low:
            raise ValueError(f"{item!r} runs backwards; write it low-high, e.g. '{high}-{low}'")
        ranges.append((low, high))
    ranges.sort()
    for (_, a_high), (b_low, _) in itertools.pairwise(ranges):
        if b_low <= a_high:
            raise ValueError(f"its ranges overlap at seed {b_low}; list each seed once")
    if sum(high - low + 1 for low, high in ranges) > MAX_SPLIT_SEEDS:
        raise ValueError(f"more than {MAX_SPLIT_SEEDS:,} seeds; check the range's digits")
    return tuple(ranges)


SeedRanges = Annotated[
    tuple[tuple[int, int], ...],
    Field(description="inclusive seed ranges: '1000-1299', a seed, or a list of them"),
]


class FamilySpec(_Strict):
    """A task family: the instance generator and the named splits of its seeds.

    `generator` is a command run from eval/ with `{seed}`, `{workspace}` and `{truth}`
    replaced: it writes one instance's workspace files (beside the family's workspace/
    template) and its hidden truth, which the evaluator reads from eval/truth/. The same seed
    must give the same bytes."""

    generator: str
    timeout: Duration = 60.0
    splits: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")], SeedRanges]

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("splits", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if not isinstance(v, dict) or not v:
            raise ValueError("give named splits of seeds, e.g. {train: 1000-1299, test: 5000-5199}")
        return {name: parse_seeds(seeds) for name, seeds in v.items()}

    @field_validator("generator")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        missing = [p for p in ("{seed}", "{workspace}", "{truth}") if p not in v]
        if missing:
            raise ValueError(
                f"the generator command lacks {', '.join(missing)}; it is run as e.g. "
                "'python3 generate.py {seed} {workspace} {truth}'"
            )
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> FamilySpec:
        named = sorted((r, name) for name, ranges in self.splits.items() for r in ranges)
        for ((_, a_high), a), ((b_low, _), b) in itertools.pairwise(named):
            if b_low <= a_high:
                raise ValueError(
                    f"splits {a!r} and {b!r} share seed {b_low}; splits must be disjoint, so "
                    "move one of the ranges"
                )
        return self

    def seeds(self, split: str) -> list[int]:
        """The seeds of a split, in order; ValueError names the splits there are."""
        if split not in self.splits:
            known = ", ".join(sorted(self.splits))
            raise ValueError(f"no split {split!r}; this family has {known}")
        return [s for low, high in self.splits[split] for s in range(low, high + 1)]

    def split_of(self, seed: int) -> str | None:
        """The split a seed belongs to (splits are disjoint), or None."""
        for name, ranges in self.splits.items():
            if any(low <= seed <= high for low, high in ranges):
                return name
        return None

    def describe_splits(self) -> str:
        """'train 1000-1299 (300), test 5000-5199 (200)'."""
        parts = []
        for name, ranges in self.splits.items():
            text = ",".join(f"{lo}-{hi}" if hi > lo else str(lo) for lo, hi in ranges)
            parts.append(f"{name} {text} ({len(self.seeds(name))})")
        return ", ".join(parts)


class InstanceSpec(_Strict):
    """Which instance of which family a materialized task folder is."""

    family: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    seed: int = Field(ge=0)
    split: str | None = None
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the family folder")


class TaskSpec(_Strict):
    """The contents of task.yaml."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str = Field(min_length=1)
    description: str = "description.md"
    budget: Budget = Budget()
    limits: Limits = Limits()
    network: bool = False
    evaluator: Evaluator
    hints: list[Hint] = []
    # A family generates its instances; an instance records where it came from. A score at or
    # above `success_score` counts as a success (collect and eval report the rate).
    family: FamilySpec | None = None
    instance: InstanceSpec | None = None
    success_score: float | None = None

    @model_validator(mode="after")
    def _family_or_instance(self) -> TaskSpec:
        if self.family is not None and self.instance is not None:
            raise ValueError(
                "a task.yaml is a family (field 'family') or an instance of one (field "
                "'instance', written when an instance is made), not both; remove 'instance'"
            )
        lo, hi = self.evaluator.score_range
        if self.success_score is not None and not lo <= self.success_score <= hi:
            raise ValueError(
                f"success_score {self.success_score:g} is outside the evaluator's score_range "
                f"[{lo:g}, {hi:g}]; give a score within it"
            )
        return self


# The folder of an instance's eval/ that its generator writes the hidden truth to.
TRUTH_DIR = "truth"


class Task:
    """A loaded, validated task folder: a single task, a family (`spec.family`, which is not
    run itself: see apollo.env.family) or an instance of one (`spec.instance`)."""

    def __init__(self, path: Path, spec: TaskSpec, description: str) -> None:
        self.path = path
        self.spec = spec
        self.description = description

    @property
    def id(self) -> str:
        """The task's id; an instance of a family is `FAMILY@SEED`."""
        if self.spec.instance is not None:
            return f"{self.spec.id}@{self.spec.instance.seed}"
        return self.spec.id

    def instance_fields(self) -> dict[str, Any]:
        """For an instance: its family, split and seed, which a run records in its config so
        runs can be selected by them; empty for other tasks."""
        inst = self.spec.instance
        if inst is None:
            return {}
        return {"family": inst.family, "split": inst.split, "seed": inst.seed}

    @property
    def workspace_template(self) -> Path:
        return self.path / "workspace"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"


# Programs whose first file argument is the script they run, and their options that take the
# program from the command line instead (`python3 -c`, `python3 -m`, `bash -c`, `node -e`).
_INTERPRETER = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|bash|sh|dash|zsh|node|perl|ruby|Rscript)$")
_INLINE = {"-c", "-m", "-e", "--eval"}


def evaluator_script(command: str) -> tuple[str, bool] | None:
    """The script an evaluator command runs from eval/, and whether it runs it as a program
    (so it must be executable): the first file argument of an interpreter (`python3
    evaluate.py {workspace}`: one with a suffix or a slash, so option values are skipped) or
    a relative program path (`./score.sh`). None when the command names no such file (a system
    tool, `python3 -c ...`, shell syntax), since only a file can be checked before a run.
    ValueError when the command cannot be split as the shell would."""
    words = shlex.split(command)
    if not words:
        raise ValueError("the command is empty")
    program = words[0]
    if "/" in program:
        return None if program.startswith("/") else (program, True)
    if not _INTERPRETER.match(program):
        return None
    for word in words[1:]:
        if word in _INLINE:
            return None
        if word.startswith("-") or not ("." in word or "/" in word):
            continue
        return None if word.startswith("/") or "{workspace}" in word else (word, False)
    return None


def _check_script(folder: Path, spec_file: Path, command: str, field: str) -> None:
    """A task whose evaluator script is missing would run for hours and then fail to score;
    a family whose generator is missing could make no instance."""
    where = f"{spec_file}: field '{field}'"
    try:
        found = evaluator_script(command)
    except ValueError as exc:
        raise TaskSpecError(f"{where}: {command!r} is not a valid command ({exc}); fix it") from exc
    if found is None:
        return
    script, as_program = found
    eval_dir = (folder / "eval").resolve()
    path = (eval_dir / script).resolve()
    if not path.is_relative_to(eval_dir):
        raise TaskSpecError(
            f"{where}: script {script!r} is outside eval/, which is all a task keeps hidden "
            "(the evaluator sees only eval/ and the workspace); move it into eval/ and name it "
            "from there"
        )
    if not path.is_file():
        raise TaskSpecError(
            f"{where}: script {script!r} not found in {eval_dir}; add it to eval/ or fix the "
            "command (it runs from eval/)"
        )
    if as_program and not os.access(path, os.X_OK):
        raise TaskSpecError(
            f"{where}: {script!r} is not executable; `chmod +x` it or run it with its "
            "interpreter (e.g. `bash score.sh`)"
        )


def load_task(path: str | Path) -> Task:
    """Load and validate a task folder."""
    folder = Path(path).resolve()
    spec_file = folder / "task.yaml"
    if not folder.is_dir():
        raise TaskSpecError(f"{folder}: not a folder; pass a built-in task id or a task folder")
    if not spec_file.is_file():
        raise TaskSpecError(f"{spec_file}: missing; a task folder needs a task.yaml")
    try:
        raw = specfile.read_mapping(spec_file, "id, title, evaluator, ...")
        spec = specfile.validate(spec_file, raw, TaskSpec)
    except ValueError as exc:
        raise TaskSpecError(str(exc)) from exc
    desc_file = folder / spec.description
    if not desc_file.is_file():
        raise TaskSpecError(
            f"{spec_file}: field 'description': file {spec.description!r} not found in {folder}; "
            "create it or point the field at the description file"
        )
    for sub, why in (("workspace", "copied into each run"), ("eval", "holds the hidden evaluator")):
        if not (folder / sub).is_dir():
            raise TaskSpecError(f"{folder}: missing folder '{sub}/' ({why}); create it")
    _check_script(folder, spec_file, spec.evaluator.command, "evaluator.command")
    if spec.family is not None:
        _check_script(folder, spec_file, spec.family.generator, "family.generator")
        if (folder / "eval" / TRUTH_DIR).exists():
            raise TaskSpecError(
                f"{folder / 'eval' / TRUTH_DIR}: each instance's generator writes its hidden "
                f"truth to eval/{TRUTH_DIR}/, so a family's own eval/ must not have one; "
                "rename it"
            )
    return Task(folder, spec, desc_file.read_text(encoding="utf-8"))


def _builtin() -> list[Task]:
    if not TASKS_DIR.is_dir():
        return []
    return sorted(
        (load_task(p) for p in TASKS_DIR.iterdir() if (p / "task.yaml").is_file()),
        key=lambda t: t.id,
    )


def builtin_tasks() -> list[Task]:
    """The single tasks shipped under tasks/ (not the families), sorted by id."""
    return [t for t in _builtin() if t.spec.family is None]


def builtin_family_tasks() -> list[Task]:
    """The task families shipped under tasks/, sorted by id (see apollo.env.family)."""
    return [t for t in _builtin() if t.spec.family is not None]


def resolve_task(name_or_path: str) -> Task:
    """A built-in task id, or a path to a task folder."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return load_task(candidate)
    builtin = TASKS_DIR / name_or_path
    if (builtin / "task.yaml").is_file():
        return load_task(builtin)
    known = ", ".join(t.id for t in builtin_tasks()) or "none"
    families = ", ".join(f"{t.id}@SEED" for t in builtin_family_tasks())
    also = f", an instance of a family ({families})" if families else ""
    raise TaskSpecError(
        f"{name_or_path!r}: no such task; use a built-in id ({known}){also} or a path to a "
        "task folder"
    )
