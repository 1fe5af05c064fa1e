"""The rich real run, unsupervised, shared by the supervision tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agent.harness import Outcome
from tests.export.runs import rich_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    out = rich_run(tmp_path_factory.mktemp("rich"))
    yield out
    out.store.close()
