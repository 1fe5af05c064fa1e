"""The SmolLM2-135M base, loaded once from its embedded GGUF for the slow training tests."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from apollo.llm import models
from apollo.train import base as base_mod


@pytest.fixture(scope="session")
def loaded_base(tmp_path_factory: pytest.TempPathFactory) -> base_mod.Base:
    """SmolLM2-135M as transformers loads it from the packaged GGUF (never modified)."""
    return base_mod.load(models.SMOLLM2, tmp_path_factory.mktemp("models"))


@pytest.fixture
def fresh_base(loaded_base: base_mod.Base) -> base_mod.Base:
    """A copy of the loaded base a training may change in place."""
    return base_mod.Base(
        loaded_base.spec, loaded_base.gguf, copy.deepcopy(loaded_base.model), loaded_base.tokenizer
    )


@pytest.fixture(scope="session")
def smol_tokenizer(loaded_base: base_mod.Base) -> object:
    return loaded_base.tokenizer


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "models"
