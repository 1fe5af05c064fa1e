"""An experiment's spec (SPEC.yaml): the families and splits, the sizes, the model, the
annotator, the arms, the training settings and seeds, and named profiles that override parts
of it (`smoke`: tiny sizes for the test command). Every invalid spec fails with an
ExperimentError naming the file, the field and the fix, before anything runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from apollo import specfile
from apollo.env.family import Family, resolve_family
from apollo.env.task import TaskSpecError
from apollo.llm import models
from apollo.rollout.annotator import LLM_ANNOTATOR_MODEL
from apollo.train.options import TrainOptions

# The arms of the ablation (README "The experiment"): what each trains on.
UNTRAINED, NO_HUMAN, NO_MASK, APOLLO, STRIPPED, APOLLO_LLM = (
    "untrained",
    "no-human",
    "no-mask",
    "apollo",
    "apollo-stripped",
    "apollo-llm",
)
Arm = Literal["untrained", "no-human", "no-mask", "apollo", "apollo-stripped", "apollo-llm"]
ARMS: tuple[Arm, ...] = get_args(Arm)
# Training settings a spec may not set: the experiment decides them per arm and seed, and
# where it runs decides the device and threads.
_DECIDED = {"data", "out", "base", "seed", "device", "threads"}
TRAINING_SETTINGS = tuple(f.name for f in fields(TrainOptions) if f.name not in _DECIDED)
_OPTIONS = TypeAdapter(TrainOptions)


class ExperimentError(ValueError):
    """An experiment spec that cannot be used; the message says where and how to fix it."""


def _canonical(model: str) -> str:
    """A `--model` value in full (an unknown embedded model: a ValueError naming them)."""
    try:
        return models.canonical(model)
    except models.EmbeddedError as exc:
        raise ValueError(str(exc)) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Collect(_Strict):
    """The rollouts the training data comes from."""

    split: str = "train"
    n: int = Field(ge=1, description="instances per family")
    annotator: Literal["simulated"] = "simulated"
    # The apollo-llm arm's collection is guided by the LLM annotator on this model.
    annotator_model: str = LLM_ANNOTATOR_MODEL
    annotator_model_name: str = "default"
    annotator_api_key_env: str | None = None
    max_steps: int | None = Field(None, ge=1, description="cap below the families' budgets")

    @field_validator("annotator_model")
    @classmethod
    def _known(cls, v: str) -> str:
        return _canonical(v)


class Supervise(_Strict):
    """Supervision control of the collected runs: the rules always; an LLM judge too when
    `judge` names its model (the report gives its agreement with the rules and people)."""

    judge: str | None = None
    judge_model_name: str = "default"
    judge_api_key_env: str | None = None

    @field_validator("judge")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        return None if v is None else _canonical(v)


class Evaluate(_Strict):
    """The held-out episodes every arm is measured on, without guidance."""

    split: str = "test"
    n: int = Field(ge=1, description="instances per family")
    repeats: int = Field(1, ge=1, description="episodes per instance (pass@k for k > 1)")
    max_steps: int | None = Field(None, ge=1, description="cap below the families' budgets")


class Power(_Strict):
    """What the evaluation must be able to detect (the report states the calculation)."""

    alpha: float = Field(0.05, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1)
    base: float = Field(0.25, ge=0, lt=1, description="expected success rate of the base model")
    difference: float = Field(0.15, gt=0, lt=1, description="success-rate rise to detect")

    @model_validator(mode="after")
    def _reachable(self) -> Power:
        if self.base + self.difference > 1:
            raise ValueError(
                f"base {self.base} + difference {self.difference} is above a 100% success rate; "
                "lower one of them"
            )
        return self


class Training(BaseModel):
    """The training seeds and `apollo train`'s settings by their option names (lora_r,
    lr, epochs, max_steps, ...), the same for every trained arm."""

    model_config = ConfigDict(extra="allow", frozen=True)

    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v):
            raise ValueError("list each training seed once")
        return v

    @model_validator(mode="after")
    def _settings(self) -> Training:
        unknown = sorted(set(self.settings) - set(TRAINING_SETTINGS))
        if unknown:
            raise ValueError(
                f"unknown training setting {', '.join(unknown)}; the settings are "
                f"{', '.join(TRAINING_SETTINGS)} (the experiment sets "
                f"{', '.join(sorted(_DECIDED))} itself)"
            )
        self.options(Path("data"), Path("out"), models.EMBEDDED, self.seeds[0]).check()
        return self

    @property
    def settings(self) -> dict[str, Any]:
        """The settings the spec gives (the rest keep `apollo train`'s defaults)."""
        return dict(self.model_extra or {})

    def options(self, data: Path, out: Path, base: str, seed: int) -> TrainOptions:
        """One training's options; a ValueError names a setting of the wrong type."""
        raw = {**self.settings, "data": data, "out": out, "base": base, "seed": seed}
        try:
            return _OPTIONS.validate_python(raw)
        except ValidationError as exc:
            bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"a training setting has the wrong type ({bad})") from None


class ExperimentSpec(_Strict):
    """The contents of SPEC.yaml."""

    # Short enough for batch tags (exp-NAME-PROFILE-unguided, at most 100 characters).
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=60, description="experiments/<name>/"
    )
    model: str = Field(description="the rollout policy: embedded:NAME or an endpoint URL")
    model_name: str = Field("default", description="the model name sent to an endpoint")
    api_key_env: str | None = Field(None, description="the variable with the endpoint's key")
    base: str | None = Field(None, description="the model trained: embedded:NAME (default: model)")
    families: tuple[str, ...] = Field(min_length=1)
    collect: Collect
    supervise: Supervise = Supervise()
    evaluate: Evaluate
    arms: tuple[Arm, ...] = tuple(a for a in ARMS if a != APOLLO_LLM)
    training: Training = Training()
    power: Power = Power()
    profiles: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=20)], dict[str, Any]
    ] = {}

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return _canonical(v)

    @field_validator("base")
    @classmethod
    def _embedded_base(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            spec = None if "+" in v else models.parse(v)
        except models.EmbeddedError as exc:
            raise ValueError(str(exc)) from None
        if spec is None or spec.trained is not None:
            raise ValueError(
                f"{v!r}: the model trained must be an embedded base model, embedded:NAME "
                "(see `apollo models`)"
            )
        return spec.ref

    @field_validator("families", "arms")
    @classmethod
    def _once(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("list each one once")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        spec = models.parse(self.model)
        if self.base is None and (spec is None or spec.trained is not None):
            raise ValueError(
                f"model {self.model!r} is not an embedded base model, so name the model to "
                "train: base: embedded:NAME"
            )
        if APOLLO not in self.arms:
            raise ValueError(f"arms must include {APOLLO!r}: every other arm is compared with it")
        if self.collect.split == self.evaluate.split:
            raise ValueError(
                f"collect.split and evaluate.split are both {self.collect.split!r}: training "
                "data must never come from the instances an arm is evaluated on; collect on "
                "the train split"
            )
        return self

    @property
    def base_model(self) -> str:
        """The model every arm trains from, and the untrained arm is: `base`, else `model`."""
        return self.base or self.model

    @property
    def trained_arms(self) -> tuple[str, ...]:
        """The arms that train a model (all but `untrained`)."""
        return tuple(a for a in self.arms if a != UNTRAINED)


@dataclass(frozen=True)
class Experiment:
    """A loaded spec: where it came from, which profile, and its families."""

    path: Path
    profile: str | None
    spec: ExperimentSpec
    families: tuple[Family, ...]

    @property
    def name(self) -> str:
        """The experiment's name; a profile runs as its own experiment (`NAME-PROFILE`)."""
        return f"{self.spec.name}-{self.profile}" if self.profile else self.spec.name

    @property
    def report_dir(self) -> Path:
        """Where the report goes: beside the spec (`experiments/NAME/` for
        `experiments/NAME.yaml`), to be committed with it."""
        return self.path.parent / self.name


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _family(name: str, folder: Path, path: Path) -> Family:
    """A built-in family by id, or a family folder relative to the spec's."""
    local = folder / name
    try:
        return resolve_family(str(local) if local.is_dir() else name)
    except TaskSpecError as exc:
        raise ExperimentError(f"{path}: field 'families': {exc}") from None


def _check_sizes(path: Path, spec: ExperimentSpec, families: tuple[Family, ...]) -> None:
    for family in families:
        if family.task.spec.success_score is None:
            raise ExperimentError(
                f"{path}: field 'families': family {family.id} has no success_score in its "
                "task.yaml; add the score at or above which a run counts as a success"
            )
        for field, split, n in (
            ("collect", spec.collect.split, spec.collect.n),
            ("evaluate", spec.evaluate.split, spec.evaluate.n),
        ):
            sizes = family.splits
            if split not in sizes:
                known = ", ".join(f"{k} ({v})" for k, v in sizes.items())
                raise ExperimentError(
                    f"{path}: field '{field}.split': family {family.id} has no split "
                    f"{split!r}; it has {known}"
                )
            if n > sizes[split]:
                raise ExperimentError(
                    f"{path}: field '{field}.n': {n} instances, but split {split!r} of family "
                    f"{family.id} holds {sizes[split]}; give at most {sizes[split]}"
                )


def _apply(file: Path, raw: dict[str, Any], profile: str) -> ExperimentSpec:
    """The spec with a profile's overrides merged in (mappings merge, the rest replaces)."""
    over = raw["profiles"][profile]
    if {"name", "profiles"} & set(over):
        raise ValueError(
            f"{file}: field 'profiles.{profile}': a profile changes the experiment's fields, "
            "not its name or profiles; remove those"
        )
    try:
        return specfile.validate(file, _merge(raw, over), ExperimentSpec)
    except ValueError as exc:
        raise ValueError(f"{exc}\n(with profile {profile!r})") from None


def load_experiment(path: str | Path, profile: str | None = None) -> Experiment:
    """Load and check SPEC.yaml, with `profile`'s overrides applied when given."""
    file = Path(path)
    if not file.is_file():
        raise ExperimentError(f"{file}: no such file; give the path of an experiment SPEC.yaml")
    try:
        raw = specfile.read_mapping(file, "name, model, families, collect, evaluate, ...")
        spec = specfile.validate(file, raw, ExperimentSpec)
        # Every profile is checked now, so a broken one is found before it is needed.
        applied = {name: _apply(file, raw, name) for name in spec.profiles}
        if profile is not None:
            if profile not in applied:
                known = ", ".join(applied) or "none"
                raise ValueError(f"{file}: no profile {profile!r}; its profiles: {known}")
            spec = applied[profile]
    except ValueError as exc:
        raise ExperimentError(str(exc)) from None
    families = tuple(_family(name, file.parent, file) for name in spec.families)
    _check_sizes(file, spec, families)
    return Experiment(file.resolve(), profile, spec, families)
