"""Shared fixtures for the model-layer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apollo.llm.scripted import ScriptedServer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """An in-process scripted server; tests add entries with `server.add(...)`."""
    with ScriptedServer() as srv:
        yield srv
