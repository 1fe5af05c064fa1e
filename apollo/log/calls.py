"""How a model call's input is stored: a delta against the previous call of the same run.

`input = {"prev": seq | None, "keep": k, "add": [blob ids]}` means: the first k messages of the
input of model call `prev`, then the messages `add`. A run then costs O(unique content), not
O(steps x context), and every call's exact input stays recoverable.
"""

from __future__ import annotations

import json
from typing import Any

from apollo.log import schema
from apollo.log.events import Event, Kind
from apollo.log.store import LogCorrupt, Store, StoreError


def encode_input(prev_seq: int | None, prev_ids: list[str], ids: list[str]) -> schema.CallInput:
    """Encode `ids` as a delta against the previous call's input `prev_ids`."""
    keep = 0
    if prev_seq is not None:
        limit = min(len(prev_ids), len(ids))
        while keep < limit and prev_ids[keep] == ids[keep]:
            keep += 1
    return {"prev": prev_seq if keep else None, "keep": keep, "add": ids[keep:]}


def apply_input(prev_seq: int | None, prev_ids: list[str], encoded: schema.CallInput) -> list[str]:
    """Decode an input given the decoded input of the call it refers to."""
    if encoded["prev"] is None:
        return list(encoded["add"])
    if encoded["prev"] != prev_seq:
        raise LogCorrupt(
            f"model call input refers to call {encoded['prev']}, expected {prev_seq}: log corrupt"
        )
    return prev_ids[: encoded["keep"]] + list(encoded["add"])


def model_input(store: Store, run_id: str, seq: int) -> list[dict[str, Any]]:
    """The exact messages model call `seq` was sent, decoded from the log."""
    chain: list[Event] = []
    calls = {ev.seq: ev for ev in store.events(run_id, kinds=[Kind.MODEL_CALL])}
    cursor: int | None = seq
    while cursor is not None:
        ev = calls.get(cursor)
        if ev is None:
            raise StoreError(f"run {run_id}: no model call at seq {cursor}")
        chain.append(ev)
        cursor = schema.MODEL_CALL.payload(ev)["input"]["prev"]
    ids: list[str] = []
    prev: int | None = None
    for ev in reversed(chain):
        ids = apply_input(prev, ids, schema.MODEL_CALL.payload(ev)["input"])
        prev = ev.seq
    texts = store.get_blobs(ids)
    return [json.loads(texts[i]) for i in ids]


def call_output(store: Store, payload: schema.ModelCall) -> dict[str, Any]:
    """The assistant message a model_call produced ({} for a failed call)."""
    blob = payload.get("output")
    return json.loads(store.get_blob(blob)) if blob else {}
