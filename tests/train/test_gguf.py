"""A trained model directory served by llama.cpp: `--model embedded:NAME+DIR` is checked, the
LoRA adapter is converted (once, and again when it changes) and applied with `--lora_path`,
or the merged, re-quantized GGUF is served; both reproduce what the training taught."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apollo.cli import main
from apollo.llm import models
from apollo.llm.embedded import EmbeddedModel, EmbeddedPool
from apollo.llm.models import EmbeddedError
from apollo.train import gguf
from tests.train.tiny import PROMPT, WORD, fake_trained, train_lora

SMOL = models.SMOLLM2.name


def test_a_trained_dir_is_named_absolute_and_recorded_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_trained(tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    spec = models.parse(f"embedded:{SMOL}+out")
    assert spec is not None and spec.name == SMOL and spec.trained == tmp_path / "out"
    assert models.canonical(f"embedded:{SMOL}+out") == f"embedded:{SMOL}+{tmp_path / 'out'}"
    assert models.canonical(f"embedded:{SMOL}") == f"embedded:{SMOL}"
    assert models.parse(f"embedded:{SMOL}").trained is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("make", "model", "message"),
    [
        (None, f"embedded:{SMOL}+", r"give the trained model's directory after '\+'"),
        (None, f"embedded:{SMOL}+{{d}}/nowhere", r"no trained model directory .*nowhere"),
        ("empty", f"embedded:{SMOL}+{{d}}/out", r"has no train\.json: it is not a directory"),
        ("lora", f"embedded:{models.QWEN_05B.name}+{{d}}/out", r"trained on embedded:smollm2"),
        ("sha", f"embedded:{SMOL}+{{d}}/out", r"GGUF with sha256 0+, not the pinned"),
        ("top_layers", f"embedded:{SMOL}+{{d}}/out", r"run `apollo models merge .*out` first"),
        ("no-adapter", f"embedded:{SMOL}+{{d}}/out", r"adapter lacks adapter_model\.safetensors"),
        ("method", f"embedded:{SMOL}+{{d}}/out", r"method is 'full', not one of lora"),
        ("lora", "embedded:nope+{d}/out", r"no embedded model 'nope'"),
    ],
)
def test_bad_trained_dirs_are_refused_with_the_fix(
    tmp_path: Path, make: str | None, model: str, message: str
) -> None:
    out = tmp_path / "out"
    if make == "empty":
        out.mkdir()
    elif make == "sha":
        fake_trained(out, base_sha256="0" * 64)
    elif make == "no-adapter":
        fake_trained(out)
        (out / gguf.ADAPTER / "adapter_model.safetensors").unlink()
    elif make == "method":
        fake_trained(out, method="full")
    elif make is not None:
        fake_trained(out, method=make)
    with pytest.raises(EmbeddedError, match=message):
        models.parse(model.format(d=tmp_path))


def test_a_merged_gguf_is_served_alone_and_refused_once_the_weights_change(
    tmp_path: Path,
) -> None:
    out = fake_trained(tmp_path / "out", method="top_layers")
    (out / "merged-q8_0.gguf").write_bytes(b"GGUF")
    digest = gguf._digest(out / gguf.MODEL)
    (out / gguf.MERGED_RECORD).write_text(
        json.dumps({"gguf": "merged-q8_0.gguf", "source_sha256": digest})
    )
    spec = models.parse(f"embedded:{SMOL}+{out}")
    assert spec is not None
    assert gguf.served(spec, tmp_path / "cache") == (out / "merged-q8_0.gguf", None)
    (out / gguf.MODEL / "config.json").write_text('{"trained": "again"}')
    with pytest.raises(EmbeddedError, match=r"merged from other weights .* models merge"):
        gguf.served(spec, tmp_path / "cache")


def test_unknown_quantizations_are_refused_with_the_known_ones() -> None:
    assert gguf.quant_ftype("q4_k_m") == gguf.quant_ftype("Q4_K_M")
    with pytest.raises(EmbeddedError, match=r"unknown quantization 'Q9'; use one of .*Q4_K_M"):
        gguf.quant_ftype("Q9")


def test_a_config_without_architectures_is_refused_before_converting(tmp_path: Path) -> None:
    out = fake_trained(tmp_path / "out")
    (out / gguf.BASE / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(EmbeddedError, match=r"names no architectures.*save_files"):
        gguf.adapter_gguf(out)


def test_the_converters_are_unpacked_from_the_source_and_missing_ones_name_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(EmbeddedError, match=r"run `scripts/setup\.sh --dev`.*pip download"):
        gguf.converters()
    version = gguf._llama_version()
    sdist = gguf.sdist_path(version)
    sdist.parent.mkdir(parents=True)
    top = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    files = {
        "convert_lora_to_gguf.py": b"lora",
        "convert_hf_to_gguf.py": b"hf",
        "conversion/__init__.py": b"",
        "gguf-py/gguf/__init__.py": b"",
        "ggml/src/big.c": b"not needed",
    }
    with tarfile.open(sdist, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(top + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    root = gguf.converters()
    assert (root / "convert_lora_to_gguf.py").read_bytes() == b"lora"
    assert (root / "gguf-py" / "gguf" / "__init__.py").is_file()
    assert not (root / "ggml").exists()
    sdist.unlink()
    assert gguf.converters() == root  # unpacked once, found again without the source


# The slow tests below share one trained DIR: SmolLM2 from its GGUF, LoRA, a few steps.


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_lora(tmp_path_factory.mktemp("trained") / "out")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


async def complete(server: EmbeddedModel) -> str:
    """The server's greedy completion of the training prompt."""
    async with httpx.AsyncClient(timeout=120) as client:
        response = await client.post(
            f"{server.base_url}/completions",
            json={"prompt": PROMPT, "max_tokens": 8, "temperature": 0},
        )
    response.raise_for_status()
    text: str = response.json()["choices"][0]["text"]
    return text


@pytest.fixture
def copy(trained: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the trained DIR a test may change."""
    out = tmp_path / "copy"
    shutil.copytree(trained, out)
    yield out


@pytest.mark.slow
def test_the_adapter_is_served_with_lora_path_and_writes_what_it_was_trained_on(
    trained: Path, cache: Path
) -> None:
    spec = models.parse(f"embedded:{SMOL}+{trained}")
    assert spec is not None

    async def go() -> tuple[str, str, list[str]]:
        async with EmbeddedModel(models.SMOLLM2, cache=cache, n_threads=1) as base:
            before = await complete(base)
        async with EmbeddedModel(spec, cache=cache, n_threads=1) as server:
            assert server.process is not None
            args = server.process.args
            assert isinstance(args, list)
            return before, await complete(server), args

    before, after, args = asyncio.run(go())
    assert args[args.index("--lora_path") + 1] == str(trained / gguf.ADAPTER_GGUF)
    assert args[args.index("--model") + 1] == str(models.part_files(models.SMOLLM2)[0])
    assert WORD not in before
    assert after.strip().startswith(WORD), after
    record = json.loads((trained / gguf.ADAPTER_RECORD).read_text())
    assert record["source_sha256"] == gguf._digest(trained / gguf.ADAPTER)


@pytest.mark.slow
def test_the_adapter_is_converted_again_only_when_it_changes(copy: Path) -> None:
    first = gguf.adapter_gguf(copy)
    stamp = first.stat().st_mtime_ns
    assert gguf.adapter_gguf(copy).stat().st_mtime_ns == stamp  # unchanged: not converted
    config = json.loads((copy / gguf.ADAPTER / "adapter_config.json").read_text())
    config["lora_alpha"] = 4  # what a new training run would change
    (copy / gguf.ADAPTER / "adapter_config.json").write_text(json.dumps(config))
    again = gguf.adapter_gguf(copy)
    assert again.stat().st_mtime_ns != stamp


@pytest.mark.slow
def test_a_failed_conversion_reports_the_converters_last_lines(copy: Path) -> None:
    (copy / gguf.ADAPTER / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(EmbeddedError, match=r"converting the adapter .* failed \(exit code 1\)"):
        gguf.adapter_gguf(copy)
    assert not list(copy.glob(".adapter.gguf.tmp*"))  # nothing half-written is left


@pytest.mark.slow
def test_the_merged_q4_gguf_is_served_alone_and_writes_what_it_was_trained_on(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    cache = models.cache_dir(home)
    assert main(["models", "merge", str(copy), "--quant", "Q4_K_M", "--home", str(home)]) == 0
    path = copy / "merged-q4_k_m.gguf"
    said = capsys.readouterr().out
    assert f"merged {path} (" in said and f"`--model embedded:{SMOL}+{copy}` serves it" in said
    record = json.loads((copy / gguf.MERGED_RECORD).read_text())
    assert record["quant"] == "Q4_K_M"
    assert set(record["seconds"]) == {"merge", "convert_f16", "quantize"}
    spec = models.parse(f"embedded:{SMOL}+{copy}")
    assert spec is not None
    assert gguf.served(spec, cache) == (path, None)

    async def go() -> tuple[str, list[str]]:
        async with EmbeddedModel(spec, cache=cache, n_threads=1) as server:
            assert server.process is not None
            args = server.process.args
            assert isinstance(args, list)
            return await complete(server), args

    after, args = asyncio.run(go())
    assert "--lora_path" not in args and args[args.index("--model") + 1] == str(path)
    assert after.strip().startswith(WORD), after


@pytest.mark.slow
def test_the_pool_never_hands_a_run_the_server_of_another_adapter(
    trained: Path, cache: Path
) -> None:
    spec = models.parse(f"embedded:{SMOL}+{trained}")
    assert spec is not None

    async def go() -> None:
        async with EmbeddedPool(cache) as pool:
            async with pool.lease(spec) as first:
                assert first.spec.trained is not None  # a server of the trained model
            async with pool.lease(models.SMOLLM2) as base:
                assert base is not first and base.spec.trained is None
            async with pool.lease(spec) as again:
                assert again is first  # the idle server of the same trained model is reused
            assert len(pool.servers) == 2

    asyncio.run(go())


@pytest.mark.slow
def test_a_top_layers_dir_is_refused_until_merged_then_served_merged(
    trained: Path, tmp_path: Path, cache: Path
) -> None:
    out = tmp_path / "top"
    (out / gguf.BASE).mkdir(parents=True)
    for item in (trained / gguf.BASE).iterdir():
        shutil.copy(item, out / gguf.BASE)
    # The whole fine-tuned model, as a top_layers run saves it: here the LoRA merged in.
    lora = gguf.read(trained)
    gguf._merge_lora(lora, models.part_files(models.SMOLLM2)[0], out / gguf.MODEL)
    meta = json.loads((trained / gguf.TRAIN_JSON).read_text())
    (out / gguf.TRAIN_JSON).write_text(json.dumps({**meta, "method": "top_layers"}))
    with pytest.raises(EmbeddedError, match=r"serve only as one GGUF: run `apollo models merge"):
        models.parse(f"embedded:{SMOL}+{out}")
    path = gguf.merge(out, "Q8_0", cache=cache)
    assert path.name == "merged-q8_0.gguf"
    spec = models.parse(f"embedded:{SMOL}+{out}")
    assert spec is not None and gguf.served(spec, cache) == (path, None)

    async def go() -> str:
        async with EmbeddedModel(spec, cache=cache, n_threads=1) as server:
            return await complete(server)

    after = asyncio.run(go())
    assert after.strip().startswith(WORD), after
