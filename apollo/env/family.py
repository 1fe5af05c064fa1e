"""Task families: one task folder whose generator makes many seeded instances.

A family's task.yaml has a `family` section: the generator command (a script in eval/) and
named, disjoint splits of seeds. An instance is materialized into its own task folder under a
cache root (the Apollo home's `instances/`): the family's workspace/ template plus what the
generator writes for the seed, the family's eval/ plus the instance's hidden truth in
eval/truth/, and a task.yaml that records family, seed, split and the family's digest. That
folder is an ordinary task, so a run of an instance, and its resume, need nothing else; the
digest in its name means an edited family never reuses instances made by the old one.

The same seed gives the same bytes: the generator runs with a fixed environment (hash seed,
locale, time zone) and must draw everything from the seed.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from apollo.env.task import (
    TASKS_DIR,
    TRUTH_DIR,
    FamilySpec,
    Task,
    TaskSpecError,
    builtin_family_tasks,
    load_task,
    resolve_task,
)

_STDERR_TAIL = 1500
# What a family's digest and its instances leave out: caches Python writes beside scripts.
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


# The LLM annotator's private notes on a family (eval/, so the agent never sees them): they
# shape no instance and no score, so editing them leaves the family's digest, and the
# instances and calibrations made under it, as they are.
ANNOTATOR_NOTES = "annotator_notes.md"


def _files(folder: Path) -> list[Path]:
    """Files under a folder, in a fixed order, without Python's caches."""
    return sorted(
        p
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink())
        and "__pycache__" not in p.parts
        and not p.name.endswith(".pyc")
    )


def _digested(folder: Path) -> list[Path]:
    """The files of eval/ that make instances and scores: all but the annotator's notes."""
    return [p for p in _files(folder) if p.relative_to(folder).as_posix() != ANNOTATOR_NOTES]


@dataclass(frozen=True)
class Family:
    """A loaded task family (a task folder whose spec has a `family` section)."""

    task: Task

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def title(self) -> str:
        return self.task.spec.title

    @property
    def spec(self) -> FamilySpec:
        assert self.task.spec.family is not None  # checked by as_family
        return self.task.spec.family

    @property
    def splits(self) -> dict[str, int]:
        """Each split's name and number of seeds."""
        return {name: len(self.spec.seeds(name)) for name in self.spec.splits}

    def seeds(self, split: str) -> list[int]:
        """The seeds of a split, in order; ValueError names the splits there are."""
        return self.spec.seeds(split)

    def split_of(self, seed: int) -> str | None:
        """The split a seed belongs to, or None for a seed in no split."""
        return self.spec.split_of(seed)

    @cached_property
    def digest(self) -> str:
        """sha256 over what makes the family's instances: task.yaml, the description,
        workspace/ and eval/ but its annotator notes (paths, executable bits and contents)."""
        folder = self.task.path
        description = folder / self.task.spec.description
        parts = [folder / "task.yaml", description]
        parts += _files(folder / "workspace") + _digested(folder / "eval")
        h = hashlib.sha256()
        for path in parts:
            rel = path.relative_to(folder).as_posix()
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            mode = "l" if path.is_symlink() else "x" if os.access(path, os.X_OK) else "f"
            h.update(f"{rel}\0{mode}\0{len(data)}\0".encode())
            h.update(data)
        return h.hexdigest()

    def instance_dir(self, seed: int, root: Path) -> Path:
        """Where the instance of `seed` is materialized under `root`."""
        return root / self.id / f"{seed}-{self.digest[:16]}"

    def materialize(self, seed: int, root: str | Path) -> Task:
        """The instance of `seed` as a task (made under `root` once, then reused).

        Safe to call from several processes at once: each builds in a private folder and the
        first to rename it into place wins. TaskSpecError when the generator fails."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise TaskSpecError(f"seed {seed!r} of family {self.id}: give a whole number >= 0")
        target = self.instance_dir(seed, Path(root).resolve())
        if (target / "task.yaml").is_file():
            return load_task(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{seed}-", dir=target.parent))
        build.chmod(0o755)  # an ordinary folder once in place (mkdtemp makes it private)
        try:
            self._build(seed, build)
            try:
                build.rename(target)
            except OSError as exc:
                if not (target / "task.yaml").is_file():
                    raise TaskSpecError(
                        f"{target}: cannot put instance {seed} of family {self.id} there "
                        f"({exc}); remove that folder and try again"
                    ) from exc
                # Another process made the same instance first; its bytes are the same.
        finally:
            if build.exists():
                shutil.rmtree(build)
        return load_task(target)

    def _build(self, seed: int, out: Path) -> None:
        folder = self.task.path
        shutil.copytree(folder / "workspace", out / "workspace", symlinks=True, ignore=_IGNORED)
        shutil.copytree(folder / "eval", out / "eval", symlinks=True, ignore=_IGNORED)
        (out / "eval" / TRUTH_DIR).mkdir()
        description = out / self.task.spec.description
        description.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / self.task.spec.description, description)
        self._generate(seed, out / "workspace", out / "eval" / TRUTH_DIR)
        raw: dict[str, Any] = yaml.safe_load((folder / "task.yaml").read_text(encoding="utf-8"))
        del raw["family"]
        raw["instance"] = {
            "family": self.id,
            "seed": seed,
            "split": self.split_of(seed),
            "digest": self.digest,
        }
        text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
        (out / "task.yaml").write_text(text, encoding="utf-8")

    def _generate(self, seed: int, workspace: Path, truth: Path) -> None:
        """Run the generator from the instance's copy of eval/, in a fixed environment."""
        command = (
            self.spec.generator.replace("{seed}", str(seed))
            .replace("{workspace}", shlex.quote(str(workspace)))
            .replace("{truth}", shlex.quote(str(truth)))
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(truth.parent),
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
        }
        where = f"the generator of family {self.id} ({self.spec.generator!r}) for seed {seed}"
        try:
            done = subprocess.run(
                shlex.split(command),
                cwd=workspace.parent / "eval",
                env=env,
                capture_output=True,
                text=True,
                timeout=self.spec.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TaskSpecError(
                f"{where} ran past its timeout of {self.spec.timeout:g}s; make it faster or "
                "raise family.timeout"
            ) from exc
        except OSError as exc:
            raise TaskSpecError(f"{where} could not start ({exc}); fix family.generator") from exc
        if done.returncode != 0:
            tail = done.stderr.strip()[-_STDERR_TAIL:] or "(no stderr)"
            raise TaskSpecError(f"{where} exited with code {done.returncode}; stderr: {tail}")


def as_family(task: Task) -> Family:
    """The family a loaded task folder is; TaskSpecError for a task that is not one."""
    if task.spec.family is None:
        raise TaskSpecError(
            f"{task.id} is a single task, not a family; run it as `apollo run {task.id}`"
        )
    return Family(task)


def load_family(path: str | Path) -> Family:
    """Load and validate a family folder."""
    return as_family(load_task(path))


def builtin_families() -> list[Family]:
    """The families shipped under tasks/, sorted by id."""
    return [Family(t) for t in builtin_family_tasks()]


def resolve_family(name_or_path: str) -> Family:
    """A built-in family id, or a path to a family folder."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return load_family(candidate)
    if (TASKS_DIR / name_or_path / "task.yaml").is_file():
        return load_family(TASKS_DIR / name_or_path)
    known = ", ".join(f.id for f in builtin_families()) or "none"
    raise TaskSpecError(
        f"{name_or_path!r}: no such family; use a built-in family ({known}) or a path to a "
        "family folder"
    )


def split_seeds(name_or_path: str, split: str) -> list[int]:
    """The seeds of a family's split (for batch commands: collect, eval)."""
    return resolve_family(name_or_path).seeds(split)


def instance(name_or_path: str, seed: int, root: str | Path) -> Task:
    """Instance `seed` of a family, materialized under `root` (see Family.materialize)."""
    return resolve_family(name_or_path).materialize(seed, root)


def parse_instance(text: str) -> tuple[str, int] | None:
    """('family', seed) for a text `FAMILY@SEED`, None for a text without `@`."""
    name, at, seed = text.rpartition("@")
    if not at:
        return None
    if not name or not seed.isdigit():
        raise TaskSpecError(
            f"{text!r}: an instance is named FAMILY@SEED with a whole-number seed, e.g. "
            "noise-filter@1000"
        )
    return name, int(seed)


def resolve(name_or_path: str, instances: str | Path) -> Task:
    """What `apollo run` accepts: `FAMILY@SEED` (materialized under `instances`), a built-in
    task id or a task folder."""
    if Path(name_or_path).is_dir():
        return load_task(name_or_path)
    parsed = parse_instance(name_or_path)
    if parsed is None:
        return resolve_task(name_or_path)
    return instance(parsed[0], parsed[1], instances)
