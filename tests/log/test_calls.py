"""Model-call inputs are stored as deltas and decode back to the exact messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apollo.log.calls import apply_input, encode_input, model_input
from apollo.log.events import Kind, canonical_json
from apollo.log.sqlite import SQLiteStore
from apollo.log.store import StoreError


def test_encode_keeps_common_prefix() -> None:
    assert encode_input(7, ["a", "b", "c"], ["a", "b", "c", "d", "e"]) == {
        "prev": 7,
        "keep": 3,
        "add": ["d", "e"],
    }
    # A summary rewrote the context: the shared prefix is only the preamble.
    assert encode_input(9, ["a", "b", "c"], ["a", "x"]) == {"prev": 9, "keep": 1, "add": ["x"]}
    assert encode_input(None, [], ["a"]) == {"prev": None, "keep": 0, "add": ["a"]}
    assert encode_input(3, ["a"], ["z"]) == {"prev": None, "keep": 0, "add": ["z"]}


def test_apply_rejects_a_broken_chain() -> None:
    with pytest.raises(StoreError, match="log corrupt"):
        apply_input(4, ["a"], {"prev": 3, "keep": 1, "add": []})


def test_model_input_recovers_every_call_exactly(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    run = store.create_run("t", {})
    history: list[dict[str, str]] = []
    sent: dict[int, list[dict[str, str]]] = {}
    prev_seq: int | None = None
    prev_ids: list[str] = []
    for step in range(1, 30):
        history.append({"role": "user", "content": f"observation {step} " + "x" * step})
        if step == 15:  # a summary: the window restarts from a rewritten context
            history = [history[0], {"role": "assistant", "content": "snapshot"}]
        ids = store.put_blobs([canonical_json(m) for m in history])
        encoded = encode_input(prev_seq, prev_ids, ids)
        ev = store.append_one(run.id, Kind.MODEL_CALL, {"purpose": "act", "input": encoded})
        sent[ev.seq] = [dict(m) for m in history]
        prev_seq, prev_ids = ev.seq, ids
        history.append({"role": "assistant", "content": f"action {step}"})
    for seq, messages in sent.items():
        assert model_input(store, run.id, seq) == messages
    # Storage holds each message once: deltas, not whole prompts.
    total_refs = sum(len(e.payload["input"]["add"]) for e in store.events(run.id))
    assert total_refs < sum(len(m) for m in sent.values()) / 5
    assert json.loads(store.get_blob(prev_ids[-1]))["content"].startswith("observation 29")
