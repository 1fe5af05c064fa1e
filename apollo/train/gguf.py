"""A trained model directory as GGUF for llama.cpp: its LoRA adapter converted, or the whole
model merged and re-quantized.

`apollo train --out DIR` writes (the contract every reader here relies on):

    DIR/train.json  {"base": "embedded:NAME", "base_sha256": ..., "method": "lora" | "top_layers"}
    DIR/adapter/    LoRA: peft's save_pretrained (adapter_config.json, adapter_model.safetensors)
    DIR/model/      top_layers: the whole fine-tuned model (safetensors)
    DIR/base/       the base's config.json and tokenizer files

`--model embedded:NAME+DIR` serves it in one of two ways (docs/design.md "Trained models"):
the merged GGUF `merge` wrote (DIR/merged.json names it) when there is one, else the base's
GGUF with DIR/adapter.gguf applied through llama.cpp's `--lora_path`, converted here on first
use and again whenever the adapter's files change. A merged GGUF made from other weights than
the DIR's current ones is refused, never served.

The converters are llama.cpp's own scripts (convert_lora_to_gguf.py, convert_hf_to_gguf.py and
their gguf-py), from the source distribution of the installed llama-cpp-python, so what they
write is what its server reads. scripts/setup.sh --dev fetches that source into the cache
outside the repository (`converters()` says where); they run in a subprocess of the training
stack's Python (they import torch and transformers). Nothing here imports torch until `merge`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apollo.llm import models
from apollo.llm.models import EMBEDDED, EmbeddedError, EmbeddedSpec

TRAIN_JSON = "train.json"
ADAPTER = "adapter"
MODEL = "model"
BASE = "base"
ADAPTER_GGUF = "adapter.gguf"
ADAPTER_RECORD = "adapter.gguf.json"
MERGED_RECORD = "merged.json"
METHODS = ("lora", "top_layers")
DEFAULT_QUANT = "Q4_K_M"
LORA_SCRIPT = "convert_lora_to_gguf.py"
HF_SCRIPT = "convert_hf_to_gguf.py"
# What the converters need from llama.cpp's tree: the two scripts, the model classes they
# import (`conversion`) and the gguf-py of the same commit.
_NEEDED = (LORA_SCRIPT, HF_SCRIPT, "conversion/", "gguf-py/")
SETUP_COMMAND = "scripts/setup.sh --dev"
_TAIL_LINES = 15
_CHUNK = 8 << 20


@dataclass(frozen=True, slots=True)
class Trained:
    """A trained model directory, as its train.json describes it."""

    path: Path
    base: str  # the embedded model's name
    base_sha256: str
    method: str

    @property
    def adapter(self) -> Path:
        """peft's adapter folder (LoRA)."""
        return self.path / ADAPTER

    @property
    def weights(self) -> Path:
        """The folder of the trained weights: the adapter (LoRA) or the whole model."""
        return self.adapter if self.method == "lora" else self.path / MODEL


def read(path: Path) -> Trained:
    """The trained model directory at `path`; EmbeddedError naming what is missing or wrong."""
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise EmbeddedError(
            f"no trained model directory {path} (give the --out DIR of `apollo train`)"
        )
    try:
        raw = json.loads((path / TRAIN_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmbeddedError(
            f"{path} has no {TRAIN_JSON}: it is not a directory `apollo train --out` wrote"
        ) from None
    except (OSError, ValueError) as exc:
        raise EmbeddedError(f"{path / TRAIN_JSON} cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise EmbeddedError(f"{path / TRAIN_JSON} is not a JSON object")
    base, method = raw.get("base"), raw.get("method")
    head, _, name = str(base).partition(":")
    if head != EMBEDDED or not name:
        raise EmbeddedError(
            f"{path / TRAIN_JSON}: base is {base!r}, not an embedded model (`embedded:NAME`)"
        )
    if method not in METHODS:
        raise EmbeddedError(
            f"{path / TRAIN_JSON}: method is {method!r}, not one of {', '.join(METHODS)}"
        )
    return Trained(path, name, str(raw.get("base_sha256", "")), method)


def check(spec: EmbeddedSpec, path: Path) -> Path:
    """Validate `--model embedded:NAME+DIR` (NAME is `spec`) and return DIR, absolute.

    Cheap (no hashing): DIR must be a training output of `spec`'s exact GGUF, and servable,
    by its adapter or by a merged GGUF."""
    trained = read(path)
    if trained.base != spec.name:
        raise EmbeddedError(
            f"{trained.path} was trained on embedded:{trained.base}, not {spec.name}; "
            f"use --model embedded:{trained.base}+{trained.path}"
        )
    _check_base(trained, spec)
    if _merged(trained) is not None:
        return trained.path
    if trained.method == "top_layers":
        raise EmbeddedError(
            f"{trained.path} holds a whole fine-tuned model (top_layers), which llama.cpp can "
            f"serve only as one GGUF: run `apollo models merge {trained.path}` first"
        )
    _require(trained.adapter, ("adapter_config.json", "adapter_model.safetensors"))
    _require(trained.path / BASE, ("config.json",))
    return trained.path


def served(spec: EmbeddedSpec, cache: Path) -> tuple[Path, Path | None]:
    """What a server of `spec` (which has `trained` set) loads: the model GGUF, and the LoRA
    adapter GGUF to apply to it or None. The merged GGUF when there is one (refused when it
    was made from other weights than the DIR's), else the base checked against its pin and
    the adapter converted when needed."""
    assert spec.trained is not None
    trained = read(check(spec, spec.trained))
    merged = _merged(trained)
    if merged is not None:
        record, path = merged
        if record.get("source_sha256") != _digest(trained.weights):
            raise EmbeddedError(
                f"{path} was merged from other weights than {trained.weights} holds now (it "
                f"was trained again since): run `apollo models merge {trained.path}` again, "
                f"or delete {trained.path / MERGED_RECORD} to serve the adapter"
            )
        return path, None
    return models.ensure(spec, cache), adapter_gguf(trained.path)


def adapter_gguf(path: Path) -> Path:
    """DIR/adapter.gguf: DIR's LoRA adapter converted to a GGUF adapter with llama.cpp's
    convert_lora_to_gguf.py (f16), kept in DIR and converted again when the adapter's files
    change (their sha256 is recorded beside it)."""
    trained = read(path)
    if trained.method != "lora":
        raise EmbeddedError(
            f"{trained.path} was trained with {trained.method}, so it has no LoRA adapter to "
            f"convert; serve it merged (`apollo models merge {trained.path}`)"
        )
    _require(trained.adapter, ("adapter_config.json", "adapter_model.safetensors"))
    base = trained.path / BASE
    _require(base, ("config.json",))
    _check_architectures(base)
    out = trained.path / ADAPTER_GGUF
    record_path = trained.path / ADAPTER_RECORD

    def current() -> str | None:
        digest = _digest(trained.adapter)
        fresh = out.is_file() and _load(record_path).get("source_sha256") == digest
        return None if fresh else digest

    if current() is None:
        return out  # without the lock, so a read-only DIR converted once serves
    with _locked(trained.path):
        digest = current()
        if digest is None:
            return out
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        started = time.monotonic()
        try:
            _convert(
                LORA_SCRIPT,
                ["--base", str(base), "--outfile", str(tmp), "--outtype", "f16"],
                trained.adapter,
                f"converting the adapter {trained.adapter} to GGUF",
            )
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        _dump(
            record_path,
            {
                "source_sha256": digest,
                "llama_cpp_python": _llama_version(),
                "seconds": round(time.monotonic() - started, 2),
            },
        )
    return out


def merge(path: Path, quant: str = DEFAULT_QUANT, *, cache: Path) -> Path:
    """Write DIR's trained model as one re-quantized GGUF, DIR/merged-<quant>.gguf, which
    `--model embedded:NAME+DIR` serves from then on; its path.

    LoRA: the base (from its GGUF in `cache`, the Apollo home's model cache) with the adapter
    merged in (peft `merge_and_unload`); top_layers: DIR/model. Converted to f16 with
    convert_hf_to_gguf.py, then re-quantized with `llama_cpp.llama_model_quantize`. The seconds
    of each stage are recorded in DIR/merged.json."""
    trained = read(path)
    spec = models.find(trained.base)
    _check_base(trained, spec)
    if trained.method == "lora":
        _require(trained.adapter, ("adapter_config.json", "adapter_model.safetensors"))
    else:
        _require(trained.path / MODEL, ("config.json",))
    _require(trained.path / BASE, ("config.json",))
    ftype = quant_ftype(quant)
    name = f"merged-{quant.lower()}.gguf"
    out = trained.path / name
    seconds: dict[str, float] = {}
    with (
        _locked(trained.path),
        tempfile.TemporaryDirectory(dir=trained.path, prefix=".merge-") as t,
    ):
        work = Path(t)
        digest = _digest(trained.weights)
        started = time.monotonic()
        if trained.method == "lora":
            hf = _merge_lora(trained, models.ensure(spec, cache), work / "hf")
        else:
            hf = _model_with_tokenizer(trained, work / "hf")
        seconds["merge"] = round(time.monotonic() - started, 2)
        f16 = work / "merged-f16.gguf"
        started = time.monotonic()
        _convert(
            HF_SCRIPT,
            ["--outfile", str(f16), "--outtype", "f16"],
            hf,
            f"converting the merged model of {trained.path} to GGUF",
        )
        seconds["convert_f16"] = round(time.monotonic() - started, 2)
        started = time.monotonic()
        tmp = work / name
        _quantize(f16, tmp, ftype, quant)
        seconds["quantize"] = round(time.monotonic() - started, 2)
        os.replace(tmp, out)
        _dump(
            trained.path / MERGED_RECORD,
            {
                "gguf": name,
                "quant": quant.upper(),
                "source_sha256": digest,
                "base_sha256": spec.sha256,
                "size": out.stat().st_size,
                "llama_cpp_python": _llama_version(),
                "seconds": seconds,
            },
        )
    return out


def quant_ftype(quant: str) -> int:
    """llama.cpp's file type for a quantization name (`Q4_K_M`, `Q8_0`, ...); EmbeddedError
    listing the names this llama-cpp-python knows otherwise."""
    try:
        import llama_cpp
    except ImportError:
        raise EmbeddedError(
            f"re-quantizing needs llama-cpp-python, which is not installed; run `{SETUP_COMMAND}`"
        ) from None

    prefix = "LLAMA_FTYPE_MOSTLY_"
    known = {k.removeprefix(prefix): v for k, v in vars(llama_cpp).items() if k.startswith(prefix)}
    ftype = known.get(quant.upper())
    if not isinstance(ftype, int):
        raise EmbeddedError(
            f"unknown quantization {quant!r}; use one of {', '.join(sorted(known))}"
        )
    return ftype


def converters() -> Path:
    """The folder of llama.cpp's converters for the installed llama-cpp-python, unpacked from
    its source distribution in Apollo's cache on first use; EmbeddedError naming the setup
    command when that source was never fetched."""
    version = _llama_version()
    root = _cache_root() / f"llama-cpp-python-{version}-converters"
    if (root / LORA_SCRIPT).is_file() and (root / HF_SCRIPT).is_file():
        return root
    sdist = sdist_path(version)
    if not sdist.is_file():
        raise EmbeddedError(
            f"llama.cpp's GGUF converters are not in {root}, and the llama-cpp-python {version} "
            f"source they come from is not at {sdist}: run `{SETUP_COMMAND}` (it fetches it with "
            f"`pip download --no-deps --no-binary :all: llama-cpp-python=={version}`)"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    # One unpack at a time: another process may be converting with a copy made meanwhile,
    # which an unpack must not replace under it.
    with _locked(root.parent):
        if not ((root / LORA_SCRIPT).is_file() and (root / HF_SCRIPT).is_file()):
            _unpack(sdist, root, version)
    return root


def sdist_path(version: str) -> Path:
    """Where scripts/setup.sh keeps llama-cpp-python's source distribution of `version`."""
    return _cache_root() / "sdist" / f"llama_cpp_python-{version}.tar.gz"


def _cache_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "apollo"


def _llama_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        raise EmbeddedError(
            "llama-cpp-python is not installed; run scripts/setup.sh (it installs it)"
        ) from None


def _unpack(sdist: Path, root: Path, version: str) -> None:
    """Extract only the converters' files from `sdist` into `root`, atomically (a half-done
    unpack is never found)."""
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    tmp.chmod(0o755)  # like the cache's other folders (mkdtemp makes it 0700)
    try:
        with tarfile.open(sdist) as tar:
            for member in tar:
                rel = member.name.removeprefix(prefix)
                if rel == member.name or not member.isfile() or ".." in Path(rel).parts:
                    continue
                if not any(rel == n or (n.endswith("/") and rel.startswith(n)) for n in _NEEDED):
                    continue
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with source, open(target, "wb") as f:
                    shutil.copyfileobj(source, f)
        missing = [n for n in _NEEDED if not (tmp / n).exists()]
        if missing:
            raise EmbeddedError(f"{sdist} lacks {', '.join(missing)} under {prefix}")
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(root)  # an incomplete earlier copy
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _convert(script: str, args: list[str], source: Path, what: str) -> None:
    """Run one of llama.cpp's converters on `source` in a subprocess of this Python, with its
    own gguf-py first on the path (never a gguf package installed beside Apollo); EmbeddedError
    with the converter's last lines when it fails."""
    root = converters()
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    paths = [str(root / "gguf-py"), str(root), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["HF_HUB_OFFLINE"] = "1"  # everything is local; never ask a hub
    done = subprocess.run(
        [sys.executable, str(root / script), *args, str(source)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        check=False,
    )
    if done.returncode == 0:
        return
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-_TAIL_LINES:])
    hint = ""
    if "No module named" in tail:
        hint = f"; the converters need the training stack: run `{SETUP_COMMAND}`"
    raise EmbeddedError(f"{what} failed (exit code {done.returncode}){hint}:\n{tail}")


def _quantize(source: Path, out: Path, ftype: int, quant: str) -> None:
    import llama_cpp
    from llama_cpp import _logger

    from apollo.llm.embedded import choose_threads

    _logger.set_verbose(False)  # else llama.cpp prints a line per tensor; errors still show
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = choose_threads()
    code = llama_cpp.llama_model_quantize(
        str(source).encode(), str(out).encode(), llama_cpp.byref(params)
    )
    if code != 0 or not out.is_file():
        raise EmbeddedError(f"llama.cpp could not quantize {source} to {quant} (code {code})")


def _merge_lora(trained: Trained, gguf: Path, out: Path) -> Path:
    """The base loaded from its GGUF with the adapter merged in, saved as an HF model."""
    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise EmbeddedError(
            f"merging a LoRA adapter needs the training stack ({exc}); run `{SETUP_COMMAND}`"
        ) from None
    from apollo.train.base import unquantize

    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    unquantize(model)  # save_pretrained refuses a GGUF-loaded model while it names a quantizer
    merged = PeftModel.from_pretrained(model, trained.adapter).merge_and_unload()
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(trained.path / BASE).save_pretrained(out)
    return out


def _model_with_tokenizer(trained: Trained, out: Path) -> Path:
    """DIR/model with the base's tokenizer files beside it (the converter reads both from one
    folder), as links."""
    model = trained.path / MODEL
    out.mkdir(parents=True)
    for folder in (trained.path / BASE, model):  # the model's own config wins
        for item in folder.iterdir():
            link = out / item.name
            link.unlink(missing_ok=True)
            link.symlink_to(item)
    return out


def _merged(trained: Trained) -> tuple[dict[str, Any], Path] | None:
    """DIR's merged GGUF and its record, when `merge` wrote one."""
    record = _load(trained.path / MERGED_RECORD)
    name = record.get("gguf")
    if not isinstance(name, str) or Path(name).name != name:
        return None
    path = trained.path / name
    return (record, path) if path.is_file() else None


def _check_base(trained: Trained, spec: EmbeddedSpec) -> None:
    if trained.base_sha256 != spec.sha256:
        recorded = trained.base_sha256 or f"(none recorded in {trained.path / TRAIN_JSON})"
        raise EmbeddedError(
            f"{trained.path} was trained on a {spec.name} GGUF with sha256 {recorded}, not "
            f"the pinned {spec.sha256} installed here: its weights do not fit this base; "
            "train it again on this one"
        )


def _check_architectures(base: Path) -> None:
    config = _load(base / "config.json")
    if not config.get("architectures"):
        raise EmbeddedError(
            f"{base / 'config.json'} names no architectures, which the converter detects the "
            "model by (a config loaded from a GGUF lacks them): write DIR/base with "
            "apollo.train.base.save_files, or set config.architectures before saving"
        )


def _require(folder: Path, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise EmbeddedError(
            f"{folder} lacks {', '.join(missing)}: not a complete `apollo train` output"
        )


def _digest(folder: Path) -> str:
    """sha256 over the names and contents of `folder`'s files (recursively, sorted)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _load(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _dump(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One conversion of a DIR (or unpack of the converters) at a time, across processes
    (runs started at once)."""
    with open(folder / ".gguf.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def model_ref(path: Path) -> str:
    """The `--model` value that serves the trained model at `path`: embedded:NAME+DIR."""
    trained = read(path)
    return f"{EMBEDDED}:{trained.base}+{trained.path}"
